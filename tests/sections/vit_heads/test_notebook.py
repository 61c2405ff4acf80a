"""Notebook 06 (ViT neurons and attention heads), run headlessly in the smoke profile, checked on what it recorded."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support.notebook_runs import recorded, unit

from shortcut_nb.sections.vit_heads.record import DETECTOR_KEYS, KEYS, NAME


@pytest.mark.notebook
def test_06_records_sscores_of_both_models_on_the_same_samples(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["profile"] == "smoke" and rec["seconds"] > 0 and unit(rec["alpha"])
    assert set(KEYS) <= set(rec)
    assert rec["runs"]["trained"] + rec["runs"]["loaded"] == 4, "a CNN and a ViT per dataset"
    assert set(rec["sscore"]) == {"isic", "waterbirds"}
    for ds, r in rec["sscore"].items():
        assert 0 < r["area"] < 1 and r["n_samples"] >= 1 and len(r["indices"]) == r["n_samples"]
        for arch in ("cnn", "vit"):
            s = r[arch]
            assert len(s["scores"]) == s["d"] and all(unit(v) for v in s["scores"])
            assert s["mean"] == pytest.approx(np.mean(s["scores"]), abs=1e-5)
            assert s["area"] == r["area"], "both models are scored against the same masks"
            assert s["lift"] == pytest.approx(s["mean"] / r["area"])
            assert sum(s["band_counts"].values()) == s["d"]
            assert rec["mean_s"][f"{ds}/{arch}"] == s["mean"]
        (entry,) = rec["sscore_per_seed"][ds]  # smoke trains one seed: its entry is the headline's means
        gap = entry.pop("vit_minus_cnn")  # with its bootstrap interval over neurons
        assert entry == {"seed": 0, "area": r["area"], "cnn": r["cnn"]["mean"], "vit": r["vit"]["mean"]}
        assert gap["value"] == pytest.approx(r["vit"]["mean"] - r["cnn"]["mean"], abs=1e-6)
        assert gap["low"] <= gap["value"] <= gap["high"]
        assert r["vit"]["d"] == 128 and r["cnn"]["d"] == 256  # vit_mini / resnet_mini penultimate sizes
    # ISIC-like masks are small colour patches, Waterbirds-like masks the (large) background
    assert rec["sscore"]["isic"]["area"] < 0.3 < rec["sscore"]["waterbirds"]["area"]


@pytest.mark.notebook
def test_06_records_layer_by_head_tables(smoke_run):
    rec = recorded(smoke_run, NAME)
    for ds, a in rec["attention"].items():
        L, H = a["layers"], a["heads"]
        assert (L, H) == (4, 4) and a["grid"] == [8, 8]
        t = a["target"]
        assert 0 <= t["row"] < 8 and 0 <= t["col"] < 8 and t["is_spurious"] is False  # default target is a core patch
        assert len(t["share"]) == L and all(len(row) == H and all(unit(v) for v in row) for row in t["share"])
        assert unit(t["area"])
        if t["area"] > 0:
            assert np.allclose(np.asarray(t["lift"]), np.asarray(t["share"]) / t["area"], atol=1e-4)
        core = a["core"]
        assert 0 <= core["n_images"] <= a["n_images"]
        if core["n_images"]:
            share = np.asarray(core["share"], dtype=float)
            assert share.shape == (L, H) and ((share >= 0) & (share <= 1)).all()
            assert np.allclose(np.asarray(core["lift"], dtype=float), share / core["area"], atol=1e-4)
            for l, h in core["heads_beyond_area"]:
                assert core["lift"][l][h] >= core["lift_min"] and core["excess_lower"][l][h] > 0
    for fig in ("06_fig8_neurons", "06_fig9_attention", "06_neuron_view", "06_head_tables_isic",
                "06_head_tables_waterbirds"):
        assert (smoke_run[0] / "figures" / f"{fig}.png").stat().st_size > 1000


@pytest.mark.notebook
def test_06_claims_rows_are_evaluated(smoke_run):
    recorded(smoke_run, NAME)
    claims = json.loads((smoke_run[0] / "claims.json").read_text())["claims"]
    rows = {c["id"]: c for c in claims if c["notebook"] == NAME}
    detectors = {f"vit_detectors.{k}" for k in ("sscore", "group_gap", "spuriosity")}
    assert set(rows) == {"vit_heads.sscore", "vit_heads.heads", *detectors}
    for key, row in rows.items():
        assert row["ours"] != "not run" and not row["ours"].startswith("not recorded")
        # a row whose interval covers its threshold (or, one seed, that has none) is undecided: holds null
        assert row["holds"] in (True, False, None) and row["effect"]["unit"]


@pytest.mark.notebook
def test_06_cnn_scores_match_notebook_03(smoke_run):
    """Same draw (SAMPLE_SEED), same α: the CNN here is scored on notebook 03's images, with 03's result."""
    rec = recorded(smoke_run, NAME)
    path = smoke_run[0] / "03_cnn_neurons.json"
    if not path.is_file():
        pytest.skip("notebook 03 did not record in this run")
    rec03 = json.loads(path.read_text())
    if rec03["alpha"] != rec["alpha"]:
        pytest.skip("notebooks 03 and 06 ran with different alphas")
    for ds, r in rec["sscore"].items():
        r03 = rec03["datasets"][ds]
        assert r["indices"] == r03["sample_index"]
        assert r["area"] == pytest.approx(r03["area"], abs=1e-9)
        assert r["cnn"]["mean"] == pytest.approx(r03["mean"], abs=1e-4)


@pytest.mark.notebook
def test_06_records_the_vits_depth_profile(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["weights"]
    for ds, prof in rec["depth_profile"].items():
        assert [b["block"] for b in prof["blocks"]] == [f"blocks.{i}.norm1" for i in range(len(prof["blocks"]))]
        assert all(b["chance"] == pytest.approx(rec["sscore"][ds]["area"]) for b in prof["blocks"])
    assert (smoke_run[0] / "figures" / "06_depth_profile.png").stat().st_size > 1000


@pytest.mark.notebook
def test_06_scores_the_vit_detectors_against_the_counterfactual_ground_truth(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert set(rec["detectors"]) == {"waterbirds", "isic"}
    for ds, e in rec["detectors"].items():
        assert set(e) == set(DETECTOR_KEYS) and e["available"] and e["n_pairs"] == 32
        assert set(e["table"]) == {"sscore", "group_gap", "spuriosity"}
        assert e["scores"]["sscore"] == pytest.approx(rec["sscore"][ds]["vit"]["scores"], abs=1e-6)
        assert set(e["randomised"]) == {"last_block", "all"}
    assert (smoke_run[0] / "figures" / "06_detector_scatter.png").is_file()
