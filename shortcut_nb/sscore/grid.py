"""s-scores on a grid of thresholds: the heatmaps are made once and binarised at every alpha.

The paper does not state its binarisation threshold alpha, so notebook 03 shows how the bands move
with it; :func:`score_grid` gives every per-sample score at every alpha of a grid for the cost of one
:func:`~.cams.neuron_cams` pass per neuron chunk.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..config import model_device
from .cams import _collect_cams, _iter_cams
from .layers import _encoder, _EvalMode

ALPHA_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95
CAM_BUDGET_BYTES = 2**28  # heatmap memory one chunk of neurons may hold


def check_alphas(alphas: Sequence[float]) -> np.ndarray:
    """Validate an alpha grid: a non-empty, strictly increasing sequence in [0, 1]; float64 array."""
    arr = np.asarray(list(alphas), dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or np.any(arr < 0) or np.any(arr > 1) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"alphas must be a non-empty increasing sequence in [0, 1], got {list(alphas)!r}")
    return arr


def alpha_grid(*extra: float, base: Sequence[float] = ALPHA_GRID) -> tuple[float, ...]:
    """``base`` (default :data:`ALPHA_GRID`) with the thresholds ``extra`` added, sorted, duplicates dropped.

    The notebook adds its ``ALPHA`` parameter so any chosen value is precomputed.
    """
    values = sorted({round(float(a), 6) for a in (*base, *extra)})
    check_alphas(values)
    return tuple(values)


def score_grid(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, alphas: Sequence[float], *,
               budget_bytes: int = CAM_BUDGET_BYTES,
               chunks: Callable[[Sequence[int]], Iterable[int]] = iter) -> np.ndarray:
    """Per-sample s-scores of every penultimate neuron at every alpha of a grid, heatmaps computed once.

    Neurons are processed in chunks sized so that one chunk's heatmaps (N x k x H x W
    float32) fit in ``budget_bytes``; each chunk's maps (:func:`~.cams.neuron_cams`)
    are binarised at every alpha in one pass (:func:`grid_scores`). The result
    at one alpha equals ``sscore.s_scores(model, images, masks, alpha=a, reduction="none")``.

    Args:
        model: a split model (``.f_enc``, ``.head``; CNN: the analytic Grad-CAM path, one forward pass per chunk);
            a plain classifier is refused (TypeError).
        images: (N, 3, H, W) inputs.
        masks: (N, H, W) bool spurious masks.
        alphas: increasing thresholds in [0, 1].
        budget_bytes: heatmap memory held at once.
        chunks: wraps the chunk starts (a progress bar, say: the core prints nothing itself).

    Returns:
        float32 array (A, N, d) in [0, 1]; ``.mean(1)`` gives the s-scores per alpha.

    Warns:
        SmallTargetMapWarning: once, when the default target layer's map is smaller than 4x4.
    """
    enc = _encoder(model)
    grid = check_alphas(alphas)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, 3, H, W), got {getattr(images, 'shape', type(images))}")
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must be a tensor of shape {(images.shape[0], *images.shape[2:])}, "
                         f"got {getattr(masks, 'shape', type(masks))}")
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ValueError(f"budget_bytes must be a positive int, got {budget_bytes!r}")
    device = model_device(model)
    with _EvalMode(enc), torch.no_grad():
        d = int(enc(images[:1].to(device)).shape[1])
    n, h, w = images.shape[0], images.shape[2], images.shape[3]
    chunk = max(1, min(d, budget_bytes // (4 * n * h * w)))
    out = np.empty((len(grid), n, d), dtype=np.float32)
    starts = range(0, d, chunk)
    for i, k0 in enumerate(chunks(starts)):
        neurons = list(range(k0, min(d, k0 + chunk)))
        # neuron_cams with its defaults, the small-map warning given once, not once per chunk
        cams = _collect_cams(_iter_cams(model, images, target_layer=None, neurons=neurons, chunk_size=None,
                                        batch_size=16, method="auto", warn_small=i == 0), images)
        out[:, :, k0:k0 + len(neurons)] = grid_scores(cams, masks, grid).permute(2, 0, 1).cpu().numpy()
        del cams
    return out


def grid_scores(cams: torch.Tensor, masks: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """Per-sample scores ``|b ⊙ m| / |b|`` of precomputed heatmaps at every alpha of a grid, in one pass.

    Equals ``sscore.per_sample_scores(cams, masks, a)`` for each ``a`` (same ``cam >= alpha`` in float32,
    same 0 where ``|b| = 0``), but bins every pixel once instead of binarising once per alpha: each
    pixel's bin is the number of thresholds at or below its value, and ``|b|`` at ``alphas[a]`` is the
    number of pixels in bins above ``a``.

    Args:
        cams: (N, K, H, W) normalised heatmaps (from :func:`~.cams.neuron_cams`).
        masks: (N, H, W) bool spurious masks.
        alphas: increasing thresholds in [0, 1].

    Returns:
        float32 tensor (N, K, A) on the cams' device.
    """
    grid = check_alphas(alphas)
    if not isinstance(cams, torch.Tensor) or cams.ndim != 4:
        raise ValueError(f"cams must have shape (N, K, H, W), got {getattr(cams, 'shape', type(cams))}")
    if not isinstance(masks, torch.Tensor) or masks.shape != (cams.shape[0], *cams.shape[2:]):
        raise ValueError(f"masks must have shape {(cams.shape[0], *cams.shape[2:])} to match cams, "
                         f"got {getattr(masks, 'shape', type(masks))}")
    n, k = cams.shape[:2]
    a = len(grid)
    # thresholds rounded to float32 as sscore does, so ``cam >= alpha`` is decided in one precision
    bounds = torch.tensor(np.float32(grid), dtype=torch.float32, device=cams.device)
    out = torch.empty(n, k, a, dtype=torch.float32, device=cams.device)
    m = masks.to(cams.device).reshape(n, -1).long()
    for j in range(n):  # one sample at a time bounds the (K, H*W) int64 temporaries
        bins = torch.bucketize(cams[j].reshape(k, -1).float(), bounds, right=True)  # thresholds <= value
        counts = torch.zeros(k, a + 1, dtype=torch.long, device=cams.device)
        counts.scatter_add_(1, bins, torch.ones_like(bins))
        inside = torch.zeros(k, a + 1, dtype=torch.long, device=cams.device)
        inside.scatter_add_(1, bins, m[j].expand(k, -1))
        # pixels with cam >= alphas[i] are those in bins i+1 .. a: a cumulative sum from the top
        n_b = counts.flip(1).cumsum(1).flip(1)[:, 1:]
        n_bm = inside.flip(1).cumsum(1).flip(1)[:, 1:]
        ratio = torch.where(n_b > 0, n_bm.double() / n_b.clamp_min(1).double(), torch.zeros((), dtype=torch.float64,
                                                                                              device=cams.device))
        out[j] = ratio.float()
    return out
