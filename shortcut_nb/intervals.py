"""The 95 % interval of a mean over seeds: one place for the Student-t interval the claims and detectors use.

A claim's effect is measured once per trained seed; its interval over seeds is
``mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)`` (sd the sample standard deviation, ddof 1). One seed has no
interval over seeds (NaN bounds): its uncertainty is the within-seed bootstrap over samples, where recorded
(:func:`shortcut_nb.metrics.wga_interval`, :func:`shortcut_nb.sscore.uncertainty.bootstrap_interval`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95

__all__ = ["LEVEL", "t_interval"]


def t_interval(values: Sequence[float] | np.ndarray, *, level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (n,) and its Student-t interval.

    NaN values are left out; one finite value gives NaN bounds, none gives NaN everywhere.

    Raises:
        ValueError: ``values`` is empty, or ``level`` is not in (0, 1).
    """
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("values is empty: pass one value per seed")
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(arr.mean())
    if arr.size == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + float(level)) / 2, arr.size - 1)) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, mean - half, mean + half
