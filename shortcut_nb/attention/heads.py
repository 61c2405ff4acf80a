"""Per-image head statistics: which heads attend from core patches to spurious ones beyond the area.

:func:`per_image_shares` gives, per image, each head's share of attention on spurious patches and
that image's chance level (the spurious patches' share of the grid); :func:`head_statistics`
averages them with a paired per-image test; :func:`heads_beyond_area` names the heads whose share
exceeds the area by a lift of at least ``LIFT_MIN`` and significantly so.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..config import model_device
from .maps import attention_maps
from .shares import Query, heads_above_chance, spurious_attention_share
from .tokens import num_layers_heads, spurious_patches, token_layout

# A head "attends to the spurious region beyond its area" when its mean share is at least
# LIFT_MIN times the mean area and the paired per-image excess (share - area) is above 0
# at one-sided 95 % (mean - Z_ONE_SIDED * standard error > 0).
LIFT_MIN = 1.25
Z_ONE_SIDED = 1.645


def check_masks(masks: Tensor, n: int) -> Tensor:
    """``masks`` as bool, after checking it is (n, H, W)."""
    if not isinstance(masks, Tensor) or masks.ndim != 3 or masks.shape[0] != n:
        raise ValueError(f"masks must be a (N, H, W) tensor with N={n}, got {getattr(masks, 'shape', type(masks))}")
    return masks.bool()


def per_image_shares(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    query: Query = "core",
    threshold: float = 0.5,
    batch_size: int = 8,
) -> tuple[Tensor, Tensor, list[int]]:
    """Per image: each head's share of attention (from ``query`` patches) on spurious patches, and the area.

    Only images that have at least one spurious patch and at least one patch of the
    query kind count (an image without spurious patches cannot show attention to them).
    The attention is computed batch by batch, so memory stays bounded for ViT-B.

    Args:
        model: a ViT SplitModel (or timm ViT/DeiT).
        images: (N, 3, H, W) at the model's input size.
        masks: (N, H, W) bool spurious masks aligned with the images.
        query: ``"core"`` (every non-spurious patch, averaged), ``"spurious"``, ``"cls"``
            or a fixed ``(row, col)``; see :func:`~shortcut_nb.attention.spurious_attention_share`.
        threshold: a patch is spurious when more than this fraction of it is.
        batch_size: images per forward pass.

    Returns:
        ``shares`` (M, L, H) in [0, 1], ``areas`` (M,) (spurious patches' share of the grid,
        the chance level of each image) and the M indices of the images used.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    masks = check_masks(masks, images.shape[0])
    layout = token_layout(model)
    labels = spurious_patches(masks, layout, threshold)  # (N, P)
    n_spur = labels.sum(1)
    if query == "core":
        ok = (n_spur > 0) & (n_spur < layout.num_patches)
    else:
        ok = n_spur > 0
    dev = model_device(model)
    shares, areas, used = [], [], []
    for b0 in range(0, images.shape[0], batch_size):
        sel = [i for i in range(b0, min(b0 + batch_size, images.shape[0])) if bool(ok[i])]
        if not sel:
            continue
        attn = attention_maps(model, images[sel].to(dev))
        lab = labels[sel].to(attn.device)
        for j, i in enumerate(sel):  # one image at a time: each image's own mean over its query patches
            shares.append(spurious_attention_share(attn[j:j + 1], lab[j:j + 1], layout, query=query).cpu())
            areas.append(float(labels[i].float().mean()))
            used.append(i)
        del attn
    if not used:
        L, H = num_layers_heads(model)
        return torch.zeros(0, L, H), torch.zeros(0), []
    return torch.stack(shares), torch.tensor(areas, dtype=torch.float32), used


def head_statistics(shares: Tensor, areas: Tensor, *, z: float = Z_ONE_SIDED) -> dict[str, Any]:
    """Mean share per head against the chance level, with a paired per-image test.

    Args:
        shares: (M, L, H) per-image shares from :func:`per_image_shares`.
        areas: (M,) per-image spurious area (chance level).
        z: one-sided normal quantile of the test (1.645: 95 %).

    Returns:
        ``{"n_images", "share" (L, H), "area" (float), "lift" (L, H) = share / area (NaN when
        area is 0), "excess" (L, H) mean of share - area, "se" (L, H), "lower" (L, H) =
        excess - z * se (NaN with fewer than 2 images)}`` as numpy arrays.
    """
    if not isinstance(shares, Tensor) or shares.ndim != 3:
        raise ValueError(f"shares must be an (M, L, H) tensor, got {getattr(shares, 'shape', type(shares))}")
    if not isinstance(areas, Tensor) or areas.shape != shares.shape[:1]:
        raise ValueError(f"areas must be a tensor of shape ({shares.shape[0]},), got {getattr(areas, 'shape', None)}")
    m, L, H = shares.shape
    s = shares.double().numpy()
    a = areas.double().numpy()
    if m == 0:
        nan = np.full((L, H), np.nan)
        return {"n_images": 0, "share": nan, "area": float("nan"), "lift": nan, "excess": nan, "se": nan,
                "lower": nan}
    excess = s - a[:, None, None]
    mean_area = float(a.mean())
    share = s.mean(0)
    lift = share / mean_area if mean_area > 0 else np.full((L, H), np.nan)
    se = excess.std(0, ddof=1) / math.sqrt(m) if m > 1 else np.full((L, H), np.nan)
    return {"n_images": int(m), "share": share, "area": mean_area, "lift": lift, "excess": excess.mean(0),
            "se": se, "lower": excess.mean(0) - z * se}


def heads_beyond_area(stats: Mapping[str, Any], *, lift_min: float = LIFT_MIN) -> list[tuple[int, int]]:
    """(layer, head) pairs that put more attention on spurious patches than their area explains.

    A head counts when its mean share is at least ``lift_min`` times the mean area and the
    paired per-image excess is significantly above 0 (``stats["lower"] > 0``, one-sided).

    Args:
        stats: from :func:`head_statistics`.
        lift_min: smallest lift that counts (1.25: a quarter more than chance).

    Returns:
        0-based (layer, head) pairs, largest lift first.
    """
    if not lift_min >= 1.0:
        raise ValueError(f"lift_min must be >= 1 (1 is chance), got {lift_min}")
    lift = np.asarray(stats["lift"], dtype=np.float64)
    lower = np.asarray(stats["lower"], dtype=np.float64)
    if not np.isfinite(stats["area"]) or stats["area"] <= 0:
        return []
    cand = heads_above_chance(torch.as_tensor(np.nan_to_num(stats["share"], nan=0.0)), float(stats["area"]),
                              lift_min - 1.0 - 1e-12, by="lift")
    return [(l, h) for l, h in cand if np.isfinite(lower[l, h]) and lower[l, h] > 0 and lift[l, h] >= lift_min]
