"""Notebook 03's record: one entry per dataset (scores summarised by the one summary, Table 4) and the payload."""
from __future__ import annotations

import json

import pytest

from shortcut_nb.sections.cnn_neurons import record as R
from shortcut_nb.sections.cnn_neurons import study as S
from shortcut_nb.sscore import summarize_scores
from shortcut_nb.sscore.uncertainty import spread_intervals
from shortcut_nb.vocab import GROUP_NAMES
from support.cnn_neurons import tiny_study


@pytest.fixture(scope="module")
def study():
    return tiny_study()


def test_dataset_record_holds_the_summary_and_table4(study):
    res = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0, sensitivity_alphas=(0.33, 0.5, 0.42))
    assert tuple(res) == R.DATASET_KEYS
    assert set(res["alpha_sensitivity"]) == {"0.33", "0.5"}  # 0.42 is not precomputed: skipped
    assert set(res["alpha_sensitivity"]["0.5"]) == set(R.SENSITIVITY_KEYS)
    assert res["alpha_sensitivity"]["0.5"]["band_counts"] == res["band_counts"]
    assert len(res["scores"]) == 256 == res["d"] and res["area"] == pytest.approx(study.area)
    assert sum(res["band_counts"].values()) == 256
    summary = summarize_scores(study.scores(0.5), study.area, tau=0.7)
    assert {k: res[k] for k in summary} == summary and res["lift"] == pytest.approx(res["mean"] / res["area"])
    assert res["table4"]["pruned"]["n_zeroed"] == res["n_above_tau"] == len(res["pruned_neurons"])
    table = study.table4(0.5, 0.7, 0)
    assert res["table4"] == {row: table[row] for row in R.ROWS} and res["table4_errors"] == table["errors"]
    # the within-seed intervals: pruning's ΔWGA and the refits' gain over pruning
    assert (res["table4_change"], res["table4_refit_change"]) == (table["pruned_change"], table["refit_change"])
    assert res["table4_refit_change"] is not None
    assert res["sample_index"] == study.sample_index.tolist() and res["group_names"] == list(GROUP_NAMES["isic"])
    json.dumps(res)  # JSON-able


def test_record_payload_keys_and_headline(study):
    res = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0)
    results = {"waterbirds": {**res, "dataset": "waterbirds"}, "isic": res}
    rec = R.record_payload(results, profile="smoke", seconds=1.0, alpha=0.5, tau=0.7,
                           runs={"trained": 0, "loaded": 2})
    assert tuple(rec) == R.KEYS
    assert rec["headline"] == "isic" and rec["refit_set"].startswith("validation split")
    assert rec["wga"] == R.wgas(res) and rec["wga"]["baseline"] == res["table4"]["baseline"]["wga"]
    assert rec["min"] == res["min"] and rec["area"] == res["area"] and rec["runs"] == {"trained": 0, "loaded": 2}
    assert rec["band_edges"] == [0.2, 0.7] and 0.5 in rec["alpha_grid"]
    only_wb = R.record_payload({"waterbirds": results["waterbirds"]}, profile="smoke", seconds=1.0, alpha=0.5,
                               tau=0.7)
    assert only_wb["headline"] == "waterbirds" and only_wb["runs"] == {}
    json.dumps(rec)


def test_record_payload_holds_the_depth_profile_and_the_method_table(study):
    res = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0)
    depth = {"isic": S.depth_profiles({"isic": study}, alpha=0.5)["isic"].record()}
    rows = S.method_variant_bands(study, alpha=0.5)
    ex = S.dilation_example(study, alpha=0.5)
    rec = R.record_payload({"isic": res}, profile="smoke", seconds=1.0, alpha=0.5, tau=0.7, weights="random",
                           depth=depth, method_bands=rows, dilation=ex)
    assert tuple(rec) == R.KEYS and rec["weights"] == "random"
    assert tuple(rec["depth_profile"]["isic"]) == R.DEPTH_KEYS
    assert all(tuple(b) == R.DEPTH_ROW_KEYS for b in rec["depth_profile"]["isic"]["blocks"])
    assert all(tuple(r) == R.METHOD_BAND_KEYS for r in rec["method_bands"])
    assert tuple(rec["dilation_example"]) == R.DILATION_KEYS
    json.dumps(rec)


def test_seed_entries_are_each_seeds_summary_and_table4(study):
    """What the per-seed verdicts read: the s-score range, the high neurons and Table 4's WGAs of each seed."""
    entries = R.seed_record({"isic": {2: study, 0: study}}, alpha=0.5, tau=0.7)["isic"]
    assert [e["seed"] for e in entries] == [2, 0] and all(tuple(e) == R.SEED_KEYS for e in entries)
    full = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0)
    e = entries[1]
    assert {k: e[k] for k in ("min", "max", "mean", "area", "n_high")} == {k: full[k] for k in
                                                                           ("min", "max", "mean", "area", "n_high")}
    assert e["wga"] == R.wgas(full) and e["n_pruned"] == len(full["pruned_neurons"])
    assert (e["wga_change"], e["refit_change"]) == (full["table4_change"], full["table4_refit_change"])
    json.dumps(entries)


def test_record_payload_holds_the_detectors_and_the_mask_free_rankings(study):
    res = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0)
    detectors = {"isic": {"dataset": "isic", "available": False, "reason": "why"}}
    mask_free = {"bare": {"dataset": "bare", "top": {"group_gap": [1]}}}
    rec = R.record_payload({"isic": res}, profile="smoke", seconds=1.0, alpha=0.5, tau=0.7, detectors=detectors,
                           mask_free=mask_free)
    assert tuple(rec) == R.KEYS and rec["detectors"] == detectors and rec["mask_free"] == mask_free
    assert rec["detectors"] is not detectors  # copies, not the caller's dicts
    plain = R.record_payload({"isic": res}, profile="smoke", seconds=1.0, alpha=0.5, tau=0.7)
    assert plain["detectors"] == {} and plain["mask_free"] == {}


def test_the_range_and_the_max_carry_their_bootstrap_over_the_scored_images(study):
    """Recorded with the one run and with each seed: the intervals of the neurons' max − min and max over the
    s-score images, from the study's per-sample scores at the recorded alpha (seeded with the model's seed)."""
    res = R.dataset_record(study, alpha=0.5, tau=0.7, seed=0)
    per_sample = study.per_sample_at(0.5)
    assert per_sample.shape == (res["n_samples"], res["d"])
    spread = spread_intervals(per_sample, seed=0)
    assert res["range_interval"] == list(spread["range"]) and res["max_interval"] == list(spread["max"])
    low, high = res["max_interval"]
    assert low <= high and res["min"] <= low and high <= 1.0  # a max of means of scores in [0, 1]
    assert res["range_interval"][1] <= res["max_interval"][1]
    entries = R.seed_record({"isic": {2: study, 0: study}}, alpha=0.5, tau=0.7)["isic"]
    assert entries[1]["range_interval"] == res["range_interval"] and entries[1]["max_interval"] == res["max_interval"]
    assert entries[0]["max_interval"] == list(spread_intervals(per_sample, seed=2)["max"])
    json.dumps(entries)
