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
