"""Notebook 01's claims and takeaways, on hand-made records (the recorded JSON only)."""
from __future__ import annotations

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.groups import claims
from support.claims import as_verdict, astuple_verdict

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
    assert not as_verdict(check({"table2": {"waterbirds/cnn": ROW, "isic/cnn": close}})).holds


def test_sweep_needs_falling_minority_high_majority_and_above_zero_at_zero():
    check = _check("groups.sweep")
    ours, holds = astuple_verdict(check({"sweep": SWEEP}))
    assert holds and ours.startswith("minority mean 0.93 / 0.85 / 0.60 / 0.25 at 50% / 25% / 5% / 0%")
    noisy = {**SWEEP, "0.25": {"ratio": 0.25, "groups": [0.98, 0.95, 0.93, 0.93]}}  # +0.01: seed noise
    assert as_verdict(check({"sweep": noisy})).holds
    rising = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.9, 0.9, 0.96]}}
    assert not as_verdict(check({"sweep": rising})).holds
    weak_majority = {**SWEEP, "0.05": {"ratio": 0.05, "groups": [0.85, 0.7, 0.5, 0.95]}}
    assert not as_verdict(check({"sweep": weak_majority})).holds
    collapsed = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.05, 0.05, 0.96]}}
    assert not as_verdict(check({"sweep": collapsed})).holds
    no_zero = {k: v for k, v in SWEEP.items() if k != "0"}
    assert not as_verdict(check({"sweep": no_zero})).holds


def test_takeaways_state_the_run_in_its_numbers():
    rec = {"table2": {"waterbirds/cnn": ROW}, "sweep": SWEEP, "profile": "smoke", "seconds": 12.4}
    text = claims.takeaways(rec)
    assert "- waterbirds/cnn (resnet_mini): AVG 0.83, WGA 0.50 (worst group waterbird/land (G2)), GAP 0.33." in text
    assert "50% → 0.93, 25% → 0.85, 5% → 0.60, 0% → 0.25" in text
    assert "Every model shows a gap of at least 0.10" in text and text.endswith("Profile smoke, 12 s.")
    assert "decided on the mean and per seed: WGA well below AVG: yes, margin +0.23; the minority sweep: yes" in text
    assert "Why not a clear yes" not in text
    weak = {**rec, "profile": "cpu", "sweep": {**SWEEP, "0.05": {"ratio": 0.05, "groups": [0.85, 0.7, 0.5, 0.95]}}}
    assert ("Why not a clear yes: the weakest majority group is G0 at 5%, 0.85, against the criterion's 0.9; the "
            "paper's own G0 there is 0.99 (Table 3).") in claims.takeaways(weak)
    small = {**rec, "table2": {"waterbirds/cnn": {**ROW, "gap": 0.05}}}
    assert "Not every model shows a gap" in claims.takeaways(small)


def test_verdicts_are_decided_per_seed_with_their_margin():
    """The mean decides "yes"/"no"; a seed that disagrees makes it "mixed (k of n seeds)"; the margin is the mean's."""
    check = _check("groups.gap")
    knife_edge = {**ROW, "avg": 0.83, "wga": 0.83 - claims.WGA_GAP_MIN - 0.01}  # mean: holds by 0.01
    seeds = [{**ROW, "wga": 0.60}, {**ROW, "wga": 0.78}]  # seed 1: AVG - WGA = 0.05 < 0.10
    v = check({"table2": {"waterbirds/cnn": knife_edge}, "table2_per_seed": {"waterbirds/cnn": seeds}})
    assert v.holds and v.per_seed == (True, False) and v.label == "mixed (1 of 2 seeds)"
    assert abs(v.margin - 0.01) < 1e-9
    one_seed = check({"table2": {"waterbirds/cnn": ROW}, "table2_per_seed": {"waterbirds/cnn": [ROW]}})
    assert one_seed.per_seed == () and one_seed.label == "yes" and abs(one_seed.margin - (0.33 - 0.10)) < 1e-9

    sweep = _check("groups.sweep")
    rising_in_one_seed = {**SWEEP["0"], "groups": [0.99, 0.95, 0.95, 0.96]}  # 0 %: minority 0.95 > 0.60 at 5 %
    per_seed = {k: [r, r, rising_in_one_seed if k == "0" else r] for k, r in SWEEP.items()}
    v = sweep({"sweep": SWEEP, "sweep_per_seed": per_seed})
    assert v.holds and v.per_seed == (True, True, False) and v.label == "mixed (2 of 3 seeds)"
    # the deciding margin, the smallest of the three criteria's: the 25 % majority groups' 0.93 over 0.9
    assert abs(v.margin - (0.93 - claims.MAJORITY_MIN)) < 1e-9
