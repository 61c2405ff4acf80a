"""Notebook 01's claims and takeaways, on hand-made records (the recorded JSON only)."""
from __future__ import annotations

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.groups import claims

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
    ours, holds = check({"table2": {"waterbirds/cnn": ROW}})
    assert holds and ours == "waterbirds/cnn: AVG 0.83 / WGA 0.50"
    close = {**ROW, "wga": ROW["avg"] - claims.WGA_GAP_MIN / 2}
    assert not check({"table2": {"waterbirds/cnn": ROW, "isic/cnn": close}})[1]


def test_sweep_needs_falling_minority_high_majority_and_above_zero_at_zero():
    check = _check("groups.sweep")
    ours, holds = check({"sweep": SWEEP})
    assert holds and ours.startswith("minority mean 0.93 / 0.85 / 0.60 / 0.25 at 50% / 25% / 5% / 0%")
    noisy = {**SWEEP, "0.25": {"ratio": 0.25, "groups": [0.98, 0.95, 0.93, 0.93]}}  # +0.01: seed noise
    assert check({"sweep": noisy})[1]
    rising = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.9, 0.9, 0.96]}}
    assert not check({"sweep": rising})[1]
    weak_majority = {**SWEEP, "0.05": {"ratio": 0.05, "groups": [0.85, 0.7, 0.5, 0.95]}}
    assert not check({"sweep": weak_majority})[1]
    collapsed = {**SWEEP, "0": {"ratio": 0.0, "groups": [0.99, 0.05, 0.05, 0.96]}}
    assert not check({"sweep": collapsed})[1]
    no_zero = {k: v for k, v in SWEEP.items() if k != "0"}
    assert not check({"sweep": no_zero})[1]


def test_takeaways_state_the_run_in_its_numbers():
    rec = {"table2": {"waterbirds/cnn": ROW}, "sweep": SWEEP, "profile": "smoke", "seconds": 12.4}
    text = claims.takeaways(rec)
    assert "- waterbirds/cnn (resnet_mini): AVG 0.83, WGA 0.50 (worst group waterbird/land (G2)), GAP 0.33." in text
    assert "50% → 0.93, 25% → 0.85, 5% → 0.60, 0% → 0.25" in text
    assert "Every model shows a gap of at least 0.10" in text and text.endswith("Profile smoke, 12 s.")
    small = {**rec, "table2": {"waterbirds/cnn": {**ROW, "gap": 0.05}}}
    assert "Not every model shows a gap" in claims.takeaways(small)
