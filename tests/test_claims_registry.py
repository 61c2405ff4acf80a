"""A claim's verdict: yes / no when every seed agrees with the mean, mixed (k of n seeds) otherwise; an effect with an
interval is undecided while the interval covers its threshold."""
from __future__ import annotations

import pytest

from shortcut_nb.claims import (
    Verdict,
    as_verdict,
    decide_interval,
    detector_lines,
    detector_verdict,
    interval_text,
)


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


# --------------------------------------------------------------------------- effects with an interval (issue 29)


@pytest.mark.parametrize("interval, holds, label", [
    ((0.7, 0.6, 0.8), True, "yes"), ((0.55, 0.45, 0.65), False, "undecided"), ((0.3, 0.2, 0.4), False, "no"),
    ((0.6, None, None), False, "undecided"), ((0.6, float("nan"), 0.7), False, "undecided"),
    ((0.55, 0.5, 0.6), False, "undecided"),  # the lower end on the threshold: not above it
])
def test_an_effect_holds_only_when_its_interval_lies_above_the_threshold(interval, holds, label):
    v = decide_interval("x", interval, 0.5)
    assert (v.holds, v.label) == (holds, label)
    assert v.decided == (label != "undecided")
    if interval[1] is not None and interval[1] == interval[1]:
        assert v.margin == pytest.approx(interval[1] - 0.5)


def test_each_seed_is_decided_on_its_own_interval():
    seeds = [(0.7, 0.6, 0.8), (0.6, 0.45, 0.75), (0.8, 0.7, 0.9)]
    v = decide_interval("x", (0.7, 0.55, 0.85), 0.5, seeds)
    assert v.per_seed == (True, False, True) and v.label == "mixed (2 of 3 seeds)"
    u = decide_interval("x", (0.7, 0.3, 1.1), 0.5, seeds)
    assert u.label == "undecided (2 of 3 seeds hold alone)" and not u.holds
    assert decide_interval("x", (0.7, 0.6, 0.8), 0.5, seeds[:1]).per_seed == ()  # one seed: nothing to split


def _metric(value, low, high):
    return {"value": value, "low": low, "high": high}


def _entry(auroc, seeds=()):
    table = {"sscore": {"auroc": _metric(*auroc), "spearman": _metric(0.3, 0.1, 0.5)}}
    entry = {"available": True, "table": table, "n_seeds": max(1, len(seeds)), "n_spurious": 10, "n_neurons": 64,
             "n_pairs": 32, "threshold": 0.5, "randomised": {"all": {"sscore": {**table["sscore"],
                                                                                "survives": {"auroc": True}}}}}
    if seeds:
        entry["seeds"] = {"sscore": {"auroc": _metric(0.6, 0.52, 0.68)}}
        entry["per_seed"] = [{"seed": i, "table": {"sscore": {"auroc": _metric(*s)}}} for i, s in enumerate(seeds)]
    return entry


def test_a_detector_claim_reads_the_seeds_interval_when_there_are_several():
    one = detector_verdict({"isic": _entry((0.6, 0.45, 0.7))}, "sscore", dataset="isic")
    assert one.label == "undecided" and "AUROC 0.60 [0.45, 0.70] over neurons" in one.ours
    many = detector_verdict({"isic": _entry((0.6, 0.45, 0.7), [(0.6, 0.55, 0.7), (0.62, 0.4, 0.8)]),
                             "waterbirds": _entry((0.9, 0.8, 0.95))}, "sscore", dataset="isic")
    assert many.holds and many.per_seed == (True, False) and many.margin == pytest.approx(0.02)
    assert "mean over 2 seeds 0.60 [0.52, 0.68]" in many.ours and "Waterbirds-like: AUROC 0.90" in many.ours
    none = detector_verdict({"isic": {"available": False, "reason": "no renderer"}}, "sscore", dataset="isic")
    assert none.label == "undecided" and "no renderer" in none.ours
    lines = detector_lines({"isic": _entry((0.6, 0.45, 0.7)), "mine": {"available": False, "reason": "why"}}, "CNN")
    assert "s-score (hard) Spearman 0.30 [0.10, 0.50], AUROC 0.60 [0.45, 0.70]" in lines[0]
    assert "s-score (hard) (whole model randomised)" in lines[1] and lines[2].endswith("(why).")
    assert interval_text(None) == "n/a" and interval_text(_metric(0.5, None, None)) == "0.50"
