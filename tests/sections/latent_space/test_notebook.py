"""Notebook 02 (latent space, paper §4.2 / Fig. 3) through the runner in the smoke profile, and run again: the
second run extracts no features and recomputes no projection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.notebook_runs import recorded, unit

from shortcut_nb.report.runner import TIMEOUTS, notebooks_dir, run_notebook

NAME = "02_latent_space"
KEYS = {f"{d}/{a}/{s}" for d in ("waterbirds", "isic") for a in ("cnn", "vit") for s in ("train", "test")}


@pytest.mark.notebook
def test_02_records_purity_against_shuffled_baselines(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["profile"] == "smoke" and rec["seconds"] > 0
    assert rec["runs"]["trained"] + rec["runs"]["loaded"] == 4  # two datasets x CNN and ViT, through the Context
    assert set(rec["neighbourhoods"]) == KEYS
    assert rec["headline"] == "waterbirds/cnn/train" and rec["claim_split"] == "train"
    assert unit(rec["purity"]) and unit(rec["baseline"])
    assert rec["lift"] == pytest.approx(rec["purity"] - rec["baseline"])
    for key, r in rec["neighbourhoods"].items():
        att = r["attribute"]
        assert r["split"] == key.rsplit("/", 1)[1] and r["k"] == rec["k"]
        if att["purity"] is None:  # no class with both attribute values
            assert r["evaluable"] == []
            continue
        assert unit(att["purity"]) and unit(att["baseline"]) and 0.0 < att["p_value"] <= 1.0
        assert abs(att["baseline"] - 0.5) < 0.15  # the balanced score's chance level
        used = [r["classes"][c] for c in r["evaluable"]]
        assert all(len(c["attribute_counts"]) == 2 for c in used)
        assert att["purity"] == pytest.approx(sum(c["purity"] for c in used) / len(used))
        assert unit(r["class"]["purity"])
    # the ISIC-like training set has no malignant image with a patch: only the benign class is measured there
    assert rec["neighbourhoods"]["isic/cnn/train"]["evaluable"] == ["0"]
    assert set(rec["projection_seconds"]) == {f"{d}/{a}/train" for d in ("waterbirds", "isic") for a in ("cnn", "vit")}
    assert all(v["tsne"] >= 0 for v in rec["projection_seconds"].values())
    feats = rec["features"]
    assert feats["n_requested"] == len(KEYS) == feats["n_extracted"] + feats["n_from_cache"]
    out = smoke_run[0]
    for fig in ("02_latent_tsne", "02_latent_purity", "02_latent_default_view"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    row = next(c for c in json.loads((out / "claims.json").read_text())["claims"] if c["id"] == "latent.within_class")
    assert row["holds"] in (True, False, None) and "attribute purity" in row["ours"]
    # the per-seed table (issue 24): smoke trains one seed, its entry is the notebook's own result
    for key, entries in rec["neighbourhoods_per_seed"].items():
        assert [e["seed"] for e in entries] == [0] and entries[0]["lift"] == rec["neighbourhoods"][key]["attribute"]["lift"]


@pytest.mark.notebook
def test_02_second_run_extracts_nothing(smoke_run, tmp_path):
    first = recorded(smoke_run, NAME)
    runs_root = Path(first["feature_cache_dir"]).parent  # the notebook caches under <runs root>/features
    result = run_notebook(notebooks_dir() / f"{NAME}.ipynb", profile="smoke", out=tmp_path, timeout=TIMEOUTS["smoke"],
                          runs_root=str(runs_root))
    assert result.ok, result.error
    second = json.loads((tmp_path / f"{NAME}.json").read_text())
    assert second["features"]["n_extracted"] == 0
    assert second["runs"] == {"trained": 0, "loaded": 4}
    assert second["features"]["n_from_cache"] == second["features"]["n_requested"] == len(KEYS)
    assert all(v["tsne_from_cache"] for v in second["projection_seconds"].values())
    for key in KEYS:  # same features, same numbers
        assert second["neighbourhoods"][key]["attribute"] == first["neighbourhoods"][key]["attribute"]
