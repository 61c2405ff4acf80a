"""Notebook 04 (entanglement, DFR), run headlessly in the smoke profile, checked on what it recorded."""
from __future__ import annotations

import json

import pytest
from support.notebook_runs import recorded, unit

NAME = "04_entanglement"
KEYS = {"waterbirds/cnn", "waterbirds/vit", "isic/cnn", "isic/vit"}


@pytest.mark.notebook
def test_04_records_tables_5_and_6_for_cnn_and_vit(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["profile"] == "smoke" and rec["seconds"] > 0
    assert set(rec["table"]) == KEYS and set(rec["per_seed"]) == KEYS  # the ViT is not skipped
    assert rec["headline"] == "waterbirds/cnn"
    assert set(rec["runs"]) == {"trained", "loaded"} and sum(rec["runs"].values()) == len(KEYS)
    for key in ("wga_baseline", "wga_dfr", "prune_h_refits", "prune_h_average", "mean_s_baseline"):
        assert unit(rec[key]), (key, rec[key])
    for key, row in rec["table"].items():
        b, d, e = row["baseline"], row["dfr"], row["edit"]
        assert row["n_seeds"] == len(row["seeds"]) == 1
        for head in (b, d, e):
            assert unit(head["wga"]) and unit(head["avg"])
        assert b["prune_h"] == 0.0, "the trained head is dense"
        assert unit(d["prune_h_refits"]) and unit(d["prune_h_average"])
        # a weight of the averaged head is zero only if zero in every refit
        assert d["prune_h_average"] <= d["prune_h_refits"] + 1e-9
        assert 0 < row["area"] < 1


@pytest.mark.notebook
def test_04_runs_are_internally_consistent(smoke_run):
    rec = recorded(smoke_run, NAME)
    settings = rec["settings"]
    assert settings["c_grid"] == [1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01] and settings["n_refits"] == 5
    for key, runs in rec["per_seed"].items():
        run = runs[0]
        s = run["sscore"]
        assert len(s["scores"]) == run["d"] and all(unit(v) for v in s["scores"])
        assert all(round(v, 6) == v for v in s["scores"]) and s["d"] == run["d"]  # summarize_scores' rounding
        assert s["lift"] == pytest.approx(s["mean"] / s["area"])
        assert s["n"] == settings["sscore_samples"]
        assert s["mean"] == pytest.approx(sum(s["scores"]) / run["d"], abs=1e-4)
        assert run["val_group_counts"] == [12, 12, 12, 12]
        b, d = run["baseline"], run["dfr"]
        assert b["n_used"] == run["d"] and b["mean_s"] == pytest.approx(s["mean"], abs=1e-4)
        assert d["wga"] == pytest.approx(min(d["groups"])) and d["wga"] <= d["avg"] + 1e-9
        assert len(d["kept"]) == d["n_used_average"] == round((1 - d["prune_h_average"]) * run["d"])
        if d["kept"]:
            kept_mean = sum(s["scores"][i] for i in d["kept"]) / len(d["kept"])
            assert d["mean_s_average"] == pytest.approx(kept_mean, abs=1e-4)
        assert d["tuned"] == (not d["notes"]) and (d["tuned"] == bool(d["tuning_wga"]))
        if d["tuned"]:
            assert d["C"] in settings["c_grid"]
        else:  # the smoke fallback
            assert d["C"] == settings["fallback_C"]
        assert set(run["sweep"]) == {f"{c:g}" for c in settings["c_grid"]}
        sparsity = [run["sweep"][f"{c:g}"]["prune_h_refits"] for c in settings["c_grid"]]
        assert sparsity[-1] >= sparsity[0] - 1e-9, "the smallest C (strongest L1) is not denser than the largest"
        e = run["edit"]
        if e["applied"]:
            assert e["val_wga_after"] > e["val_wga_before"] and 0 <= e["neuron"] < run["d"]
        else:
            assert e["wga"] == b["wga"] and e["groups"] == b["groups"]


@pytest.mark.notebook
def test_04_figures_and_claims(smoke_run):
    recorded(smoke_run, NAME)
    out = smoke_run[0]
    for fig in ("04_fig5_sscore_kept", "04_kept_vs_zeroed", "04_explorer_default"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    claims = json.loads((out / "claims.json").read_text())["claims"]
    rows = {c["id"]: c for c in claims if c["notebook"] == NAME}
    assert set(rows) == {"entanglement.dfr_cnn", "entanglement.dfr_vit"}
    for row in rows.values():
        assert row["holds"] in (True, False, None) and "WGA" in row["ours"] and "Prune_h" in row["ours"]
        assert {e["unit"] for e in row["effects"]} == {"ΔWGA", "Prune_h", "|Δ mean s|"}
