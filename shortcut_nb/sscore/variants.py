"""Variants of the s-score: the paper's hard precision, a soft precision, IoU, and a dilated mask.

For one heatmap ``cam`` (H, W) in [0, 1) of a unit on image ``j``, its spurious mask ``m``
(H, W) and ``b = cam >= alpha`` (:func:`~.metric.binarize`), the per-sample scores are

* ``"hard"`` (the paper's, §3.3; the default): ``|b ⊙ m| / |b|``, 0 where ``|b| = 0``.
  Equals Quantus's ``TopKIntersection`` with ``k = |b|`` (the top-k pixels of a map are
  exactly its pixels at or above alpha) and ``normalise=False``.
* ``"soft"``: ``Σ cam ⊙ m / Σ cam``, the attribution mass inside the mask over the total,
  no alpha; 0 where ``Σ cam = 0``. Equals Quantus's ``RelevanceMassAccuracy``.
* ``"iou"``: ``|b ⊙ m| / |b ∪ m|`` (as SpuCo and NetDissect use), 0 where the union is empty.

and ``dilation = r`` scores against the mask grown by ``r`` pixels in every direction
(:func:`dilate_masks`: a (2r+1) x (2r+1) square, i.e. every pixel within Chebyshev distance
r of the mask), so a unit that looks at the *edge* of a patch (the paper's Appendix A) is
caught. The s-score is the mean over the N samples.

Chance levels (what a heatmap that ignores the image scores in expectation): the scored
mask's area for ``"hard"`` and ``"soft"`` (per sample); for ``"iou"`` the IoU of a random
pixel set of the same size ``|b|``: ``|b| a / (|b| + |m| - |b| a)`` with ``a`` the mask's
area (:func:`chance_levels`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .metric import _check_alpha, _count_weights, _masks_to_bool, _overlap_counts_, _ratio

Variant = Literal["hard", "soft", "iou"]
VARIANTS: tuple[Variant, ...] = ("hard", "soft", "iou")

__all__ = ["VARIANTS", "Variant", "ScoredMasks", "check_variant", "check_dilation", "chance_levels", "dilate_masks",
           "block_scores_", "variant_scores"]


def check_variant(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant  # type: ignore[return-value]


def check_dilation(dilation: int) -> int:
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 0:
        raise ValueError(f"dilation must be an int >= 0 (pixels), got {dilation!r}")
    return dilation


def dilate_masks(masks: Tensor, r: int) -> Tensor:
    """Masks grown by ``r`` pixels: every pixel within Chebyshev distance ``r`` of a mask pixel.

    Args:
        masks: (N, H, W) bool (or 0/1).
        r: pixels, >= 0 (0 returns the masks as bool).

    Returns:
        bool tensor (N, H, W) on the masks' device.
    """
    r = check_dilation(r)
    m = _masks_to_bool(masks)
    if r == 0:
        return m
    grown = F.max_pool2d(m[:, None].float(), kernel_size=2 * r + 1, stride=1, padding=r)
    return grown[:, 0] > 0.5


@dataclass(frozen=True)
class ScoredMasks:
    """The masks a score is computed against (dilated already), with what every block reuses.

    Attributes:
        masks: (N, H, W) bool.
        weights: (N, H*W, 2) float32 columns ``[1, m]`` (one matrix product counts ``|b|`` and ``|b ⊙ m|``).
        n_m: (N,) float64 mask pixels.
        area: (N,) float64 mask area (mask pixels / all pixels).
    """

    masks: Tensor
    weights: Tensor
    n_m: Tensor
    area: Tensor

    @classmethod
    def build(cls, masks: Tensor, *, dilation: int = 0, device: torch.device | str | None = None) -> "ScoredMasks":
        m = dilate_masks(_masks_to_bool(masks).to(device) if device is not None else masks, dilation)
        n_m = m.flatten(1).sum(1).double()
        return cls(masks=m, weights=_count_weights(m), n_m=n_m, area=n_m / float(m.shape[-1] * m.shape[-2]))

    def __getitem__(self, s: slice) -> "ScoredMasks":
        return ScoredMasks(self.masks[s], self.weights[s], self.n_m[s], self.area[s])


def chance_levels(variant: Variant, n_b: Tensor, scored: ScoredMasks) -> Tensor:
    """Per (sample, unit) chance level of a variant (see the module docstring).

    Args:
        variant: ``"hard"``, ``"soft"`` or ``"iou"``.
        n_b: (b, k) pixels kept at alpha (used by ``"iou"`` only).
        scored: the block's masks.

    Returns:
        float64 (b, k).
    """
    area = scored.area[:, None].expand(n_b.shape).double()
    if variant != "iou":
        return area.clone()
    nb = n_b.double()
    inter = nb * area
    union = nb + scored.n_m[:, None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def block_scores_(cams: Tensor, scored: ScoredMasks, *, alpha: float, variant: Variant) -> tuple[Tensor, Tensor]:
    """Per-sample scores and chance levels of a block of heatmaps; ``cams`` is overwritten.

    Args:
        cams: (b, k, H, W) float32 normalised maps (destroyed: binarised in place).
        scored: the block's masks (b samples).
        alpha: float32-rounded threshold (ignored by ``"soft"`` except for its chance level's counts).
        variant: ``"hard"``, ``"soft"`` or ``"iou"``.

    Returns:
        ``(scores, chance)``, float64 (b, k) each.
    """
    b, k = cams.shape[:2]
    soft = None
    if variant == "soft":
        flat = cams.reshape(b, k, -1).double()
        total = flat.sum(-1)
        inside = torch.bmm(flat, scored.masks.reshape(b, -1, 1).double())[..., 0]
        soft = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    n_b, n_bm = _overlap_counts_(cams, scored.weights, alpha)
    if variant == "hard":
        scores = _ratio(n_bm, n_b)
    elif variant == "iou":
        union = n_b + scored.n_m.round().long()[:, None] - n_bm
        scores = _ratio(n_bm, union)
    else:
        scores = soft
    return scores, chance_levels(variant, n_b, scored)


def variant_scores(cams: Tensor, masks: Tensor, *, alpha: float, variant: Variant = "hard", dilation: int = 0,
                   chunk_size: int = 64) -> Tensor:
    """Per-sample scores of precomputed heatmaps under a variant (see the module docstring).

    ``variant="hard", dilation=0`` equals :func:`~.metric.per_sample_scores` (in float64).

    Args:
        cams: (N, K, H, W) normalised heatmaps; not modified.
        masks: (N, H, W) bool (or 0/1) spurious masks.
        alpha: threshold in [0, 1] (``cam >= alpha``).
        variant: ``"hard"``, ``"soft"`` or ``"iou"``.
        dilation: grow the masks by this many pixels first.
        chunk_size: units per block (bounds the temporary copy).

    Returns:
        float64 tensor (N, K) in [0, 1].
    """
    alpha = _check_alpha(alpha)
    variant = check_variant(variant)
    if not isinstance(cams, Tensor) or cams.ndim != 4:
        raise ValueError(f"cams must have shape (N, K, H, W), got {getattr(cams, 'shape', type(cams))}")
    scored = ScoredMasks.build(masks, dilation=dilation, device=cams.device)
    if scored.masks.shape[0] != cams.shape[0] or scored.masks.shape[1:] != cams.shape[2:]:
        raise ValueError(f"masks must have shape {(cams.shape[0], *cams.shape[2:])} to match cams, "
                         f"got {tuple(scored.masks.shape)}")
    out = torch.empty(cams.shape[:2], dtype=torch.float64, device=cams.device)
    for k0 in range(0, cams.shape[1], chunk_size):
        block = cams[:, k0:k0 + chunk_size].float().clone()
        out[:, k0:k0 + chunk_size] = block_scores_(block, scored, alpha=alpha, variant=variant)[0]
    return out
