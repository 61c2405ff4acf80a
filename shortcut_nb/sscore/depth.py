"""The depth profile: where in the network the shortcut lives, block by block.

For every block of a model (:func:`model_blocks`: a CNN's residual blocks in order, a ViT's blocks'
``norm1``), the units' s-scores (:func:`~.units.unit_per_sample`, the analytic path: one forward
pass per image batch and block) are summarised (:func:`depth_profile`) by

* ``median`` (and ``mean``) s-score;
* ``share_high``: the share of units above the paper's high band (s > 0.7);
* ``share_above_chance``: the share with s above the chance level (the mean mask area);
* ``share_significant``: the share significantly above chance (:func:`~.uncertainty.chance_test`,
  one-sided bootstrap over the N samples).

The paper's contribution 4 ("spurious features are encoded in different parts of the network") is
argued with masks, never measured layer by layer; this measures it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from torch import Tensor, nn

from ..bands import BAND_HIGH
from .layers import _encoder
from .units import CamMethod, UnitScores, unit_per_sample
from .uncertainty import LEVEL, N_BOOT, chance_test
from .variants import Variant

#: The per-block numbers of a profile (:meth:`DepthProfile.rows`).
ROW_KEYS = ("block", "depth", "units", "median", "mean", "share_high", "share_above_chance", "share_significant",
            "chance")

__all__ = ["DepthProfile", "ROW_KEYS", "block_row", "depth_profile", "model_blocks"]


def model_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The blocks a depth profile walks, input to output, by name.

    A CNN (timm ResNet: ``layer1`` .. ``layer4``): every residual block (``"layer3.1"``), the last one
    being the default Grad-CAM target. A ViT (``blocks``): every block's ``norm1`` (``"blocks.2.norm1"``).
    """
    enc = _encoder(model)
    if hasattr(enc, "blocks") and all(hasattr(b, "norm1") for b in enc.blocks):
        return {f"blocks.{i}.norm1": b.norm1 for i, b in enumerate(enc.blocks)}
    stages = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(enc, n)]
    if not stages:
        raise ValueError("model_blocks knows timm ResNets (layer1..layer4) and ViTs (blocks[i].norm1); "
                         f"got {type(enc).__name__}")
    return {f"{s}.{i}": blk for s in stages for i, blk in enumerate(getattr(enc, s))}


def block_row(name: str, depth: int, res: UnitScores, test: Mapping[str, np.ndarray], *,
              high: float = BAND_HIGH) -> dict[str, Any]:
    """One block's numbers (keys :data:`ROW_KEYS`) from its units' scores and their chance test."""
    s = res.scores
    area = res.area
    return {"block": name, "depth": int(depth), "units": int(s.size), "median": float(np.median(s)),
            "mean": float(s.mean()), "share_high": float((s > high).mean()),
            "share_above_chance": float((s > area).mean()), "share_significant": float(test["significant"].mean()),
            "chance": area}


@dataclass
class DepthProfile:
    """Per block: the units' s-scores and their summary.

    Attributes:
        blocks: block names, input to output.
        scores: per block, (K,) s-scores.
        significant: per block, (K,) bool, significantly above chance.
        rows: per block, :func:`block_row`'s numbers.
        alpha, variant, dilation, method: how the units were scored.
    """

    blocks: list[str]
    scores: list[np.ndarray]
    significant: list[np.ndarray]
    rows: list[dict[str, Any]]
    alpha: float
    variant: str = "hard"
    dilation: int = 0
    method: str = "gradcam"
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-able: the settings and the rows (scores left out)."""
        return {"alpha": self.alpha, "variant": self.variant, "dilation": self.dilation, "method": self.method,
                "blocks": [dict(r) for r in self.rows]}


def depth_profile(model: nn.Module, images: Tensor, masks: Tensor, *, alpha: float, variant: Variant = "hard",
                  dilation: int = 0, method: CamMethod = "gradcam", blocks: Mapping[str, nn.Module] | None = None,
                  high: float = BAND_HIGH, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> DepthProfile:
    """The depth profile of ``model`` on ``images`` / ``masks`` (see the module docstring).

    Args:
        model: a split model (``.f_enc``, ``.head``); a plain classifier is refused (TypeError).
        images: (N, 3, H, W) s-score samples; masks: (N, H, W) their non-empty spurious masks.
        alpha, variant, dilation, method: as :func:`~.units.unit_s_scores`.
        blocks: ``{name: module}`` (default :func:`model_blocks`).
        high: the high band's edge (share_high counts s > high).
        level, n_boot, seed: the chance test's.

    Warns:
        SmallTargetMapWarning: for each block whose map (a ViT's patch grid) is smaller than 4x4.
    """
    tic = time.perf_counter()
    blocks = dict(model_blocks(model) if blocks is None else blocks)
    names, scores, sig, rows = [], [], [], []
    for depth, (name, layer) in enumerate(blocks.items()):
        res = unit_per_sample(model, images, masks, layer=layer, alpha=alpha, variant=variant, dilation=dilation,
                              method=method)
        test = chance_test(res.per_sample, res.chance, level=level, n_boot=n_boot, seed=seed)
        names.append(name)
        scores.append(res.scores)
        sig.append(test["significant"])
        rows.append(block_row(name, depth, res, test, high=high))
    return DepthProfile(blocks=names, scores=scores, significant=sig, rows=rows, alpha=float(alpha), variant=variant,
                        dilation=int(dilation), method=method, seconds=time.perf_counter() - tic)
