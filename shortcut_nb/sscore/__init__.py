"""Neuron spurious score (s-score, paper §3.3): Grad-CAM of neurons against spurious masks.

* :mod:`.cams` — the Grad-CAM engine (exact fast paths, checked against pytorch-grad-cam) and the metric.
* :mod:`.grid` — per-sample scores at every alpha of a grid, heatmaps made once.
* :mod:`.scoring` — :func:`score_neurons`, the one way a trained model's neurons are scored on drawn samples.
* :mod:`.summary` — :func:`summarize_scores`, the one summary, read against the chance level.
"""
from .cams import (
    GRADCAM_EPS,
    Method,
    NeuronIndex,
    binarize,
    gradcam_scale,
    lift,
    mask_area,
    neuron_cams,
    per_sample_scores,
    reference_cams,
    s_scores,
)
from .grid import ALPHA_GRID, alpha_grid, score_grid
from .scoring import score_neurons
from .summary import summarize_scores

__all__ = [
    "GRADCAM_EPS", "Method", "NeuronIndex", "binarize", "gradcam_scale",
    "lift", "mask_area", "neuron_cams", "per_sample_scores", "reference_cams", "s_scores",
    "score_neurons", "ALPHA_GRID", "alpha_grid", "score_grid", "summarize_scores",
]
