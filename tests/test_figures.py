"""The shared figures: the s-score histogram (seaborn) with its chance level, one or several distributions."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex
from support.chance import chance_lines

from shortcut_nb import figures


def test_sscore_histogram_counts_every_score_and_draws_the_chance_level():
    scores = np.random.default_rng(0).random(57)
    _, ax = plt.subplots()
    figures.sscore_histogram(ax, scores, 0.23, bins=10)
    assert len(ax.patches) == 10 and sum(p.get_height() for p in ax.patches) == 57
    assert len(chance_lines(ax, 0.23)) == 1 and ax.get_xlim() == (0, 1)
    assert {to_hex(p.get_facecolor(), keep_alpha=False) for p in ax.patches} == {to_hex(figures.SSCORE_COLOUR)}
    assert [t.get_text() for t in ax.legend().get_texts()] == ["chance = mean mask area 0.23"]


def test_sscore_histogram_of_several_distributions_normalises_each_and_labels_it():
    rng = np.random.default_rng(1)
    groups = {"all": rng.random(200), "kept": rng.random(7), "none": np.array([])}
    colours = {"all": "0.45", "kept": "tab:orange", "none": "k"}
    _, ax = plt.subplots()
    figures.sscore_histogram(ax, groups, 0.4, bins=20, stat="density", colour=colours, chance_label="chance")
    assert len(chance_lines(ax, 0.4)) == 1
    bars = ax.containers
    assert [c.get_label() for c in bars] == ["all", "kept"]  # an empty distribution draws nothing
    for c in bars:
        assert sum(p.get_height() * p.get_width() for p in c) == pytest.approx(1.0)
        assert to_hex(c[0].get_facecolor(), keep_alpha=False) == to_hex(colours[c.get_label()])
    assert sorted(t.get_text() for t in ax.legend().get_texts()) == ["all", "chance", "kept"]
