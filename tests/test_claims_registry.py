"""A claim's verdict: yes / no when every seed agrees with the mean, mixed (k of n seeds) otherwise."""
from __future__ import annotations

import pytest

from shortcut_nb.claims import Verdict, as_verdict


@pytest.mark.parametrize("holds, per_seed, label", [
    (True, (), "yes"), (False, (), "no"), (True, (True, True, True), "yes"), (False, (False, False), "no"),
    (True, (True, False, True), "mixed (2 of 3 seeds)"), (False, (True, False, False), "mixed (1 of 3 seeds)"),
    (False, (True, True, True), "mixed (3 of 3 seeds)"),  # every seed holds, the mean does not
])
def test_labels(holds, per_seed, label):
    assert Verdict("x", holds, per_seed).label == label


def test_plain_pairs_are_verdicts_without_seeds():
    v = as_verdict(("0.5 / 0.2", 1))
    assert v == Verdict("0.5 / 0.2", True) and v.label == "yes" and v.margin is None


def test_summary_carries_the_label_and_the_margin():
    assert Verdict("x", True, (True, False, True), 0.031).summary() == "mixed (2 of 3 seeds), margin +0.03"
    assert Verdict("x", False).summary() == "no"
