"""Uncertainty of s-scores: bootstrap intervals over the N samples, and a test against the chance level.

An s-score is a mean of N per-sample scores (N = 50 in the paper), so it has sampling error. For
every unit:

* :func:`bootstrap_interval`: the percentile bootstrap interval of the mean — resample the N
  samples with replacement ``n_boot`` times (the same resamples for every unit, seeded), take the
  ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the resampled means.
* :func:`chance_test`: is the unit *significantly* above chance? The paired per-sample excess
  ``e_j = s_j - c_j`` (``c_j`` the sample's chance level: its mask area for the hard and soft
  scores, :func:`~.variants.chance_levels`) is bootstrapped the same way; the unit is above chance
  when the one-sided lower bound (the ``1 - level`` quantile of the resampled mean excess) is > 0.
  ``p`` is the share of resampled mean excesses <= 0 (a one-sided bootstrap p-value).
* :func:`spread_intervals`: the intervals of the units' range (max − min of their s-scores) and of the
  highest unit's s-score — the same resamples of the N samples for every unit, every unit's mean recomputed
  on each, then the range and the max taken.

Pure numpy; a unit's result never depends on which other units are scored with it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BOOT = 1000
LEVEL = 0.95

__all__ = ["LEVEL", "N_BOOT", "bootstrap_interval", "bootstrap_means", "chance_test", "percentile_interval",
           "spread_intervals"]


def _check(per_sample: np.ndarray, name: str = "per_sample") -> np.ndarray:
    arr = np.asarray(per_sample, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be (N, K) with N >= 1, got shape {arr.shape}")
    return arr


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def bootstrap_means(values: np.ndarray, *, n_boot: int = N_BOOT, seed: int | Sequence[int] = 0) -> np.ndarray:
    """(n_boot, K) means of ``values`` (N, K) over ``n_boot`` resamples of its N rows (the same for every column).

    ``seed``: an int, or a sequence of ints (``[seed, stratum]``: independent resamples per stratum)."""
    x = _check(values, "values")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    n = x.shape[0]
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    return counts @ x / n


def bootstrap_interval(per_sample: np.ndarray, *, level: float = LEVEL, n_boot: int = N_BOOT,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of each unit's s-score.

    Args:
        per_sample: (N, K) per-sample scores.
        level: coverage (0.95: the 2.5 % and 97.5 % quantiles).
        n_boot, seed: resamples and their seed.

    Returns:
        ``(low, high)``, float64 (K,) each.
    """
    level = _check_level(level)
    means = bootstrap_means(per_sample, n_boot=n_boot, seed=seed)
    return (np.quantile(means, (1 - level) / 2, axis=0), np.quantile(means, (1 + level) / 2, axis=0))


def chance_test(per_sample: np.ndarray, chance: np.ndarray | float, *, level: float = LEVEL, n_boot: int = N_BOOT,
                seed: int = 0) -> dict[str, np.ndarray]:
    """One-sided bootstrap test of each unit's s-score against its chance level (see the module docstring).

    Args:
        per_sample: (N, K) per-sample scores.
        chance: (N, K) or (N,) per-sample chance levels, or one number.
        level: confidence of the one-sided bound (0.95: 5 % quantile).
        n_boot, seed: resamples and their seed.

    Returns:
        ``{"excess" (K,) mean of s - chance, "lower" (K,) one-sided lower bound of it, "p" (K,),
        "significant" (K,) bool: lower > 0}``.
    """
    level = _check_level(level)
    s = _check(per_sample)
    c = np.asarray(chance, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    excess = s - np.broadcast_to(c, s.shape)
    means = bootstrap_means(excess, n_boot=n_boot, seed=seed)
    lower = np.quantile(means, 1 - level, axis=0)
    return {"excess": excess.mean(0), "lower": lower, "p": (means <= 0).mean(0), "significant": lower > 0}


def percentile_interval(draws: np.ndarray, *, level: float = LEVEL) -> tuple[float, float] | None:
    """``(low, high)``: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of bootstrap ``draws`` (n_boot,), NaN
    draws (a statistic undefined on that resample) left out; None when none is finite."""
    level = _check_level(level)
    x = np.asarray(draws, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    low, high = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def spread_intervals(per_sample: np.ndarray, *, level: float = LEVEL, n_boot: int = N_BOOT,
                     seed: int = 0) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap intervals of the spread of the units' s-scores over the N samples.

    Every resample draws the N samples with replacement (the same draw for every unit), recomputes each unit's
    mean, and takes the range (max − min over units) and the max. Both are extremes, so their resampled values
    sit a little above the point estimate when many units score alike (the max of noisy means exceeds the max of
    their expectations); the interval shows that sampling noise as it is.

    Args:
        per_sample: (N, K) per-sample scores of K units.
        level: coverage.
        n_boot, seed: resamples and their seed.

    Returns:
        ``{"range": (low, high), "max": (low, high)}`` (None where a score is NaN).
    """
    means = bootstrap_means(per_sample, n_boot=n_boot, seed=seed)
    highest = means.max(1)
    return {"range": percentile_interval(highest - means.min(1), level=level),
            "max": percentile_interval(highest, level=level)}
