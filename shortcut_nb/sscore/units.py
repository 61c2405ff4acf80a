"""s-scores of the units of any layer: a conv block's channels, a ViT block's hidden units.

A *unit* of ``layer`` is one of its channels (a CNN block's output (B, C, h, w)) or hidden units
(a ViT block's ``norm1`` output (B, T, C), tokens reshaped to the patch grid as
:func:`~.reference.reference_cams` does, the prefix tokens dropped). Its scalar is its mean over
the layer's positions (the patch tokens for a ViT), as a CNN's penultimate neuron is the mean of
the last block's channel. Its heatmap is a CAM *at that layer* of that scalar, finished as
pytorch-grad-cam finishes it (:func:`~.cams.gradcam_scale`).

**An exact analytic path, and a finding.** ``∂(mean_p A_k,p)/∂A = 1/P`` on channel ``k`` (P
positions) and 0 elsewhere, a gradient constant in space and positive. So every CAM method whose
weights come from that gradient gives ``c_k · A_k`` with a per-image factor ``c_k``, from one
forward pass per batch for all units:

* ``"gradcam"`` (Grad-CAM: spatial mean of the gradient), ``"hirescam"`` (gradient ⊙ activation),
  ``"layercam"`` (ReLU(gradient) ⊙ activation): ``c_k = 1/P`` — **the three coincide exactly**;
* ``"xgradcam"``: ``c_k = (S_k/P) / (S_k + 1e-7)``, ``S_k = Σ_p A_k,p`` (equal to them unless S_k ≈ 0);
* ``"gradcam++"``: ``c_k = g²/(2g² + S_k g³ + 1e-6)`` with ``g = 1/P`` — positive (the same map) unless
  the unit's mean activation is below about ``-2``, where its weight turns negative and the map is
  the ReLU of ``-A_k`` (a ViT's ``norm1`` can get there; a post-ReLU CNN block never does).

So at a unit's own layer the four methods the paper's question needs (Grad-CAM, Grad-CAM++,
HiResCAM, LayerCAM) give the same heatmaps wherever ``A_k`` has a mean above -2: the method is
not a degree of freedom of a unit's s-score. Where methods differ, ``method`` selects
pytorch-grad-cam's own class: ``"scorecam"`` (perturbation weights, no gradient; no shortcut
exists, so pytorch-grad-cam itself runs, one call per unit: slow, for small sets). All paths equal
pytorch-grad-cam's classes with a target returning the unit's mean (:func:`~.reference.reference_unit_cams`)
to ~1e-6.

For ``layer`` = a CNN's default target layer (the last block, globally mean-pooled into z), the units
*are* the penultimate neurons and :func:`unit_s_scores` equals :func:`~.metric.s_scores`. For a ViT
the penultimate neuron is the final class token, not a token mean of the last ``norm1``: its units
there are different scalars, and the two scores differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..config import model_device
from .cams import _BLOCK_PIXELS, gradcam_scale
from .layers import NeuronIndex, _check_images, _encoder, _EvalMode, _geometry, _neuron_index, _probe, \
    _resolve_layer, _to_map
from .metric import _check_alpha
from .reference import reference_unit_cams
from .target_map import _warn_small_map
from .variants import ScoredMasks, Variant, block_scores_, check_dilation, check_variant

CamMethod = Literal["gradcam", "gradcam++", "hirescam", "layercam", "xgradcam", "scorecam"]
#: The four methods compared per unit (they coincide at a unit's own layer: see the module docstring).
CAM_METHODS: tuple[CamMethod, ...] = ("gradcam", "gradcam++", "hirescam", "layercam")
#: Methods with the exact analytic path; the others run pytorch-grad-cam itself.
ANALYTIC_METHODS: tuple[CamMethod, ...] = ("gradcam", "gradcam++", "hirescam", "layercam", "xgradcam")
ALL_METHODS: tuple[CamMethod, ...] = (*ANALYTIC_METHODS, "scorecam")
BATCH_SIZE = 16  # images per forward pass

__all__ = ["ALL_METHODS", "ANALYTIC_METHODS", "BATCH_SIZE", "CAM_METHODS", "CamMethod", "UnitScores", "check_method",
           "layer_units", "unit_cams", "unit_per_sample", "unit_s_scores"]


def check_method(method: str) -> CamMethod:
    if method not in ALL_METHODS:
        raise ValueError(f"method must be one of {ALL_METHODS}, got {method!r}")
    return method  # type: ignore[return-value]


def _analytic_unit_raw(amap: Tensor, idx: Tensor, method: CamMethod) -> Tensor:
    """(B, C, h, w) layer output -> raw CAMs (B, K, h, w) of the units' means: ``c_k · A_k`` (see module doc)."""
    a = amap[:, idx].float()
    h, w = a.shape[-2:]
    p = h * w
    if method in ("gradcam", "hirescam", "layercam"):
        return a * (1.0 / p)  # the true gradient, so the 1e-7 of the normalisation acts as in pytorch-grad-cam
    s = a.sum((-2, -1), keepdim=True)
    g = torch.tensor(1.0 / p, dtype=torch.float32, device=a.device)
    if method == "xgradcam":
        return a * ((s * g) / (s + 1e-7))
    g2 = g * g
    aij = g2 / (2 * g2 + s * (g2 * g) + 1e-6)  # pytorch-grad-cam's GradCAMPlusPlus, in float32
    return a * (aij * (g * p))  # Σ_p ReLU(g) · aij


def layer_units(model: nn.Module, layer: nn.Module, images: Tensor) -> int:
    """Number of units of ``layer`` (its channels / hidden units) on inputs like ``images``."""
    enc = _encoder(model)
    with _EvalMode(enc):
        probe = _probe(enc, _resolve_layer(model, layer, arg="layer"), images[:1].to(model_device(model)))
    geo = _geometry(enc, probe.act)
    return int(probe.act.shape[-1] if geo.tokens else probe.act.shape[1])


def _iter_unit_cams(model: nn.Module, images: Tensor, *, layer: nn.Module, units: NeuronIndex, method: CamMethod,
                    batch_size: int = BATCH_SIZE) -> Iterator[tuple[slice, slice, Tensor, int]]:
    """Yield (image slice, unit slice, final cams (b, k, H, W), K in all); a block lives in a reused buffer.

    A layer map below MIN_MAP_SIDE on a side gives a :class:`~.target_map.SmallTargetMapWarning` (once).
    """
    enc = _encoder(model)  # a model that is not split fails first, whatever else is wrong
    _check_images(images)
    method = check_method(method)
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module of the model (a conv block, or a ViT block's norm1), "
                        f"got {type(layer).__name__}")
    layer = _resolve_layer(model, layer, arg="layer")
    device = model_device(model)
    H, W = images.shape[-2], images.shape[-1]
    buf: Tensor | None = None
    max_maps = 0
    with _EvalMode(enc):
        for b0 in range(0, images.shape[0], batch_size):
            x = images[b0:b0 + batch_size].to(device)
            probe = _probe(enc, layer, x)
            geo = _geometry(enc, probe.act)
            if b0 == 0:
                _warn_small_map(model, layer, (geo.h, geo.w), (H, W), tokens=geo.tokens, arg="layer")
            amap = _to_map(probe.act, geo)
            idx = _neuron_index(units, amap.shape[1], device)
            b, k_all = x.shape[0], len(idx)
            if method not in ANALYTIC_METHODS:
                ref = reference_unit_cams(model, x, idx.tolist(), layer=layer, method=method)
                yield slice(b0, b0 + b), slice(0, k_all), torch.from_numpy(ref).to(device), k_all
                continue
            raw = _analytic_unit_raw(amap, idx, method)
            if buf is None:
                max_maps = min(max(b, _BLOCK_PIXELS // (H * W)), b * k_all)
                buf = torch.empty(max_maps * H * W, dtype=torch.float32, device=device)
            k_blk = max(1, max_maps // b)
            for k0 in range(0, k_all, k_blk):
                yield slice(b0, b0 + b), slice(k0, k0 + k_blk), gradcam_scale(raw[:, k0:k0 + k_blk], (H, W),
                                                                             out=buf), k_all


def unit_cams(model: nn.Module, images: Tensor, *, layer: nn.Module, units: NeuronIndex = None,
              method: CamMethod = "gradcam") -> Tensor:
    """CAM heatmaps of units of any layer (see the module docstring), as pytorch-grad-cam computes them.

    Equals, per unit ``k``, ``<method's class>(model=<x -> layer output>, target_layers=[layer],
    reshape_transform=<ViT: drop prefix tokens, reshape to the grid>)(images, targets=[<mean of unit k
    over positions>] * N)`` to float rounding; the analytic methods take one forward pass per image batch
    for all units.

    Args:
        model: a split model (``.f_enc``, ``.head``), e.g. from :func:`shortcut_nb.models.build_model`; a plain
            classifier is refused (TypeError).
        images: (N, C, H, W) inputs (moved to the model's device).
        layer: a module of the model's encoder ``model.f_enc``: a conv block (units = channels) or a ViT block's
            ``norm1`` (units = hidden units, positions = patch tokens); ``model.head`` (the logits) is refused.
        units: unit indices (default all).
        method: ``"gradcam"`` (default), ``"gradcam++"``, ``"hirescam"``, ``"layercam"``, ``"xgradcam"``
            (analytic) or ``"scorecam"`` (pytorch-grad-cam itself).

    Returns:
        float32 tensor (N, K, H, W) on the model's device, each map min-max normalised to [0, 1).
    """
    out: Tensor | None = None
    for bs, ks, cams, k_all in _iter_unit_cams(model, images, layer=layer, units=units, method=method):
        if out is None:
            out = torch.empty(images.shape[0], k_all, *cams.shape[-2:], dtype=torch.float32, device=cams.device)
        out[bs, ks] = cams
    assert out is not None
    return out


@dataclass
class UnitScores:
    """Per-sample scores of a layer's units and their chance levels.

    Attributes:
        per_sample: float64 (N, K) per-sample scores; ``.mean(0)`` is the s-score.
        chance: float64 (N, K) per-sample chance levels (:func:`~.variants.chance_levels`).
        variant, dilation, method, alpha: how they were made.
    """

    per_sample: np.ndarray
    chance: np.ndarray
    variant: str
    dilation: int
    method: str
    alpha: float

    @property
    def scores(self) -> np.ndarray:
        """(K,) s-scores."""
        return self.per_sample.mean(0)

    @property
    def area(self) -> float:
        """The mean chance level (for ``"hard"``/``"soft"``: the mean area of the scored masks)."""
        return float(self.chance.mean())


def unit_per_sample(model: nn.Module, images: Tensor, masks: Tensor, *, layer: nn.Module, alpha: float,
                    variant: Variant = "hard", dilation: int = 0, method: CamMethod = "gradcam",
                    units: NeuronIndex = None, batch_size: int = BATCH_SIZE) -> UnitScores:
    """Per-sample scores (and chance levels) of units of ``layer``; heatmaps never all held at once.

    Args: as :func:`unit_s_scores`, plus ``units`` (default all) and ``batch_size`` (images per pass).
    """
    per, chance = _per_sample_tensors(model, images, masks, layer=layer, alpha=alpha, variant=variant,
                                      dilation=dilation, method=method, units=units, batch_size=batch_size)
    return UnitScores(per.cpu().numpy(), chance.cpu().numpy(), variant, dilation, method, float(_check_alpha(alpha)))


def _per_sample_tensors(model: nn.Module, images: Tensor, masks: Tensor, *, layer: nn.Module, alpha: float,
                        variant: Variant, dilation: int, method: CamMethod, units: NeuronIndex,
                        batch_size: int) -> tuple[Tensor, Tensor]:
    _encoder(model)  # refuses a model without the f_enc / head split before anything else
    alpha = _check_alpha(alpha)
    variant = check_variant(variant)
    dilation = check_dilation(dilation)
    _check_images(images)
    device = model_device(model)
    scored = ScoredMasks.build(masks, dilation=dilation, device=device)
    if scored.masks.shape[0] != images.shape[0] or scored.masks.shape[1:] != images.shape[2:]:
        raise ValueError(f"masks must have shape {(images.shape[0], *images.shape[2:])} to match images, "
                         f"got {tuple(scored.masks.shape)}")
    per = chance = None
    for bs, ks, cams, k_all in _iter_unit_cams(model, images, layer=layer, units=units, method=method,
                                               batch_size=batch_size):
        if per is None:
            per = torch.empty(images.shape[0], k_all, dtype=torch.float64, device=device)
            chance = torch.empty_like(per)
        per[bs, ks], chance[bs, ks] = block_scores_(cams, scored[bs], alpha=alpha, variant=variant)
    assert per is not None and chance is not None
    return per, chance


def unit_s_scores(model: nn.Module, images: Tensor, masks: Tensor, *, layer: nn.Module, alpha: float,
                  variant: Variant = "hard", dilation: int = 0, method: CamMethod = "gradcam") -> Tensor:
    """s-scores of every unit of ``layer`` (see the module docstring and :mod:`.variants`).

    ``s_k = 1/N Σ_j score(cam_j^k, m_j)`` with ``score`` the variant's: ``"hard"`` (the paper's,
    ``|b ⊙ m| / |b|``, b = cam >= alpha), ``"soft"`` (``Σ cam ⊙ m / Σ cam``, no alpha) or ``"iou"``
    (``|b ⊙ m| / |b ∪ m|``), against the masks grown by ``dilation`` pixels. For a CNN with ``layer`` =
    ``model.default_target_layer()`` and the defaults, equals :func:`~.metric.s_scores` (the units are
    the penultimate neurons). For a ViT's last ``norm1`` it does not: its penultimate neuron is the final
    class token, not a token mean.

    Args:
        model: a split model (``.f_enc``, ``.head``); a plain classifier is refused (TypeError).
        images: (N, C, H, W) inputs.
        masks: (N, H, W) bool (or 0/1) spurious masks.
        layer: a conv block or a ViT block's ``norm1`` inside ``model.f_enc`` (``model.head`` is refused).
        alpha: binarisation threshold in [0, 1].
        variant: ``"hard"`` (default), ``"soft"`` or ``"iou"``.
        dilation: pixels the masks are grown by (0: the exact masks).
        method: the CAM method (see :func:`unit_cams`).

    Returns:
        float32 CPU tensor (K,) in [0, 1].

    Warns:
        SmallTargetMapWarning: the layer's map (a ViT's patch grid) is smaller than 4x4.
    """
    per, _ = _per_sample_tensors(model, images, masks, layer=layer, alpha=alpha, variant=variant, dilation=dilation,
                                 method=method, units=None, batch_size=BATCH_SIZE)
    return per.mean(0).float().cpu()
