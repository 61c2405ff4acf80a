"""Notebook 05 (subnetworks), run headlessly in the smoke profile, checked on what it recorded."""
from __future__ import annotations

import json

import pytest
from support.notebook_runs import recorded, unit

NAME = "05_subnetworks"


@pytest.mark.notebook
def test_05_records_fig6_numbers(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["profile"] == "smoke" and rec["seconds"] > 0
    for key in ("wga_before", "wga_after", "avg_before", "avg_after", "mean_s_before", "mean_s_after",
                "mean_s_used_before", "mean_s_used_after", "prune_h", "prune_f"):
        assert key in rec
    for key in ("wga_before", "wga_after", "avg_before", "avg_after", "mean_s_before", "mean_s_after",
                "prune_h", "prune_f"):
        assert unit(rec[key]), (key, rec[key])
    p = rec["prusc"]
    assert rec["wga_before"] == min(p["baseline"]["groups"]) and rec["wga_after"] == min(p["prusc"]["groups"])
    assert rec["wga_before"] <= rec["avg_before"] + 1e-9 and rec["wga_after"] <= rec["avg_after"] + 1e-9
    # the Fig. 6 mask keeps PruSC's 52 % (Prune_f 48 %), within a row of the target
    assert rec["prune_f"] == pytest.approx(1 - p["mask"]["keep_target"], abs=0.02)
    assert p["recipe"]["objective"] == "prusc" and p["recipe"]["data_split"] == "val"
    for side in ("baseline", "prusc"):
        s = p[side]["sscore"]
        assert len(s["scores"]) == s["d"] and all(unit(v) for v in s["scores"])
        assert s["mean"] == pytest.approx(sum(s["scores"]) / s["d"], abs=1e-5)
        assert 0 < s["area"] < 1
    assert p["baseline"]["sscore"]["n_used"] == p["baseline"]["sscore"]["d"]  # the dense head uses every neuron


@pytest.mark.notebook
def test_05_records_fig7_grid_and_timings(smoke_run):
    rec = recorded(smoke_run, NAME)
    isic = rec["removal"]["isic"]
    assert isic["group_names"] == ["BwoP", "BwP", "MwoP", "MwP"]
    assert {"g0@0.80", "g1@0.80"} <= set(isic["subnetworks"])
    assert len({e["keep_target"] for e in isic["subnetworks"].values()}) >= 2, "the widget has a grid to switch"
    # the same model on the same test set as Fig. 6
    assert isic["full"]["groups"] == rec["prusc"]["baseline"]["groups"]
    for key, e in isic["subnetworks"].items():
        assert e["keep_fraction"] == pytest.approx(e["keep_target"], abs=0.02), key
        assert len(e["summary"]["groups"]) == 4 and all(unit(a) for a in e["summary"]["groups"])
        assert all(0 < v <= 1 for v in e["per_layer_keep"].values()), "no layer entirely pruned"
    assert "waterbirds" in rec["removal"]
    assert all(t > 0 for t in rec["mask_seconds"].values())
    assert set(rec["mask_seconds"]) == set(rec["mask_steps"])
    # the run log: three model runs (Fig. 6, Fig. 7 on two datasets) and one mask run per recorded mask
    assert set(rec["runs"]) == {"trained", "loaded"}
    assert rec["runs"]["trained"] + rec["runs"]["loaded"] == 3 + len(rec["mask_steps"])
    for fig in ("05_fig6_prusc", "05_fig7_group_removal", "05_subnetwork_view"):
        assert (smoke_run[0] / "figures" / f"{fig}.png").stat().st_size > 1000


@pytest.mark.notebook
def test_05_claims_rows_are_evaluated(smoke_run):
    rec = recorded(smoke_run, NAME)
    claims = json.loads((smoke_run[0] / "claims.json").read_text())["claims"]
    rows = {c["id"]: c for c in claims if c["notebook"] == NAME}
    assert set(rows) == {"components.prusc", "components.removal"}
    for row in rows.values():
        assert row["ours"] not in ("not run",) and not row["ours"].startswith("not recorded")
        assert row["holds"] in (True, False, None) and row["effect"]["unit"]
    # the per-seed table (issue 24): smoke trains one seed, its entry is the headline's numbers
    (entry,) = rec["per_seed"]
    assert entry["seed"] == 0 and entry["wga_before"] == rec["wga_before"] and entry["wga_after"] == rec["wga_after"]
