"""summarize_scores: the one summary of a model's s-scores, read against the chance level."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shortcut_nb.sscore import summarize_scores
from shortcut_nb.sscore.summary import TOP_K

SCORES = [0.1, 0.2, 0.5, 0.7, 0.71, 0.9, 0.0, 0.9]


def test_every_field_on_a_hand_made_vector() -> None:
    out = summarize_scores(torch.tensor(SCORES, dtype=torch.float64), 0.6, tau=0.7)
    s = np.array(SCORES)
    assert out == {
        "scores": SCORES, "d": 8, "min": 0.0, "max": 0.9, "mean": pytest.approx(s.mean()),
        "median": pytest.approx(0.6), "std": pytest.approx(s.std()), "area": 0.6,
        "lift": pytest.approx(s.mean() / 0.6), "lift_max": pytest.approx(1.5),
        "band_counts": {"low": 2, "mid": 3, "high": 3},
        "above_chance": 0.5, "n_above_chance": 4,  # 0.7, 0.71, 0.9, 0.9 > 0.6
        "n_above_tau": 3,  # 0.71, 0.9, 0.9 > 0.7
        "n_high": 3, "n_high_above_chance": 3,
        "top": [{"neuron": 5, "s": 0.9}, {"neuron": 7, "s": 0.9}, {"neuron": 4, "s": 0.71},
                {"neuron": 3, "s": 0.7}, {"neuron": 2, "s": 0.5}],
    }
    assert len(out["top"]) == TOP_K


def test_inputs_bands_and_rounding() -> None:
    ref = summarize_scores(SCORES, 0.6)
    assert summarize_scores(np.array(SCORES), 0.6) == ref
    assert summarize_scores(torch.tensor(SCORES), 0.6)["d"] == 8  # float32 input
    assert summarize_scores([0.1234567], 0.5)["scores"] == [0.123457]
    assert summarize_scores(SCORES, 0.6, low=0.5, high=0.8)["band_counts"] == {"low": 3, "mid": 3, "high": 2}
    assert summarize_scores(SCORES, 0.95)["n_high_above_chance"] == 0  # high neurons, none above a 0.95 chance
    assert len(summarize_scores([0.3, 0.4], 0.5)["top"]) == 2
    with pytest.raises(ValueError, match="at least one"):
        summarize_scores([], 0.5)


@pytest.mark.parametrize("area", [0.0, -0.1, 1.01, float("nan")])
def test_area_outside_zero_one_raises(area: float) -> None:
    with pytest.raises(ValueError, match="area"):
        summarize_scores(SCORES, area)


def test_area_one_is_allowed() -> None:
    assert summarize_scores(SCORES, 1.0)["lift"] == pytest.approx(np.mean(SCORES))


def test_head_weight_gives_the_mean_over_used_neurons() -> None:
    w = np.zeros((2, 8))
    w[0, 5] = 1.0  # 0.9
    w[1, 2] = -0.3  # 0.5
    w[:, 6] = 2.0  # 0.0
    out = summarize_scores(SCORES, 0.5, head_weight=torch.tensor(w))
    assert out["n_used"] == 3
    assert out["mean_used"] == pytest.approx((0.9 + 0.5 + 0.0) / 3)
    assert out["lift_used"] == pytest.approx(out["mean_used"] / 0.5)
    assert summarize_scores(SCORES, 0.5, head_weight=w) == out
    assert "mean_used" not in summarize_scores(SCORES, 0.5)
    none = summarize_scores(SCORES, 0.5, head_weight=np.zeros((2, 8)))
    assert none["n_used"] == 0 and math.isnan(none["mean_used"]) and math.isnan(none["lift_used"])
    with pytest.raises(ValueError, match="head_weight"):
        summarize_scores(SCORES, 0.5, head_weight=np.ones((2, 7)))
