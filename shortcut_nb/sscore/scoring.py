"""The one way a trained model's neurons are scored: s-scores of every neuron on drawn masked samples."""
from __future__ import annotations

from torch import Tensor, nn

from ..config import model_device
from ..data.samples import MaskedSamples
from .metric import s_scores

# Neurons per batched gradient pass: covers all of vit_mini's neurons in one backward pass per image
# (about twice as fast on CPU as 64); the CNN's analytic path does not use it.
CHUNK_SIZE = 128
BATCH_SIZE = 16


def score_neurons(model: nn.Module, samples: MaskedSamples, *, alpha: float, target_layer: nn.Module | None = None,
                  chunk_size: int = CHUNK_SIZE, batch_size: int = BATCH_SIZE) -> Tensor:
    """s-scores of every penultimate neuron of ``model`` on ``samples``, computed on the model's device.

    Args:
        model: a split model (``.f_enc``, ``.head``; a plain classifier is refused); default Grad-CAM target:
            the CNN's last block, the ViT's last block's ``norm1``.
        samples: images and non-empty spurious masks (:func:`shortcut_nb.data.samples.draw_masked_samples`).
        alpha: heatmap binarisation threshold in [0, 1].
        target_layer: Grad-CAM layer inside ``model.f_enc`` (None: the model's default).
        chunk_size: neurons per batched gradient pass.
        batch_size: images per forward pass.

    Returns:
        float32 CPU tensor (d,) of s-scores in [0, 1]; compare with ``samples.area`` (the chance level).

    Warns:
        SmallTargetMapWarning: the target layer's map is smaller than 4x4 (see :func:`~.target_map.target_map_size`).
    """
    device = model_device(model)
    return s_scores(model, samples.images.to(device), samples.masks.to(device), alpha=alpha,
                    target_layer=target_layer, chunk_size=chunk_size, batch_size=batch_size).cpu()
