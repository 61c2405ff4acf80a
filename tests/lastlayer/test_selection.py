"""Influence-weighted s-score and the kept-vs-random-subset test, against exact enumeration and by hand."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from shortcut_nb.lastlayer import influence_weighted_sscore, logistic_to_linear, selection_test


def test_selection_test_matches_exact_enumeration():
    s = np.array([0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95])
    kept = np.zeros(8, dtype=bool)
    kept[[5, 6, 7]] = True  # the three highest: an unusually spurious set
    means = np.array([s[list(c)].mean() for c in itertools.combinations(range(8), 3)])
    delta = s[kept].mean() - s.mean()
    exact_p = (np.abs(means - s.mean()) >= abs(delta) - 1e-12).mean()
    out = selection_test(s, kept, draws=20000, seed=0)
    assert out["delta"] == pytest.approx(delta) and out["k"] == 3
    assert out["p"] == pytest.approx(exact_p, abs=0.01)
    assert means.min() <= out["lo"] < out["hi"] <= means.max()
    assert selection_test(s, np.ones(8, bool))["p"] == 1.0
    assert selection_test(s, np.zeros(8, bool))["mean_kept"] is None
    with pytest.raises(ValueError, match="kept"):
        selection_test(s, kept.astype(int))
    with pytest.raises(ValueError, match="draws"):
        selection_test(s, kept, draws=0)


def test_influence_weighted_sscore_by_hand_and_fold_invariant():
    s = np.array([0.2, 0.8, 0.5])
    std = np.array([1.0, 2.0, 0.0])  # a constant neuron has no influence whatever its weight
    w = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 5.0]])  # decision weights |w1 - w0| = [1, 1, 0]
    assert influence_weighted_sscore(w, s, std) == pytest.approx((1 * 0.2 + 2 * 0.8) / 3)
    coef = np.array([[0.5, -1.0, 0.25]])  # a logistic row and its two-logit fold give the same number
    folded = logistic_to_linear(coef, [0.0], binary_logits="half").weight.detach().double().numpy()
    ones = np.ones(3)
    assert influence_weighted_sscore(coef, s, ones) == pytest.approx(influence_weighted_sscore(folded, s, ones))
    assert influence_weighted_sscore(np.zeros((2, 3)), s, ones) is None
    with pytest.raises(ValueError, match="scores"):
        influence_weighted_sscore(w, s[:2], std)
    with pytest.raises(ValueError, match="feature_std"):
        influence_weighted_sscore(w, s, -std)
