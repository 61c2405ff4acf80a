"""Notebook 03's claims and takeaways, on hand-made records (they read the recorded JSON only)."""
from __future__ import annotations

import pytest

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.cnn_neurons import claims as C
from shortcut_nb.sections.cnn_neurons.record import REFIT_SET, ROWS
from support.claims import astuple_verdict, point_holds
from support.detector_records import detector_entry, unavailable_entry


def _rec(isic: dict, waterbirds: dict | None = None) -> dict:
    base = {"min": 0.0, "max": 0.8, "area": 0.05, "lift_max": 16.0, "n_high": 5, "n_high_above_chance": 5,
            "pruned_neurons": [1, 2, 3, 4, 5], "tau": 0.7, "alpha": 0.5, "model": "resnet_mini", "d": 64,
            "n_samples": 8, "band_counts": {"low": 40, "mid": 19, "high": 5},
            "table4": {r: {"wga": w} for r, w in zip(ROWS, (0.37, 0.40, 0.51, 0.56))}}
    datasets = {"isic": {**base, **isic}}
    if waterbirds is not None:
        datasets["waterbirds"] = {**base, **waterbirds}
    return {"alpha": 0.5, "band_edges": [0.2, 0.7], "refit_set": REFIT_SET, "accuracy_split": "test",
            "profile": "smoke", "seconds": 12.0, "datasets": datasets}


def _table4(*wgas: float) -> dict:
    return {"table4": {r: {"wga": w} for r, w in zip(ROWS, wgas)}}


def test_claims_verdicts_and_chance_text():
    checks = {c.id: c.check for c in CLAIMS}
    ours, holds = astuple_verdict(checks["neurons.spread"](_rec({}, {"area": 0.88, "max": 0.95, "n_high_above_chance": 2,
                                                      "lift_max": 1.08})))
    assert holds and "0.00–0.80" in ours and "no better than a heatmap ignoring the image" in ours
    assert "all 5 high neurons exceed it" in ours and "5 > 0.7" in ours
    assert not point_holds(checks["neurons.spread"](_rec({"max": 0.4, "n_high": 0})))
    assert point_holds(checks["neurons.prune_refit"](_rec({})))
    assert not point_holds(checks["neurons.prune_refit"](_rec(_table4(0.37, 0.37, 0.51, 0.56))))
    assert not point_holds(checks["neurons.prune_refit"](_rec(_table4(0.37, 0.40, 0.39, 0.56))))
    ours, holds = astuple_verdict(checks["neurons.prune_refit"](_rec({"pruned_neurons": []})))
    assert not holds and "nothing pruned" in ours
    missing = _rec({})
    missing["datasets"]["isic"]["table4"]["refit"] = None
    ours, holds = astuple_verdict(checks["neurons.prune_refit"](missing))
    assert not holds and "refit n/a" in ours


def test_claims_name_notebook_03_and_the_papers_numbers():
    ours = {c.id: c for c in CLAIMS if c.id.startswith("neurons.")}
    assert set(ours) == {"neurons.spread", "neurons.prune_refit"}
    assert all(c.notebook == "03_cnn_neurons" for c in ours.values())
    assert ours["neurons.prune_refit"].paper == ("Table 4 (ResNet-18, ISIC): WGA 0.37 → 0.40 pruned; refit 0.51, "
                                                 "refit after pruning 0.56")
    assert ours["neurons.spread"].paper.startswith("§5.1: ResNet-18 on ISIC, s-scores from 0.0 to 0.8;")


def test_chance_remark_and_takeaways():
    none_high = {"n_high": 0, "n_high_above_chance": 0, "area": 0.3, "lift_max": 2.0}
    assert C.chance_remark(none_high, 0.7).startswith("no neuron above 0.7")
    text = C.takeaways(_rec({}, {"area": 0.88, "max": 0.95, "n_high_above_chance": 2, "lift_max": 1.08}))
    assert "ISIC-like" in text and "Waterbirds-like" in text and "s-scores 0.00–0.80 (paper, ISIC: 0.0–0.8)" in text
    assert "WGA 0.37 → 0.40 after zeroing 5 neurons with s > 0.7" in text
    assert "(paper, ISIC: 0.37 → 0.40; 0.51, 0.56)" in text and "Profile smoke, 12 s." in text
    assert "bands low 40 · mid 19 · high 5" in text
    assert "does not raise WGA" not in text
    flat = C.takeaways(_rec(_table4(0.04, 0.04, 0.83, 0.82)))
    assert "Zeroing them does not raise WGA here: the paper's +0.03 starts from WGA 0.37, ours from 0.04, where" in flat


def _seed(seed: int, lo: float, hi: float, n_high: int, *wgas: float) -> dict:
    return {"seed": seed, "min": lo, "max": hi, "mean": 0.2, "area": 0.08, "n_high": n_high,
            "n_high_above_chance": n_high, "n_pruned": n_high, "wga": dict(zip(ROWS, wgas))}


def test_claims_are_decided_on_the_interval_over_seeds():
    """The record's headline is one seed; the verdict reads every seed's entry and decides on the t-interval."""
    rec = _rec({})
    rec["per_seed"] = {"isic": [_seed(0, 0.0, 0.85, 3, 0.10, 0.12, 0.80, 0.82),
                                _seed(1, 0.0, 0.65, 0, 0.10, 0.10, 0.80, 0.80),
                                _seed(2, 0.0, 0.80, 2, 0.10, 0.15, 0.80, 0.85)]}
    spread = C._spread(rec)
    # the top neuron, 0.85 / 0.65 / 0.80: mean 0.77 above 0.7, but seed 1 is below and the interval covers 0.7
    assert spread.per_seed == (True, False, True) and spread.label == "undecided"
    top = spread.effect
    assert top.name == "highest neuron s-score, ISIC-like CNN" and top.value == pytest.approx(0.7667, abs=1e-4)
    assert top.low < 0.7 < top.high and top.paper == 0.8
    assert "per seed (3): 0.00–0.85 (3 high) / 0.00–0.65 (0 high) / 0.00–0.80 (2 high)" in spread.ours
    refit = C._prune_refit(rec)
    # seed 1 zeroes nothing: its pruning effect is not measured; the two others (+0.02, +0.05) decide it
    prune = next(e for e in refit.effects if e.name.startswith("ΔWGA after zeroing"))
    assert prune.per_seed == (pytest.approx(0.02), None, pytest.approx(0.05)) and prune.n_seeds == 2
    assert prune.paper == pytest.approx(0.40 - 0.37) and refit.per_seed == (True, False, True)
    assert refit.label == "undecided" and refit.effect is prune  # (+0.02, +0.05) with two seeds: t covers 0
    one = _rec({})
    one["per_seed"] = {"isic": [_seed(0, 0.0, 0.85, 3, 0.10, 0.12, 0.80, 0.82)]}  # one seed: nothing to split
    assert C._spread(one).per_seed == () and C._spread(one).label == "undecided (one seed, no interval)"
    text = C.takeaways(rec)
    assert "s-score spread (ISIC-like): undecided; Table 4 (ISIC-like): undecided." in text
    assert "s-score spread (ISIC-like) (undecided) is decided by highest neuron s-score, ISIC-like CNN: 0.77 [" in text


def test_one_seeds_pruning_is_decided_on_its_bootstrap_over_test_images():
    """With one seed, the ΔWGA of pruning takes the interval recorded with it (paired bootstrap over test images)."""
    wide, tight = _rec({"table4_change": [-0.02, 0.08]}), _rec({"table4_change": [0.01, 0.05]})
    prune = lambda rec: next(e for e in C._prune_refit(rec).effects if e.name.startswith("ΔWGA after"))  # noqa: E731
    assert prune(wide).interval_kind == "bootstrap within the seed" and prune(wide).outcome == "undecided"
    assert (prune(tight).low, prune(tight).high) == (0.01, 0.05) and prune(tight).outcome == "holds"
    assert prune(_rec({})).interval_kind is None  # a record from before the interval was kept
    five = _rec({})
    five["per_seed"] = {"isic": [{**_seed(s, 0.0, 0.8, 2, 0.10, 0.10 + 0.01 * s, 0.8, 0.8), "wga_change": [-0.1, 0.2]}
                                 for s in range(5)]}
    assert prune(five).interval_kind == "t over 5 seeds" and prune(five).within[1] == (-0.1, 0.2)


def test_one_seeds_spread_is_decided_on_its_bootstrap_over_the_scored_images():
    """With one seed, the range (max − min) and the highest neuron's s-score take the intervals recorded with them
    (bootstrap over the s-score images); an older record without them stays undecided for want of an interval."""
    spread = lambda rec: {e.name.split(" ")[0]: e for e in C._spread(rec).effects}  # noqa: E731
    tight = _rec({"range_interval": [0.62, 0.9], "max_interval": [0.74, 0.9]})
    v = C._spread(tight)
    assert v.label == "holds" and {e.interval_kind for e in v.effects} == {"bootstrap within the seed"}
    assert (spread(tight)["s-score"].low, spread(tight)["highest"].low) == (0.62, 0.74)
    assert spread(tight)["s-score"].value == pytest.approx(0.8) and spread(tight)["highest"].value == 0.8
    wide = _rec({"range_interval": [0.62, 0.9], "max_interval": [0.66, 0.9]})  # the max's interval covers 0.7
    assert C._spread(wide).label == "undecided" and C._spread(wide).effect.name.startswith("highest neuron")
    low = _rec({"max": 0.6, "range_interval": [0.3, 0.45], "max_interval": [0.55, 0.65]})
    assert C._spread(low).label == "fails"
    assert C._spread(_rec({})).label == "undecided (one seed, no interval)"
    one = _rec({})  # the notebook's one seed recorded under per_seed: read from there
    one["per_seed"] = {"isic": [{**_seed(0, 0.0, 0.85, 3, 0.1, 0.12, 0.8, 0.82), "range_interval": [0.7, 0.95],
                                 "max_interval": [0.75, 0.95]}]}
    assert C._spread(one).label == "undecided (one seed, no interval)"  # a one-entry per_seed is not read (headline)
    three = _rec({})
    three["per_seed"] = {"isic": [{**_seed(s, 0.0, 0.8 + 0.02 * s, 3, 0.1, 0.12, 0.8, 0.82),
                                   "range_interval": [0.7, 0.95], "max_interval": [0.75, 0.95]} for s in range(3)]}
    top = spread(three)["highest"]
    assert top.interval_kind == "t over 3 seeds" and top.within[2] == (0.75, 0.95)


def test_one_seeds_refit_gain_is_decided_on_its_bootstrap_over_test_images():
    """With one seed, the refits' gain over pruning takes the interval recorded with it (``table4_refit_change``,
    per seed ``refit_change``): an interval covering 0 leaves it undecided, one above 0 holds; none recorded (an
    older record) leaves the one seed without an interval."""
    gain = lambda rec: next(e for e in C._prune_refit(rec).effects if e.name.startswith("ΔWGA of the group"))  # noqa: E731
    tight = _rec({"table4_change": [0.01, 0.05], "table4_refit_change": [0.05, 0.18]})
    wide = _rec({"table4_change": [0.01, 0.05], "table4_refit_change": [-0.03, 0.25]})
    assert gain(tight).value == pytest.approx(0.51 - 0.40) and gain(tight).interval_kind == "bootstrap within the seed"
    assert (gain(tight).low, gain(tight).high) == (0.05, 0.18) and C._prune_refit(tight).label == "holds"
    assert gain(wide).outcome == "undecided" and C._prune_refit(wide).label == "undecided"
    assert C._prune_refit(wide).effect.name.startswith("ΔWGA of the group")  # the refits' gain decides it
    old = _rec({"table4_change": [0.01, 0.05]})
    assert gain(old).interval_kind is None and C._prune_refit(old).label == "undecided (one seed, no interval)"
    three = _rec({})
    three["per_seed"] = {"isic": [{**_seed(s, 0.0, 0.8, 2, 0.40, 0.42, 0.5 + 0.01 * s, 0.56), "refit_change": [0.0, 0.2]}
                                  for s in range(3)]}
    assert gain(three).interval_kind == "t over 3 seeds" and gain(three).within == ((0.0, 0.2),) * 3


# --------------------------------------------------------------------------- detectors against the ground truth


def test_detector_claims_are_effects_with_intervals_and_no_paper_value(tiny_isic):
    checks = {c.id: c for c in CLAIMS if c.id.startswith("detectors.")}
    assert set(checks) == {"detectors.sscore", "detectors.group_gap", "detectors.spuriosity"}
    assert all(c.notebook == "03_cnn_neurons" and c.paper.startswith("not in the paper (no paper value)")
               for c in checks.values())
    entry = detector_entry(tiny_isic, seeds=(0, 1, 2))
    rec = {**_rec({}), "detectors": {"isic": entry, "mine": unavailable_entry()}}
    for key, c in checks.items():
        v = c.check(rec)
        interval = entry["seeds"][key.split(".")[1]]["auroc"]
        assert v.holds == (interval["low"] is not None and interval["low"] > 0.5)
        assert v.decided == (v.holds or (interval["high"] is not None and interval["high"] < 0.5))
        assert len(v.per_seed) == 3 and "mean over 3 seeds" in v.ours and "mine" not in v.ours
    rec["detectors"]["isic"] = unavailable_entry("isic")
    assert checks["detectors.sscore"].check(rec).label == "undecided"


def test_detector_takeaways_name_the_table_randomisation_pruning_and_the_data_without_masks(tiny_isic):
    entry = detector_entry(tiny_isic)
    entry.update(tau=0.7, pruning={"k": 2, "rule": "top 2 of each detector", "baseline": {"wga": 0.2},
                                   "refit": {"wga": 0.5}, "rows": {"truth": {"pruned": {"wga": 0.3},
                                                                             "refit_pruned": None}}})
    rec = {**_rec({}), "detectors": {"isic": entry},
           "mask_free": {"bare": {"top": {"group_gap": [4, 2, 9, 1, 0, 7]}, "agreement": 0.41}}}
    lines = C.detector_takeaways(rec)
    assert lines[0].startswith("- CNN detectors vs the counterfactual ground truth, ISIC-like (8 validation pairs")
    assert lines[1].startswith("  Randomisation check:")
    assert "top 2 of each detector" in lines[2] and "ground truth (spurious share) 0.30 / n/a" in lines[2]
    assert lines[3] == ("- bare has no masks: no s-score; the mask-free detectors rank its neurons (top by group gap: "
                        "n4, n2, n9, n1, n0; the two rankings agree at Spearman 0.41).")
    assert "\n".join(lines) in C.takeaways(rec)
    assert C.detector_takeaways(_rec({})) == []  # a record made before the detectors: nothing to say
