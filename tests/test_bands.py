"""Band selection (paper §5.1): low < 0.2 <= mid <= 0.7 < high, counts, selections and the pickers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import bands as bands_
from shortcut_nb.bands import (
    BAND_HIGH,
    BAND_LOW,
    BANDS,
    band_counts,
    band_representatives,
    neurons_in_band,
    pick_neuron,
    select_neurons,
)

SCORES = [0.1, 0.2, 0.5, 0.7, 0.71, 0.9, 0.0, 0.9]


def test_bands_counts_and_selection() -> None:
    scores = torch.tensor([0.1, 0.2, 0.5, 0.7, 0.71, 0.9, 0.0, 0.9])
    assert bands_.bands(scores).tolist() == ["low", "mid", "mid", "mid", "high", "high", "low", "high"]
    assert band_counts(scores) == {"low": 2, "mid": 3, "high": 3}
    assert band_counts(scores.numpy(), low=0.5, high=0.8) == {"low": 3, "mid": 3, "high": 2}
    assert select_neurons(scores, 0.7).tolist() == [5, 7, 4]  # > 0.7, highest first, ties by index
    assert select_neurons(scores, 0.95).tolist() == []
    assert neurons_in_band(scores, "mid").tolist() == [3, 2, 1]
    assert neurons_in_band(scores, "high", 0) == 5
    assert neurons_in_band(scores, "low", -1) == 6
    with pytest.raises(ValueError, match="rank"):
        neurons_in_band(scores, "high", 3)
    with pytest.raises(ValueError, match="band"):
        neurons_in_band(scores, "top")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low"):
        bands_.bands(scores, low=0.8, high=0.2)


def test_the_papers_edges_and_inputs() -> None:
    assert (BAND_LOW, BAND_HIGH) == (0.2, 0.7) and BANDS == ("low", "mid", "high")
    assert list(band_counts(SCORES)) == list(BANDS)  # always in that order, empty bands included
    assert band_counts([0.5]) == {"low": 0, "mid": 1, "high": 0}
    assert bands_.bands(SCORES).tolist() == bands_.bands(np.array(SCORES)).tolist()
    with pytest.raises(ValueError, match="1-D"):
        bands_.bands(np.zeros((2, 2)))


def test_band_representatives_are_median_ranked() -> None:
    # mid ranked [3, 2, 1] -> 2; high [5, 7, 4] -> 7; low [0, 6] -> 6
    assert band_representatives(SCORES) == {"low": 6, "mid": 2, "high": 7}
    assert band_representatives([0.1, 0.15]) == {"low": 0, "mid": None, "high": None}  # ranked [1, 0]


def test_pick_neuron_by_index_or_rank_in_a_band() -> None:
    assert pick_neuron(SCORES, "index", 3) == 3
    assert pick_neuron(SCORES, "high", 0) == 5
    assert pick_neuron(SCORES, "mid", 2) == 1
    assert pick_neuron(SCORES, "low", np.int64(1)) == 6
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        pick_neuron(SCORES, "index", 8)
    with pytest.raises(ValueError, match="holds 3 neurons"):
        pick_neuron(SCORES, "high", 3)
    with pytest.raises(ValueError, match="by must be"):
        pick_neuron(SCORES, "top", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int"):
        pick_neuron(SCORES, "index", 1.0)  # type: ignore[arg-type]
