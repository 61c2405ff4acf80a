"""Scoring a detector against the ground truth: Spearman, AUROC and precision@k, each with a 95 % interval.

The truth is each neuron's spurious share (:func:`~.effects.spurious_share`); a neuron is *spurious* when its
share exceeds ``threshold`` (0.5: the attribute moves it more than the core). For a detector's scores:

* ``spearman``: rank correlation of score and share (``scipy.stats.spearmanr``);
* ``auroc``: how well the score separates spurious neurons from the rest (``sklearn.metrics.roc_auc_score``);
* ``precision_at_k``: the share of spurious neurons among the ``k`` highest scores (ties broken towards the lower
  neuron index); ``k`` defaults to the number of spurious neurons (R-precision).

The three are computed here in closed form on ranks (average ranks for ties), vectorised over bootstrap
resamples, and equal scipy's and sklearn's (tests check it). Neurons whose share or score is NaN (a neuron
neither flip moves) are left out; ``n`` says how many were scored.

Intervals: :func:`detector_metrics` resamples the neurons with replacement (``n_boot`` times, seeded; the
percentile interval, as :func:`~shortcut_nb.sscore.uncertainty.bootstrap_interval` does over samples; a
resample where a metric is undefined, e.g. AUROC without both kinds of neuron, is left out of its quantiles).
:func:`seed_interval` combines one value per seed (trained model) into the mean and its Student-t interval.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from ..intervals import t_interval
from ..sscore.uncertainty import LEVEL, N_BOOT, _check_level

METRICS: tuple[str, ...] = ("spearman", "auroc", "precision_at_k")

__all__ = ["METRICS", "Interval", "auroc", "detector_metrics", "detector_table", "precision_at_k", "seed_interval",
           "spearman"]


class Interval(NamedTuple):
    """A value and its interval (``low``, ``high``; NaN when undefined)."""

    value: float
    low: float
    high: float


def _vector(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per neuron), got shape {arr.shape}")
    return arr


def _spearman_rows(score: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(B, K), (B, K) -> (B,) Spearman correlations (Pearson of average ranks; NaN for a constant row)."""
    rs = stats.rankdata(score, axis=-1)
    rt = stats.rankdata(truth, axis=-1)
    rs -= rs.mean(-1, keepdims=True)
    rt -= rt.mean(-1, keepdims=True)
    denom = np.sqrt((rs * rs).sum(-1) * (rt * rt).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rs * rt).sum(-1) / np.where(denom > 0, denom, 1.0), np.nan)


def _auroc_rows(score: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """(B, K) scores, (B, K) bool -> (B,) AUROC (Mann-Whitney U / (n1 n0); NaN without both kinds)."""
    ranks = stats.rankdata(score, axis=-1)
    n1 = positive.sum(-1).astype(np.float64)
    n0 = positive.shape[-1] - n1
    u = (ranks * positive).sum(-1) - n1 * (n1 + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / np.where((n1 > 0) & (n0 > 0), n1 * n0, 1.0), np.nan)


def _precision_rows(score: np.ndarray, positive: np.ndarray, k: int) -> np.ndarray:
    """(B, K), (B, K) bool -> (B,) share of positives among each row's ``k`` highest scores."""
    order = np.argsort(-score, axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(positive, order, axis=-1).mean(-1)


def _prepared(score: object, share: object, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, t = _vector(score, "score"), _vector(share, "share")
    if s.shape != t.shape:
        raise ValueError(f"score and share must have the same length (one per neuron), got {len(s)} and {len(t)}")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    keep = np.isfinite(s) & np.isfinite(t)
    if keep.sum() < 2:
        raise ValueError(f"need at least 2 neurons with a finite score and share, got {int(keep.sum())}")
    return s[keep], t[keep], t[keep] > threshold


def _k(k: int | None, positive: np.ndarray) -> int:
    if k is None:
        return max(1, int(positive.sum()))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(positive):
        raise ValueError(f"k must be an int in 1..{len(positive)} (the neurons scored), got {k!r}")
    return int(k)


def spearman(score: object, share: object) -> float:
    """Spearman correlation of a detector's scores (K,) with the spurious shares (K,) (NaN-free neurons)."""
    s, t, _ = _prepared(score, share, 0.5)
    return float(_spearman_rows(s[None], t[None])[0])


def auroc(score: object, share: object, *, threshold: float = 0.5) -> float:
    """AUROC of a detector's scores (K,) for ``share > threshold`` (NaN unless both kinds of neuron exist)."""
    s, _, pos = _prepared(score, share, threshold)
    return float(_auroc_rows(s[None], pos[None])[0])


def precision_at_k(score: object, share: object, *, k: int | None = None, threshold: float = 0.5) -> float:
    """Share of ``share > threshold`` neurons among the ``k`` highest scores (default: as many as there are)."""
    s, _, pos = _prepared(score, share, threshold)
    return float(_precision_rows(s[None], pos[None], _k(k, pos))[0])


def detector_metrics(score: object, share: object, *, threshold: float = 0.5, k: int | None = None,
                     n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> dict[str, Interval | int]:
    """The three metrics of one detector with percentile-bootstrap intervals over neurons.

    Args:
        score: (K,) detector scores (higher = more spurious); share: (K,) ground-truth spurious shares.
        threshold: a neuron is spurious when its share exceeds it.
        k: precision@k's k (default: the number of spurious neurons).
        n_boot, level, seed: resamples, coverage, their seed.

    Returns:
        ``{"spearman", "auroc", "precision_at_k": Interval, "n": neurons scored, "n_spurious": int, "k": int}``.
    """
    level = _check_level(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    s, t, pos = _prepared(score, share, threshold)
    kk = _k(k, pos)
    idx = np.random.default_rng(seed).integers(0, len(s), size=(n_boot, len(s)))
    point = {"spearman": _spearman_rows(s[None], t[None])[0], "auroc": _auroc_rows(s[None], pos[None])[0],
             "precision_at_k": _precision_rows(s[None], pos[None], kk)[0]}
    boot = {"spearman": _spearman_rows(s[idx], t[idx]), "auroc": _auroc_rows(s[idx], pos[idx]),
            "precision_at_k": _precision_rows(s[idx], pos[idx], kk)}
    out: dict[str, Interval | int] = {}
    for name in METRICS:
        values = boot[name][np.isfinite(boot[name])]
        low, high = (np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if len(values) else (np.nan, np.nan))
        out[name] = Interval(float(point[name]), float(low), float(high))
    out.update(n=int(len(s)), n_spurious=int(pos.sum()), k=kk)
    return out


def detector_table(scores: Mapping[str, object], share: object, **kwargs) -> dict[str, dict[str, Interval | int]]:
    """:func:`detector_metrics` of several detectors (``{name: (K,) scores}``) against one ground truth."""
    if not scores:
        raise ValueError("scores is empty: pass {detector name: (K,) scores}")
    return {name: detector_metrics(score, share, **kwargs) for name, score in scores.items()}


def seed_interval(values: Sequence[float] | np.ndarray, *, level: float = LEVEL) -> Interval:
    """Mean over seeds of a metric and its Student-t interval (:func:`shortcut_nb.intervals.t_interval`: NaN
    bounds for one seed; NaN values are left out, all NaN gives NaN)."""
    return Interval(*t_interval(values, level=_check_level(level)))
