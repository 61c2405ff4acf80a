"""Bootstrap intervals and the test against chance (:mod:`shortcut_nb.sscore.uncertainty`)."""
from __future__ import annotations

import numpy as np
import pytest

from shortcut_nb.sscore import uncertainty as Q


def test_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.uniform(size=(20, 3)), rng.uniform(size=(400, 3))
    lo, hi = Q.bootstrap_interval(small)
    assert np.all(lo <= small.mean(0)) and np.all(small.mean(0) <= hi)
    lo2, hi2 = Q.bootstrap_interval(large)
    assert np.all(hi2 - lo2 < hi - lo)
    # about the normal interval 2 * 1.96 * sd / sqrt(n)
    assert np.allclose(hi2 - lo2, 2 * 1.96 * large.std(0) / np.sqrt(400), rtol=0.2)
    # the same resamples for every unit: a unit's interval does not depend on the others
    lo3, _ = Q.bootstrap_interval(small[:, :1])
    assert lo3[0] == pytest.approx(lo[0], abs=1e-12)


def test_chance_test_separates_above_from_at_chance():
    rng = np.random.default_rng(1)
    area = rng.uniform(0.05, 0.15, size=50)
    at_chance = area + rng.normal(0, 0.05, size=50)
    above = area + 0.2 + rng.normal(0, 0.05, size=50)
    res = Q.chance_test(np.stack([at_chance, above], 1), area)
    assert not res["significant"][0] and res["significant"][1]
    assert res["p"][1] == 0.0 and res["excess"][1] == pytest.approx(0.2, abs=0.03)
    assert res["lower"][1] < res["excess"][1]
    with pytest.raises(ValueError, match="level"):
        Q.chance_test(np.zeros((3, 1)), 0.1, level=1.5)


def test_spread_intervals_match_an_explicit_resample_loop():
    """Each resample draws images (rows) with replacement, the same for every neuron; every neuron's mean is
    recomputed on it, then max − min and max are taken; the intervals are the 2.5 / 97.5 % quantiles."""
    per_sample = np.random.default_rng(2).uniform(size=(15, 6))
    got = Q.spread_intervals(per_sample, n_boot=200, seed=4)
    counts = np.random.default_rng(4).multinomial(15, np.full(15, 1 / 15), size=200)  # bootstrap_means' draws
    ranges, highs = [], []
    for c in counts:
        means = per_sample[np.repeat(np.arange(15), c)].mean(0)
        ranges.append(means.max() - means.min())
        highs.append(means.max())
    assert got["range"] == pytest.approx(tuple(np.quantile(ranges, [0.025, 0.975])), abs=1e-12)
    assert got["max"] == pytest.approx(tuple(np.quantile(highs, [0.025, 0.975])), abs=1e-12)
    # the interval is of the statistic over neurons, not of one neuron: the top neuron changes between resamples
    assert len({int(per_sample[np.repeat(np.arange(15), c)].mean(0).argmax()) for c in counts}) > 1


def test_spread_intervals_are_zero_width_when_every_image_scores_alike():
    # each neuron gives every image the same score: every resample's means are the point estimates
    per_sample = np.tile([0.1, 0.45, 0.8], (12, 1))
    got = Q.spread_intervals(per_sample, n_boot=50)
    assert got["range"] == pytest.approx((0.7, 0.7)) and got["max"] == pytest.approx((0.8, 0.8))
    assert Q.spread_intervals(np.full((5, 2), np.nan), n_boot=10) == {"range": None, "max": None}
    with pytest.raises(ValueError, match="level"):
        Q.spread_intervals(per_sample, level=0.0)


def test_percentile_interval_leaves_out_undefined_draws():
    draws = np.r_[np.arange(101, dtype=float), np.nan, np.nan]
    assert Q.percentile_interval(draws, level=0.9) == pytest.approx((5.0, 95.0))
    assert Q.percentile_interval(np.full(4, np.nan)) is None
