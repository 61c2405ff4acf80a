"""The s-score (paper §3.3) of Grad-CAM heatmaps against spurious masks, and its chance level.

The heatmap ``cam`` of neuron ``i`` on image ``x_j`` (:func:`~.cams.neuron_cams`) is
binarised at a threshold ``alpha`` into ``b_j^i`` and compared with the spurious-region
mask ``m_j``::

    s^i = 1/N Σ_j |b_j^i ⊙ m_j| / |b_j^i|          (0 for a sample where |b_j^i| = 0)

with ``b = cam >= alpha`` (inclusive, alpha rounded to float32; see :func:`binarize`).
An s-score is a precision, so it has a chance level, the mean mask area
(:func:`mask_area`, :func:`lift`): show it next to every s-score figure.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..config import model_device
from .cams import _iter_cams
from .gradients import Method
from .layers import NeuronIndex, _check_images, _check_positive, _encoder

# --------------------------------------------------------------------------- public: scores


def _check_alpha(alpha: float) -> float:
    """Validate alpha and round it to float32, the precision the maps are compared in.

    Rounding first makes ``cam >= alpha`` the same whether an op compares in float32 or
    float64 (a float64 alpha between two float32 values could otherwise split them).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(np.float32(alpha))


def binarize(cams: Tensor, alpha: float) -> Tensor:
    """Binarise normalised heatmaps: ``cam >= alpha`` (alpha rounded to float32).

    ``>=`` is the comparison used everywhere in this module (:func:`s_scores` counts
    exactly these pixels). Normalised maps lie in [0, 1): the 1e-7 in pytorch-grad-cam's
    normalisation keeps the maximum just below 1, so ``alpha=1`` selects nothing and
    ``alpha=0`` every pixel.

    Args:
        cams: (..., H, W) maps from :func:`~.cams.neuron_cams`.
        alpha: threshold in [0, 1].

    Returns:
        bool tensor of the same shape.
    """
    return cams >= _check_alpha(alpha)


def _masks_to_bool(masks: Tensor, images_shape: tuple[int, ...] | None = None) -> Tensor:
    if not isinstance(masks, Tensor):
        raise TypeError(f"masks must be a tensor (N, H, W), got {type(masks).__name__}")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ValueError("masks must be bool or contain only 0 and 1")
        masks = masks.bool()
    if images_shape is not None and (masks.shape[0] != images_shape[0] or masks.shape[1:] != images_shape[2:]):
        raise ValueError(f"masks must have shape (N, H, W) = {(images_shape[0], *images_shape[2:])} to match images, "
                         f"got {tuple(masks.shape)}")
    return masks


def _count_weights(masks: Tensor) -> Tensor:
    """(N, H*W, 2) float32 columns [1, m]: one matrix product then gives |b| and |b ⊙ m|."""
    m = masks.reshape(masks.shape[0], -1).float()
    return torch.stack([torch.ones_like(m), m], dim=-1)


def _overlap_counts_(cams: Tensor, weights: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """|b| and |b ⊙ m| per (sample, neuron) of a block, overwriting ``cams``.

    Args:
        cams: (b, k, H, W) float32 normalised maps; destroyed.
        weights: (b, H*W, 2) from :func:`_count_weights`.
        alpha: float32-rounded threshold.

    The in-place ``ge_`` writes ``cam >= alpha`` as 1.0/0.0 into the float buffer, so a
    batched matrix product counts: bool tensors, their sums and fresh allocations are
    several times slower here. Counts are sums of 0/1 in float32, exact below 2**24
    pixels per image.
    """
    b, k = cams.shape[:2]
    hw = cams.shape[-1] * cams.shape[-2]
    if hw >= 2**24:  # float32 stops counting exactly; take the slow exact path
        bin_ = cams >= alpha
        m = weights[..., 1].bool().view(b, 1, *cams.shape[-2:])
        return bin_.sum(dim=(-2, -1)), (bin_ & m).sum(dim=(-2, -1))
    flat = cams.view(b, k, hw)
    flat.ge_(alpha)
    counts = torch.bmm(flat, weights)  # (b, k, 2)
    return counts[..., 0].round().long(), counts[..., 1].round().long()


def _ratio(n_bm: Tensor, n_b: Tensor) -> Tensor:
    """|b ⊙ m| / |b|, 0 where |b| = 0 (the paper's s = 0 for a neuron that focuses nowhere)."""
    zero = torch.zeros((), dtype=torch.float64, device=n_b.device)
    return torch.where(n_b > 0, n_bm.double() / n_b.clamp_min(1).double(), zero)


def per_sample_scores(cams: Tensor, masks: Tensor, alpha: float, *, chunk_size: int = 64) -> Tensor:
    """Per-sample s-scores ``|b ⊙ m| / |b|`` (0 where ``|b| = 0``) of precomputed heatmaps.

    Args:
        cams: (N, K, H, W) normalised heatmaps (from :func:`~.cams.neuron_cams`); not modified.
        masks: (N, H, W) bool (or 0/1) spurious-region masks.
        alpha: binarisation threshold in [0, 1] (``cam >= alpha``, see :func:`binarize`).
        chunk_size: neurons per block (bounds the temporary copy).

    Returns:
        float32 tensor (N, K) in [0, 1]; ``.mean(0)`` is the s-score.
    """
    alpha = _check_alpha(alpha)
    _check_positive("chunk_size", chunk_size)
    if not isinstance(cams, Tensor) or cams.ndim != 4:
        raise ValueError(f"cams must have shape (N, K, H, W), got {getattr(cams, 'shape', type(cams))}")
    masks = _masks_to_bool(masks).to(cams.device)
    if masks.shape[0] != cams.shape[0] or masks.shape[1:] != cams.shape[2:]:
        raise ValueError(f"masks must have shape {(cams.shape[0], *cams.shape[2:])} to match cams, "
                         f"got {tuple(masks.shape)}")
    weights = _count_weights(masks)
    out = torch.empty(cams.shape[:2], dtype=torch.float32, device=cams.device)
    for k0 in range(0, cams.shape[1], chunk_size):
        block = cams[:, k0:k0 + chunk_size].float().clone()
        n_b, n_bm = _overlap_counts_(block, weights, alpha)
        out[:, k0:k0 + chunk_size] = _ratio(n_bm, n_b).float()
    return out


def s_scores(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    alpha: float,
    target_layer: nn.Module | None = None,
    neurons: NeuronIndex = None,
    reduction: Literal["mean", "none"] = "mean",
    chunk_size: int | None = None,
    batch_size: int = 16,
    method: Method = "auto",
) -> Tensor:
    """Neuron spurious scores (paper §3.3): ``s_i = 1/N Σ_j |b_j^i ⊙ m_j| / |b_j^i|``.

    ``b_j^i = cam_j^i >= alpha`` with ``cam`` exactly the maps of :func:`~.cams.neuron_cams`, a
    sample with ``|b| = 0`` contributing 0. Heatmaps are made, binarised and counted
    block by block in one reused buffer, so memory stays bounded for any N and d.
    Compare the result with the chance level :func:`mask_area` (see :func:`lift`).

    Args:
        model: a split model (``.f_enc`` -> z, ``.head``): a SplitModel from :func:`shortcut_nb.models.build_model`
            or ``shortcut_nb.models.as_split_model``; a plain classifier is refused (TypeError), as its output
            is the logits.
        images: (N, C, H, W) inputs.
        masks: (N, H, W) bool (or 0/1) spurious-region masks, same H, W as images.
        alpha: binarisation threshold in [0, 1].
        target_layer: Grad-CAM layer inside ``model.f_enc`` (``model.head`` gives the logits: refused); None
            means ``model.default_target_layer()``.
        neurons: indices into z (default all d).
        reduction: ``"mean"`` (the s-score, shape (K,)) or ``"none"`` (per-sample scores (N, K)).
        chunk_size, batch_size, method: see :func:`~.cams.neuron_cams`.

    Returns:
        float32 tensor (K,) (K = d when ``neurons`` is None) in [0, 1], or (N, K) with ``reduction="none"``.

    Warns:
        SmallTargetMapWarning: the target layer's map (a ViT's patch grid) is smaller than 4x4 (at 32 px a
            ResNet's last map is 1x1 and every score is 0).
    """
    _encoder(model)  # refuses a model without the f_enc / head split before anything else
    alpha = _check_alpha(alpha)
    _check_images(images)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    weights = _count_weights(_masks_to_bool(masks, tuple(images.shape)).to(model_device(model)))
    per: Tensor | None = None
    for bs, ks, cams, n_neurons in _iter_cams(model, images, target_layer=target_layer, neurons=neurons,
                                              chunk_size=chunk_size, batch_size=batch_size, method=method):
        if per is None:
            per = torch.empty(images.shape[0], n_neurons, dtype=torch.float64, device=cams.device)
        n_b, n_bm = _overlap_counts_(cams, weights[bs], alpha)
        per[bs, ks] = _ratio(n_bm, n_b)
    assert per is not None
    return (per.mean(0) if reduction == "mean" else per).float()


# --------------------------------------------------------------------------- chance level


def mask_area(masks: Tensor) -> float:
    """Chance level of the s-score: the mean fraction of pixels inside the spurious mask.

    A heatmap that ignores the image lands on the mask in proportion to its area, so
    its expected s-score is the mean per-sample mask area (background is 80-90 % of a
    Waterbirds-like image; a colour patch about 5 % of an ISIC-like one).

    Args:
        masks: (N, H, W) bool (or 0/1) masks.

    Returns:
        mean over samples of (mask pixels / all pixels), in [0, 1].
    """
    masks = _masks_to_bool(masks)
    if masks.shape[0] == 0:
        raise ValueError("masks must hold at least one sample")
    return float(masks.float().mean(dim=(-2, -1)).mean())


def lift(scores: Tensor, area: float | Tensor) -> Tensor:
    """s-score over its chance level: ``scores / area`` (1 = no better than a heatmap ignoring the image).

    Args:
        scores: s-scores, any shape.
        area: the chance level, a float from :func:`mask_area`, or the masks themselves.

    Returns:
        tensor like ``scores``.
    """
    if isinstance(area, Tensor) and area.ndim >= 2:
        area = mask_area(area)
    area = float(area)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1] (the masks must cover some pixels), got {area}")
    return torch.as_tensor(scores, dtype=torch.float32) / area
