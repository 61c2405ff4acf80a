"""Notebook 01's claims and takeaways, on hand-made records (the recorded JSON only)."""
from __future__ import annotations

import pytest

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.groups import claims
from support.claims import astuple_verdict, point_holds

SWEEP = {
    "0.5": {"ratio": 0.5, "groups": [0.97, 0.96, 0.9, 0.92]},
    "0.25": {"ratio": 0.25, "groups": [0.98, 0.9, 0.8, 0.93]},
    "0.05": {"ratio": 0.05, "groups": [0.99, 0.7, 0.5, 0.95]},
    "0": {"ratio": 0.0, "groups": [0.99, 0.3, 0.2, 0.96]},
}
ROW = {"dataset": "waterbirds", "model": "resnet_mini", "groups": [0.98, 0.6, 0.5, 0.97], "avg": 0.83, "wga": 0.5,
       "gap": 0.33}


def _check(claim_id: str):
    (c,) = [c for c in CLAIMS if c.id == claim_id]
    assert c.notebook == "01_groups"
    return c.check


def test_gap_holds_only_when_every_model_is_well_below():
    check = _check("groups.gap")
    ours, holds = astuple_verdict(check({"table2": {"waterbirds/cnn": ROW}}))
    assert holds and ours == "waterbirds/cnn: AVG 0.83 / WGA 0.50"
    close = {**ROW, "wga": ROW["avg"] - claims.WGA_GAP_MIN / 2}
    assert not point_holds(check({"table2": {"waterbirds/cnn": ROW, "isic/cnn": close}}))


def test_sweep_needs_falling_minority_high_majority_and_above_zero_at_zero():
    check = _check("groups.sweep")
    ours, holds = astuple_verdict(check({"sweep": SWEEP}))
    assert holds and ours.startswith("minority mean 0.93 / 0.85 / 0.60 / 0.25 at 50% / 25% / 5% / 0%")
    noisy = {**SWEEP, "0.25": {"ratio": 0.25, "groups": [0.98, 0.95, 0.93, 0.93]}}  # +0.01: seed noise
    assert point_holds(check({"sweep": noisy}))
    rising = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.9, 0.9, 0.96]}}
    assert not point_holds(check({"sweep": rising}))
    weak_majority = {**SWEEP, "0.05": {"ratio": 0.05, "groups": [0.85, 0.7, 0.5, 0.95]}}
    assert not point_holds(check({"sweep": weak_majority}))
    collapsed = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.05, 0.05, 0.96]}}
    assert not point_holds(check({"sweep": collapsed}))
    no_zero = {k: v for k, v in SWEEP.items() if k != "0"}
    assert not point_holds(check({"sweep": no_zero}))


def test_takeaways_state_the_run_in_its_numbers():
    rec = {"table2": {"waterbirds/cnn": ROW}, "sweep": SWEEP, "profile": "smoke", "seconds": 12.4}
    text = claims.takeaways(rec)
    assert "- waterbirds/cnn (resnet_mini): AVG 0.83, WGA 0.50 (worst group waterbird/land (G2)), GAP 0.33." in text
    assert "50% → 0.93, 25% → 0.85, 5% → 0.60, 0% → 0.25" in text
    assert "Every model shows a gap of at least 0.10" in text and text.endswith("Profile smoke, 12 s.")
    # one run and no interval: both readings undecided, each with the effect that decides it
    assert ("decided on each effect's 95 % interval: WGA well below AVG: undecided (one seed, no interval); the "
            "minority sweep: undecided (one seed, no interval).") in text
    assert ("WGA well below AVG (undecided (one seed, no interval)) is decided by GAP (AVG − WGA), waterbirds/cnn: "
            "0.33 accuracy (one seed, no interval; no paper value; needs > 0.10).") in text
    weak = {**rec, "profile": "cpu", "sweep": {**SWEEP, "0.05": {"ratio": 0.05, "groups": [0.85, 0.7, 0.5, 0.95]}}}
    assert ("The weakest majority group is G0 at 5%, 0.85, against the criterion's 0.9; the "
            "paper's own G0 there is 0.99 (Table 3).") in claims.takeaways(weak)
    small = {**rec, "table2": {"waterbirds/cnn": {**ROW, "gap": 0.05}}}
    assert "Not every model shows a gap" in claims.takeaways(small)


def test_verdicts_are_decided_on_the_interval_over_seeds():
    """A GAP 0.01 above "well below" on the mean, with seeds 0.18 apart: the interval covers 0.10, undecided; the
    same mean with tight seeds holds. With one seed, its WGA bootstrap over test images gives the interval."""
    check = _check("groups.gap")
    knife_edge = {**ROW, "avg": 0.83, "wga": 0.83 - claims.WGA_GAP_MIN - 0.01}
    seeds = [{**ROW, "wga": 0.63}, {**ROW, "wga": 0.81}]  # GAP 0.20 and 0.02
    v = check({"table2": {"waterbirds/cnn": knife_edge}, "table2_per_seed": {"waterbirds/cnn": seeds}})
    assert v.label == "undecided" and v.per_seed == (True, False) and not v.holds
    assert v.effect.value == pytest.approx(0.11) and v.effect.low < 0.10 < v.effect.high
    tight = [{**ROW, "wga": 0.50}, {**ROW, "wga": 0.52}, {**ROW, "wga": 0.48}]
    v = check({"table2": {"waterbirds/cnn": ROW}, "table2_per_seed": {"waterbirds/cnn": tight}})
    assert v.label == "holds" and v.effect.n_seeds == 3 and v.margin == pytest.approx(v.effect.low - 0.10)
    # Table 2's ResNet-18 on Waterbirds has GAP 0.37: the paper's value of this effect
    paper_row = {**ROW, "arch": "cnn", "dataset": "waterbirds"}
    one = check({"table2": {"waterbirds/cnn": paper_row},
                 "table2_per_seed": {"waterbirds/cnn": [{**paper_row, "wga_interval": [0.45, 0.55]}]}})
    assert one.effect.paper == 0.37 and one.effect.interval_kind == "bootstrap within the seed"
    assert (one.effect.low, one.effect.high) == pytest.approx((0.83 - 0.55, 0.83 - 0.45)) and one.label == "holds"

    sweep = _check("groups.sweep")
    rising_in_one_seed = {**SWEEP["0"], "groups": [0.99, 0.95, 0.95, 0.96]}  # 0 %: minority 0.95 > 0.60 at 5 %
    per_seed = {k: [r, r, rising_in_one_seed if k == "0" else r] for k, r in SWEEP.items()}
    v = sweep({"sweep": SWEEP, "sweep_per_seed": per_seed})
    assert v.per_seed == (True, True, False) and v.label == "undecided"
    assert v.effect.name == "minority accuracy (G1, G2) fall 5% → 0%"
    assert v.effect.paper == pytest.approx((0.78 + 0.46) / 2 - (0.34 + 0.22) / 2)  # Table 3


def _one_seed(intervals: dict) -> dict:
    """A one-seed sweep record: each ratio's seed entry is its row plus ``intervals[key]``."""
    return {"sweep": SWEEP, "sweep_per_seed": {k: [{**r, **intervals.get(k, {})}] for k, r in SWEEP.items()}}


def _bootstrap(fall_50_25=(0.0, 0.15), fall_5_0=(0.2, 0.5), majority_5=(0.93, 0.99), minority_0=(0.15, 0.35)):
    """Intervals of SWEEP's one seed (point values: falls +0.08, +0.25, +0.35; weaker majority 0.93, 0.95, 0.96 below
    50 %; minority 0.25 at 0 %)."""
    return {"0.25": {"minority_fall_interval": {"0.5": list(fall_50_25)}, "majority_interval": [0.91, 0.95]},
            "0.05": {"minority_fall_interval": {"0.25": [0.15, 0.35]}, "majority_interval": list(majority_5)},
            "0": {"minority_fall_interval": {"0.05": list(fall_5_0)}, "majority_interval": [0.94, 0.99],
                  "minority_interval": list(minority_0)}}


def test_one_seeds_sweep_is_decided_on_its_bootstrap_over_test_images():
    """One seed: each of the sweep's effects takes that seed's interval over its test images; the verdict holds when
    all lie on the paper's side, is undecided when one covers its threshold, and fails when one lies beyond it.
    A record from before the intervals were kept leaves the one seed without an interval."""
    check = _check("groups.sweep")
    v = check(_one_seed(_bootstrap()))
    assert v.label == "holds" and all(e.interval_kind == "bootstrap within the seed" for e in v.effects)
    fall = next(e for e in v.effects if e.name == "minority accuracy (G1, G2) fall 5% → 0%")
    assert (fall.value, fall.low, fall.high) == (pytest.approx(0.35), 0.2, 0.5)
    v = check(_one_seed(_bootstrap(fall_50_25=(-0.05, 0.2))))  # the fall's interval covers the −0.02 tolerated
    assert v.label == "undecided" and v.effect.name == "minority accuracy (G1, G2) fall 50% → 25%"
    v = check(_one_seed(_bootstrap(majority_5=(0.85, 0.89))))  # weaker majority group wholly below 0.9
    assert v.label == "fails" and v.effect.name == "weaker majority group (G0, G3) at 5%"
    v = check(_one_seed(_bootstrap(minority_0=(0.05, 0.4))))
    assert v.label == "undecided" and v.effect.name == "minority accuracy (G1, G2) at 0 %"
    old = check(_one_seed({}))
    assert old.label == "undecided (one seed, no interval)" and all(e.interval_kind is None for e in old.effects)
    assert check({"sweep": SWEEP}).label == "undecided (one seed, no interval)"  # no per-seed entries at all
