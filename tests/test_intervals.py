"""The intervals the claims are decided on, against known cases: the Student-t interval over seeds equals scipy's,
and the percentile bootstrap over samples covers the true mean about 95 % of the time."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from shortcut_nb.counterfactuals import seed_interval
from shortcut_nb.intervals import t_interval
from shortcut_nb.sscore.uncertainty import bootstrap_interval


@pytest.mark.parametrize("n", [2, 3, 5, 30])
def test_the_t_interval_is_scipys(n):
    x = np.random.default_rng(n).normal(0.3, 0.1, n)
    mean, low, high = t_interval(x)
    ref = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean()) and (low, high) == pytest.approx(ref)
    assert tuple(seed_interval(x)) == (mean, low, high)  # the detectors' over-seed interval is this one


def test_the_t_interval_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    hits = [low <= 0.5 <= high for low, high in (t_interval(rng.normal(0.5, 0.2, 3))[1:] for _ in range(4000))]
    assert np.mean(hits) == pytest.approx(0.95, abs=0.01)


def test_the_t_interval_edge_cases():
    assert t_interval([0.4])[0] == 0.4 and all(math.isnan(v) for v in t_interval([0.4])[1:])
    assert t_interval([0.4, float("nan"), 0.6])[0] == pytest.approx(0.5)  # NaN left out
    assert all(math.isnan(v) for v in t_interval([float("nan")]))
    with pytest.raises(ValueError, match="values is empty"):
        t_interval([])
    with pytest.raises(ValueError, match="level must be in"):
        t_interval([0.1, 0.2], level=1.5)


def test_the_bootstrap_of_a_normal_sample_covers_the_true_mean_about_95_percent():
    """400 samples of 60 draws from N(0.4, 0.1), each with its percentile bootstrap interval (deterministic)."""
    rng = np.random.default_rng(1)
    samples = rng.normal(0.4, 0.1, (60, 400))  # (N, K): 400 independent samples as columns
    low, high = bootstrap_interval(samples, n_boot=2000, seed=2)
    coverage = np.mean((low <= 0.4) & (0.4 <= high))
    assert 0.91 <= coverage <= 0.98  # the percentile bootstrap under-covers slightly at N = 60
    # its width is the normal interval's: 2 · 1.96 · sd / sqrt(N)
    assert np.mean(high - low) == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(60), rel=0.08)
