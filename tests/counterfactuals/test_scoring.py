"""Detector metrics equal scipy's and sklearn's; intervals over neurons and over seeds."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import precision_score, roc_auc_score

from shortcut_nb.counterfactuals import auroc, detector_metrics, detector_table, precision_at_k, seed_interval, spearman


@pytest.fixture()
def scored():
    rng = np.random.default_rng(0)
    share = rng.random(60)
    score = share + rng.normal(0, 0.3, 60)
    score[:10] = np.round(score[:10], 1)  # ties
    score[10:20] = score[0]
    return score, share


def test_metrics_equal_scipy_and_sklearn(scored):
    score, share = scored
    assert spearman(score, share) == pytest.approx(stats.spearmanr(score, share).statistic, abs=1e-12)
    assert auroc(score, share) == pytest.approx(roc_auc_score(share > 0.5, score), abs=1e-12)
    assert auroc(score, share, threshold=0.8) == pytest.approx(roc_auc_score(share > 0.8, score), abs=1e-12)
    for k in (1, 5, 30):
        top = np.zeros(60, dtype=bool)
        top[np.argsort(-score, kind="stable")[:k]] = True
        assert precision_at_k(score, share, k=k) == pytest.approx(precision_score(share > 0.5, top), abs=1e-12)


def test_nan_neurons_are_left_out(scored):
    score, share = scored
    share = share.copy()
    share[:5] = np.nan
    assert spearman(score, share) == pytest.approx(stats.spearmanr(score[5:], share[5:]).statistic, abs=1e-12)
    assert detector_metrics(score, share, n_boot=10)["n"] == 55


def test_bootstrap_intervals(scored):
    score, share = scored
    m = detector_metrics(score, share, n_boot=400, seed=1)
    assert set(m) >= {"spearman", "auroc", "precision_at_k", "n", "n_spurious", "k"}
    assert m["k"] == m["n_spurious"] == int((share > 0.5).sum())
    for name in ("spearman", "auroc", "precision_at_k"):
        value, low, high = m[name]
        assert low <= value <= high and high - low > 0
    # the same resamples, by hand, through scipy
    idx = np.random.default_rng(1).integers(0, 60, size=(400, 60))
    rhos = [stats.spearmanr(score[i], share[i]).statistic for i in idx]
    assert m["spearman"].low == pytest.approx(np.quantile(rhos, 0.025), abs=1e-9)
    assert m["spearman"].high == pytest.approx(np.quantile(rhos, 0.975), abs=1e-9)
    assert detector_metrics(score, share, n_boot=400, seed=1) == m  # seeded
    table = detector_table({"a": score, "b": -score}, share, n_boot=50)
    assert table["a"]["auroc"].value == pytest.approx(1 - table["b"]["auroc"].value)


def test_undefined_auroc_is_nan_not_an_error():
    m = detector_metrics(np.arange(5.0), np.full(5, 0.9), n_boot=20)
    assert np.isnan(m["auroc"].value) and np.isnan(m["auroc"].low)
    assert m["precision_at_k"].value == 1.0


def test_seed_interval_is_the_student_t_interval():
    values = [0.61, 0.55, 0.7, 0.66]
    mean, low, high = seed_interval(values)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and (low, high) == pytest.approx(ref)
    one = seed_interval([0.5])
    assert one.value == 0.5 and np.isnan(one.low) and np.isnan(one.high)
    with pytest.raises(ValueError, match="level"):
        seed_interval(values, level=95)
    assert all(np.isnan(seed_interval([np.nan, np.nan])))
    with pytest.raises(ValueError, match="empty"):
        seed_interval([])


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="same length"):
        spearman(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(np.arange(4.0), np.arange(4.0) / 4, k=9)
    with pytest.raises(ValueError, match="at least 2 neurons"):
        spearman(np.array([1.0, np.nan]), np.array([0.2, 0.3]))
