"""A claim's verdict comes from the interval of its effects: holds when every effect's interval lies on the paper's
side of its threshold, fails when one lies wholly on the other side, undecided otherwise (issue 24)."""
from __future__ import annotations

import pytest

from shortcut_nb.claims import (
    NO_INTERVAL,
    Effect,
    Verdict,
    as_verdict,
    decide_effects,
    detector_lines,
    detector_verdict,
    interval_text,
    measured,
    recorded_interval,
)
from shortcut_nb.intervals import t_interval


@pytest.mark.parametrize("holds, per_seed, label", [
    (True, (), "yes"), (False, (), "no"), (True, (True, True, True), "yes"), (False, (False, False), "no"),
    (True, (True, False, True), "mixed (2 of 3 seeds)"), (False, (True, False, False), "mixed (1 of 3 seeds)"),
])
def test_labels_of_verdicts_without_effects(holds, per_seed, label):
    assert Verdict("x", holds, per_seed).label == label


def test_plain_pairs_are_verdicts_without_seeds():
    v = as_verdict(("0.5 / 0.2", 1))
    assert v == Verdict("0.5 / 0.2", True) and v.label == "yes" and v.margin is None and v.effect is None


def _seeds(mean, half, n=3):
    """n per-seed values whose Student-t interval is ``mean ± half`` (spread symmetrically)."""
    base = [-1.0, 0.0, 1.0] if n == 3 else [-1.0, 1.0]
    scale = half / (t_interval(base)[2] - 0.0)
    return tuple(mean + b * scale for b in base)


@pytest.mark.parametrize("side, values, outcome", [
    ("above", _seeds(0.7, 0.1), "holds"), ("above", _seeds(0.55, 0.1), "undecided"),
    ("above", _seeds(0.3, 0.1), "fails"), ("below", _seeds(0.3, 0.1), "holds"), ("below", _seeds(0.7, 0.1), "fails"),
    ("below", _seeds(0.45, 0.1), "undecided"),
])
def test_an_effect_is_decided_by_which_side_of_the_threshold_its_interval_lies(side, values, outcome):
    e = Effect("x", "AUROC", 0.5, values, side=side)
    assert e.outcome == outcome and e.n_seeds == 3 and e.interval_kind == "t over 3 seeds"
    assert e.high - e.low == pytest.approx(0.2)
    v = decide_effects("ours", [e])
    assert v.label == outcome and v.holds == (outcome == "holds") and v.decided == (outcome != "undecided")
    near = e.low - 0.5 if side == "above" else 0.5 - e.high
    assert v.margin == pytest.approx(near)


def test_a_margin_smaller_than_the_noise_is_undecided():
    """The mean lies on the paper's side by +0.005 (what issue 24 saw in four rows), but the seeds' spread covers
    the threshold: undecided, never holds."""
    e = Effect("ΔWGA of DFR", "ΔWGA", 0.10, (0.06, 0.105, 0.15))
    assert e.value == pytest.approx(0.105) and e.low < 0.10 < e.high
    v = decide_effects("ours", [e])
    assert v.label == "undecided" and not v.holds and v.per_seed == (False, True, True)


def test_one_seed_uses_its_bootstrap_interval_and_without_one_is_undecided():
    with_boot = Effect("x", "accuracy", 0.1, (0.3,), within=((0.2, 0.4),))
    assert with_boot.estimate == (0.3, 0.2, 0.4) and with_boot.interval_kind == "bootstrap within the seed"
    assert decide_effects("o", [with_boot]).label == "holds"
    bare = Effect("x", "accuracy", 0.1, (0.9,))
    v = decide_effects("o", [bare])
    assert v.label == NO_INTERVAL == "undecided (one seed, no interval)" and v.margin is None and not v.holds
    assert "one seed, no interval" in v.summary()
    # several seeds: the t-interval over seeds decides, not any one seed's bootstrap
    many = Effect("x", "accuracy", 0.1, (0.3, 0.32), within=((0.0, 0.9), (0.0, 0.9)))
    assert many.interval_kind == "t over 2 seeds" and many.low == pytest.approx(t_interval([0.3, 0.32])[1])
    with pytest.raises(ValueError, match="within has 1 intervals for 2 seeds"):
        Effect("x", "u", 0.0, (0.1, 0.2), within=((0.0, 1.0),))
    unmeasured = Effect("x", "u", 0.0, (None,))
    assert unmeasured.outcome == "undecided" and decide_effects("o", [unmeasured]).label == "undecided (not measured)"


def test_a_recorded_interval_is_read_as_a_pair_or_none():
    """A record's ``[low, high]`` becomes the effect's ``within``; a missing or undefined one (an older record, a JSON
    null from a NaN bound) is None, so the row falls back to "no interval" instead of failing."""
    assert recorded_interval([0.1, 0.3]) == (0.1, 0.3) and recorded_interval((1, 2)) == (1.0, 2.0)
    assert recorded_interval(None) is None and recorded_interval([None, 0.3]) is None
    assert recorded_interval([0.1, float("nan")]) is None


def test_a_failing_effect_decides_a_claim_and_comes_first():
    good = Effect("gain", "ΔWGA", 0.1, _seeds(0.4, 0.05))
    open_ = Effect("prune", "Prune_h", 0.3, _seeds(0.32, 0.1))
    bad = Effect("s", "|Δ mean s|", 0.05, _seeds(0.2, 0.02), side="below")
    v = decide_effects("o", [good, open_, bad])
    assert v.label == "fails" and v.effect is bad and v.effects[1] is open_
    v = decide_effects("o", [good, open_])
    assert v.label == "undecided" and v.effect is open_
    tight = Effect("tight", "ΔWGA", 0.1, _seeds(0.2, 0.09))
    v = decide_effects("o", [good, tight])
    assert v.label == "holds" and v.effect is tight  # least room (in half-widths) decides
    assert "tight: +0.20 [+0.11, +0.29] ΔWGA (t over 3 seeds; no paper value; needs > +0.10)" == tight.text()


def test_measured_reads_each_seed_else_the_one_run():
    mean = {"a": 0.5}
    assert measured("x", "u", 0.0, lambda v: v["a"], mean).per_seed == (0.5,)
    e = measured("x", "u", 0.0, lambda v: v["a"], mean, [{"a": 0.4}, {"a": 0.6}], paper=0.3,
                 within=lambda v: (v["a"] - 0.1, v["a"] + 0.1))
    assert e.per_seed == (0.4, 0.6) and e.paper == 0.3
    assert [b for w in e.within for b in w] == pytest.approx([0.3, 0.5, 0.5, 0.7])
    rec = e.record()
    assert rec["n_seeds"] == 2 and rec["interval"] == "t over 2 seeds" and rec["outcome"] == e.outcome
    assert {"value", "low", "high", "unit", "paper", "threshold", "per_seed"} <= set(rec)


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
    assert one.effect.interval_kind == "bootstrap within the seed" and one.effect.paper is None
    seeds = [(0.6, 0.55, 0.7), (0.62, 0.4, 0.8), (0.64, 0.5, 0.7)]
    many = detector_verdict({"isic": _entry((0.6, 0.45, 0.7), seeds),
                             "waterbirds": _entry((0.9, 0.8, 0.95))}, "sscore", dataset="isic")
    _, low, _ = t_interval([0.6, 0.62, 0.64])
    assert many.holds and many.per_seed == (True, True, True) and many.margin == pytest.approx(low - 0.5)
    assert many.effect.within == ((0.55, 0.7), (0.4, 0.8), (0.5, 0.7))
    assert "mean over 3 seeds 0.60 [0.52, 0.68]" in many.ours and "Waterbirds-like: AUROC 0.90" in many.ours
    none = detector_verdict({"isic": {"available": False, "reason": "no renderer"}}, "sscore", dataset="isic")
    assert none.label == "undecided" and "no renderer" in none.ours
    lines = detector_lines({"isic": _entry((0.6, 0.45, 0.7)), "mine": {"available": False, "reason": "why"}}, "CNN")
    assert "s-score (hard) Spearman 0.30 [0.10, 0.50], AUROC 0.60 [0.45, 0.70]" in lines[0]
    assert "s-score (hard) (whole model randomised)" in lines[1] and lines[2].endswith("(why).")
    assert interval_text(None) == "n/a" and interval_text(_metric(0.5, None, None)) == "0.50"
