"""Neuron spurious score (s-score, paper §3.3): Grad-CAM of penultimate neurons against spurious masks.

For a model ``f = h ∘ f_enc`` with penultimate vector ``z = f_enc(x) ∈ R^d``, the
Grad-CAM heatmap of neuron ``i`` on image ``x_j`` is binarised at a threshold
``alpha`` into ``b_j^i`` and compared with the spurious-region mask ``m_j``::

    s^i = 1/N Σ_j |b_j^i ⊙ m_j| / |b_j^i|          (0 for a sample where |b_j^i| = 0)

with ``b = cam >= alpha`` (inclusive, alpha rounded to float32). An s-score is a
precision, so it has a chance level, the mean mask area (:func:`mask_area`,
:func:`lift`): show it next to every s-score figure.

Heatmaps are exactly pytorch-grad-cam's (``GradCAM`` with ``ClassifierOutputTarget(i)``
on ``x -> z``), computed in torch on the model's device and equal to it to ~1e-6 (float
rounding, so a pixel within that of alpha may binarise differently); instead of one
forward and backward pass per neuron, four exact shortcuts (analytic, forward-mode,
batched reverse-mode, a ViT's class token alone) give many neurons per pass.

* :mod:`.layers` — model plumbing: the encoder, target-layer resolution, token geometry, the forward probe.
* :mod:`.gradients` — the exact fast paths (analytic, forward, reverse) to raw maps, and the choice between them.
* :mod:`.class_token` — the fourth path: a ViT's class token alone, at its last block's ``norm1``.
* :mod:`.cams` — pytorch-grad-cam's scaling (:func:`gradcam_scale`) and the heatmaps (:func:`neuron_cams`).
* :mod:`.metric` — binarisation, per-sample scores, :func:`s_scores`, the chance level (:func:`mask_area`, :func:`lift`).
* :mod:`.reference` — :func:`reference_cams`, pytorch-grad-cam itself: the oracle of tests and benchmarks.
* :mod:`.grid` — per-sample scores at every alpha of a grid, heatmaps made once.
* :mod:`.scoring` — :func:`score_neurons`, the one way a trained model's neurons are scored on drawn samples.
* :mod:`.summary` — :func:`summarize_scores`, the one summary, read against the chance level.
* :mod:`.target_map` — :func:`target_map_size`: the target layer's map (a ViT's patch grid) at an image size;
  below :data:`MIN_MAP_SIDE` (4) on a side every entry point warns (:class:`SmallTargetMapWarning`): at 32 px a
  ResNet's last map is 1x1 and every s-score is 0.

Every entry point taking a model needs it split into ``model.f_enc`` (x -> z) and ``model.head`` (z -> logits)
(:func:`shortcut_nb.models.build_model`, ``shortcut_nb.models.as_split_model``) and refuses a plain classifier
(TypeError: its output is the logits) and a target layer outside ``model.f_enc`` such as ``model.head``
(ValueError).

Beyond the penultimate layer (issue 17):

* :mod:`.units` — :func:`unit_cams`, :func:`unit_s_scores`: units (channels, hidden units) of any
  conv block or ViT ``norm1``, any CAM method (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM coincide at a
  unit's own layer: an exact analytic path), ``"scorecam"`` through pytorch-grad-cam itself.
* :mod:`.variants` — the score's variants: ``"hard"`` (the paper's), ``"soft"``, ``"iou"``, dilated masks.
* :mod:`.uncertainty` — bootstrap intervals over the N samples, a test against the chance level.
* :mod:`.depth` — the depth profile: per block, median, share above the band, share above chance.
"""
from .cams import GRADCAM_EPS, gradcam_scale, neuron_cams
from .gradients import Method
from .grid import ALPHA_GRID, alpha_grid, score_grid
from .layers import NeuronIndex
from .metric import binarize, lift, mask_area, per_sample_scores, s_scores
from .reference import reference_cams
from .scoring import score_neurons
from .summary import summarize_scores
from .target_map import MIN_MAP_SIDE, SmallTargetMapWarning, small_map_note, target_map_size
from .units import unit_cams, unit_s_scores

__all__ = [
    "GRADCAM_EPS", "Method", "NeuronIndex", "binarize", "gradcam_scale",
    "lift", "mask_area", "neuron_cams", "per_sample_scores", "reference_cams", "s_scores",
    "score_neurons", "ALPHA_GRID", "alpha_grid", "score_grid", "summarize_scores", "unit_cams", "unit_s_scores",
    "MIN_MAP_SIDE", "SmallTargetMapWarning", "small_map_note", "target_map_size",
]
