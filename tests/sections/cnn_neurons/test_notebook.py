"""Notebook 03 (CNN neurons, paper §3.3 / §5.1, Figs. 2 and 4, Table 4) through the runner in the smoke profile."""
from __future__ import annotations

import json

import pytest

from shortcut_nb.sections.cnn_neurons.record import DATASET_KEYS, DETECTOR_KEYS, KEYS, NAME, ROWS, SEED_KEYS
from support.notebook_runs import recorded, unit


@pytest.mark.notebook
def test_03_records_sscores_with_their_chance_level(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert set(KEYS) <= set(rec)  # the report may add its own keys (torch_threads)
    assert rec["profile"] == "smoke" and rec["seconds"] > 0
    assert set(rec["runs"]) == {"trained", "loaded"} and sum(rec["runs"].values()) == 2  # one CNN per dataset
    assert rec["headline"] == "isic" and rec["alpha"] == 0.5 and rec["tau"] == 0.7
    assert rec["band_edges"] == [0.2, 0.7] and rec["alpha"] in rec["alpha_grid"]
    assert set(rec["datasets"]) == {"waterbirds", "isic"}
    for name, r in rec["datasets"].items():
        assert set(r) == set(DATASET_KEYS)
        s = r["scores"]
        assert len(s) == r["d"] and all(unit(v) for v in s)
        assert r["min"] == pytest.approx(min(s), abs=1e-5) and r["max"] == pytest.approx(max(s), abs=1e-5)
        assert r["mean"] == pytest.approx(sum(s) / len(s), abs=1e-5)
        assert sum(r["band_counts"].values()) == r["d"]
        assert r["band_counts"]["high"] == sum(v > 0.7 for v in s) == r["n_high"]
        assert r["n_samples"] == 8 and len(set(r["sample_index"])) == 8
        # chance level: the mean mask area, and the lift relative to it
        assert 0 < r["area"] < 1 and r["lift_max"] == pytest.approx(r["max"] / r["area"], rel=1e-6)
        assert r["lift"] == pytest.approx(r["mean"] / r["area"], rel=1e-6)
        assert r["n_above_chance"] == sum(v > r["area"] for v in s)
        assert r["alpha_sensitivity"]["0.5"]["band_counts"] == r["band_counts"]
    # the spurious region: the background of a Waterbirds-like image, a small patch on an ISIC-like one
    assert rec["datasets"]["waterbirds"]["area"] > 0.6 and rec["datasets"]["isic"]["area"] < 0.2
    assert rec["area"] == rec["datasets"]["isic"]["area"]
    # smoke trains one seed: its per-seed entry is the headline's own numbers
    for name, r in rec["datasets"].items():
        (entry,) = rec["per_seed"][name]
        assert set(entry) == set(SEED_KEYS) and entry["seed"] == 0
        assert (entry["min"], entry["max"], entry["n_high"]) == (r["min"], r["max"], r["n_high"])
        assert entry["wga"] == {row: r["table4"][row]["wga"] for row in ROWS}


@pytest.mark.notebook
def test_03_records_the_depth_profile_methods_and_variants(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["weights"]
    for name, prof in rec["depth_profile"].items():
        assert [b["block"] for b in prof["blocks"]] == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
        last = prof["blocks"][-1]
        assert last["mean"] == pytest.approx(rec["datasets"][name]["mean"], abs=1e-6)  # the penultimate neurons
        assert all(unit(b["share_significant"]) and b["share_significant"] <= b["share_above_chance"] + 1e-9
                   for b in prof["blocks"])
    rows = rec["method_bands"]
    assert len(rows) == 8 and all(r["band_counts"] == rows[0]["band_counts"] for r in rows[:5])
    assert rows[0]["band_counts"] == rec["datasets"]["isic"]["band_counts"]
    ex = rec["dilation_example"]
    assert ex["s_dilated"] - ex["s"] == pytest.approx(ex["gain"]) and ex["gain"] >= 0
    for fig in ("03_depth_profile", "03_dilation_neuron"):
        assert (smoke_run[0] / "figures" / f"{fig}.png").stat().st_size > 1000, fig


@pytest.mark.notebook
def test_03_records_table4_and_claims(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["refit_set"].startswith("validation split") and rec["accuracy_split"] == "test"
    for name, r in rec["datasets"].items():
        t = r["table4"]
        assert set(t) == set(ROWS)
        base = t["baseline"]
        assert len(base["groups"]) == 4 and all(unit(v) for v in base["groups"])
        assert base["wga"] == pytest.approx(min(base["groups"])) and base["n_zeroed"] == 0
        assert t["pruned"]["n_zeroed"] == len(r["pruned_neurons"]) == sum(v > 0.7 for v in r["scores"])
        assert t["pruned"]["n_used"] == r["d"] - t["pruned"]["n_zeroed"]
        if not r["pruned_neurons"]:
            assert t["pruned"]["groups"] == base["groups"]
        for row in ("refit", "refit_pruned"):  # the synthetic val split holds every group: both refits exist
            assert t[row] is not None, r["table4_errors"]
            assert unit(t[row]["wga"]) and t[row]["wga"] <= t[row]["avg"] + 1e-9
        assert t["refit_pruned"]["n_used"] <= r["d"] - t["pruned"]["n_zeroed"]
    assert rec["wga"] == {row: rec["datasets"]["isic"]["table4"][row]["wga"] for row in ROWS}
    out = smoke_run[0]
    for fig in ("03_fig2_sscore_derivation", "03_sscore_histogram", "03_fig4_bands_waterbirds", "03_fig4_bands_isic",
                "03_table4_pruning", "03_neuron_view"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    claims = {c["id"]: c for c in json.loads((out / "claims.json").read_text())["claims"]}
    for cid in ("neurons.spread", "neurons.prune_refit"):
        # smoke trains one seed: a row without a within-seed interval is undecided (holds null, issue 24)
        assert claims[cid]["holds"] in (True, False, None) and claims[cid]["profile"] == "smoke"
        assert claims[cid]["effect"]["unit"] and claims[cid]["verdict"].split(" (")[0] in ("holds", "fails", "undecided")
    assert "chance" in claims["neurons.spread"]["ours"] and "ISIC-like" in claims["neurons.prune_refit"]["ours"]


@pytest.mark.notebook
def test_03_scores_the_detectors_against_the_counterfactual_ground_truth(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert set(rec["detectors"]) == {"waterbirds", "isic"} and rec["mask_free"] == {}
    for name, e in rec["detectors"].items():
        assert set(e) == set(DETECTOR_KEYS) and e["available"] and e["n_pairs"] == 32 and e["n_seeds"] == 1
        assert set(e["table"]) == {"sscore", "sscore_soft", "sscore_iou", "group_gap", "spuriosity"}  # JSON: sorted
        assert e["scores"]["sscore"] == pytest.approx(rec["datasets"][name]["scores"], abs=1e-6)
        assert set(e["randomised"]) == {"last_block", "all"} and e["area"] == rec["datasets"][name]["area"]
        assert all(unit(v) for v in e["truth"]["spurious_share"] if v is not None)
        p = e["pruning"]
        assert set(p["rows"]) == {"truth", *e["table"]} and all(len(r["neurons"]) == p["k"] for r in p["rows"].values())
        pruned = rec["datasets"][name]["pruned_neurons"]
        if pruned:  # the s-score's top k is Table 4's own pruning
            assert sorted(p["rows"]["sscore"]["neurons"]) == sorted(pruned)
    executed = (smoke_run[0] / f"{NAME}.ipynb").read_text()
    assert "Every dataset analysed has spurious masks" in executed
    assert (smoke_run[0] / "figures" / "03_detector_scatter.png").is_file()
