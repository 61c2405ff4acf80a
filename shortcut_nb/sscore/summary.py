"""The one summary of a set of neuron s-scores, read against its chance level.

An s-score is a precision, so a heatmap that ignores the image scores the mask's area on
average: every summary carries ``area`` (the mean mask area of the scored images, in (0, 1])
and the lift ``mean / area``. An area of 0 cannot happen for drawn samples (their masks are
non-empty) and is refused, as is an area above 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..bands import BAND_HIGH, BAND_LOW, band_counts

TOP_K = 5  # highest-scoring neurons listed in a summary


def _as_1d(x: torch.Tensor | np.ndarray | Sequence[float], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one neuron's s-score")
    return arr


def summarize_scores(scores: torch.Tensor | np.ndarray | Sequence[float], area: float, *, tau: float = 0.7,
                     low: float = BAND_LOW, high: float = BAND_HIGH,
                     head_weight: torch.Tensor | np.ndarray | None = None) -> dict:
    """What is recorded about one model's neuron s-scores.

    Args:
        scores: (d,) s-scores in [0, 1].
        area: chance level, the mean spurious-mask area of the scored images, in (0, 1].
        tau: pruning threshold (Table 4): ``n_above_tau`` counts ``s > tau``.
        low, high: the paper's band edges (low < 0.2 <= mid <= 0.7 < high).
        head_weight: classifier weights (classes, d); adds the mean over the neurons the head uses
            (a neuron cut off by a weight mask scores 0 and would otherwise pull the mean down).

    Returns:
        ``{"scores" (rounded to 6 digits), "d", "min", "max", "mean", "median", "std", "area", "lift"
        (mean / area), "lift_max", "band_counts", "above_chance" (share of neurons with s > area),
        "n_above_chance", "n_above_tau", "n_high", "n_high_above_chance", "top"}`` plus, with
        ``head_weight``, ``"mean_used"``, ``"n_used"``, ``"lift_used"`` (nan when no neuron is used).
    """
    s = _as_1d(scores, "scores")
    area = float(area)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1] (the mean mask area of the scored images), got {area}")
    order = np.argsort(-s, kind="stable")
    out = {
        "scores": s.round(6).tolist(), "d": int(s.size),
        "min": float(s.min()), "max": float(s.max()), "mean": float(s.mean()), "median": float(np.median(s)),
        "std": float(s.std()), "area": area, "lift": float(s.mean() / area), "lift_max": float(s.max() / area),
        "band_counts": band_counts(s, low, high), "above_chance": float((s > area).mean()),
        "n_above_chance": int((s > area).sum()), "n_above_tau": int((s > tau).sum()),
        "n_high": int((s > high).sum()), "n_high_above_chance": int(((s > high) & (s > area)).sum()),
        "top": [{"neuron": int(i), "s": float(s[i])} for i in order[:TOP_K]],
    }
    if head_weight is not None:
        w = np.asarray(head_weight.detach().cpu() if isinstance(head_weight, torch.Tensor) else head_weight)
        if w.ndim != 2 or w.shape[1] != s.size:
            raise ValueError(f"head_weight must have shape (classes, {s.size}), got {w.shape}")
        used = (w != 0).any(axis=0)
        mean_used = float(s[used].mean()) if used.any() else float("nan")
        out.update({"mean_used": mean_used, "n_used": int(used.sum()), "lift_used": mean_used / area})
    return out
