"""Every claim, on a hand-made record of its notebook with three seeds, reports an effect with its unit, its 95 %
interval over seeds and the paper's value (or none), and each notebook's record carries its per-seed table."""
from __future__ import annotations

import importlib
import json

import pytest
from support.subnetwork_records import prusc_entry, removal_entry

from shortcut_nb.report.claims import evaluate_claims, load_claims
from shortcut_nb.sections.cnn_neurons.record import REFIT_SET, ROWS
from shortcut_nb.sections.subnetworks import record as subnetworks_record

JITTER = (-0.01, 0.0, 0.01)


def _metric(value):
    return {"value": value, "low": value - 0.1, "high": value + 0.1}


def _detectors(auroc=0.8):
    table = {k: {"auroc": _metric(auroc), "spearman": _metric(0.4)} for k in ("sscore", "group_gap", "spuriosity")}
    per_seed = [{"seed": i, "table": {k: {"auroc": _metric(auroc + d)} for k in table}} for i, d in enumerate(JITTER)]
    return {"isic": {"available": True, "n_seeds": 3, "n_spurious": 8, "n_neurons": 64, "n_pairs": 32, "table": table,
                     "seeds": {k: {"auroc": _metric(auroc)} for k in table}, "per_seed": per_seed}}


def _groups():
    sweep = {"0.5": [0.97, 0.96, 0.9, 0.92], "0.25": [0.98, 0.9, 0.8, 0.93], "0.05": [0.99, 0.7, 0.5, 0.95],
             "0": [0.99, 0.3, 0.2, 0.96]}
    row = {"arch": "cnn", "dataset": "waterbirds", "avg": 0.85, "wga": 0.5}
    return {"table2": {"waterbirds/cnn": row},
            "table2_per_seed": {"waterbirds/cnn": [{**row, "wga": 0.5 + d} for d in JITTER]},
            "sweep": {k: {"ratio": float(k), "groups": g} for k, g in sweep.items()},
            "sweep_per_seed": {k: [{"groups": [a + d for a in g]} for d in JITTER] for k, g in sweep.items()}}


def _latent():
    att = {"purity": 0.8, "baseline": 0.5, "lift": 0.3, "p_value": 0.01}
    return {"k": 5, "neighbourhoods": {"waterbirds/cnn/train": {"split": "train", "attribute": att}},
            "neighbourhoods_per_seed": {"waterbirds/cnn/train": [{"seed": i, **att, "lift": 0.3 + d}
                                                                 for i, d in enumerate(JITTER)]}}


def _neurons():
    base = {"min": 0.0, "max": 0.85, "area": 0.05, "lift_max": 16.0, "n_high": 5, "n_high_above_chance": 5,
            "pruned_neurons": [1, 2, 3], "tau": 0.7, "table4": {r: {"wga": w} for r, w in zip(ROWS, (0.3, 0.4, 0.6, 0.7))}}
    seeds = [{"seed": i, "min": 0.0, "max": 0.85 + d, "n_high": 3, "n_pruned": 3,
              "wga": dict(zip(ROWS, (0.3, 0.4 + d, 0.6, 0.7)))} for i, d in enumerate(JITTER)]
    return {"alpha": 0.5, "band_edges": [0.2, 0.7], "refit_set": REFIT_SET, "datasets": {"isic": base},
            "per_seed": {"isic": seeds}, "detectors": _detectors()}


def _entanglement():
    def row(d=0.0):
        return {"arch": "cnn", "dataset": "isic", "baseline": {"wga": 0.3, "mean_s": 0.4},
                "dfr": {"wga": 0.7 + d, "prune_h_refits": 0.8, "prune_h_average": 0.5, "mean_s_refits": 0.39 + d}}

    vit = {**row(), "arch": "vit"}
    return {"table": {"isic/cnn": row(), "isic/vit": vit},
            "per_seed": {"isic/cnn": [row(d) for d in JITTER], "isic/vit": [{**row(d), "arch": "vit"} for d in JITTER]}}


def _subnetworks():
    rec = subnetworks_record.payload(prusc_entry(), {"isic": removal_entry()}, profile="cpu", seconds=1.0)
    rec["per_seed"] = [{"seed": i, "wga_before": 0.3, "wga_after": 0.6 + d, "mean_s_before": 0.4,
                        "mean_s_after": 0.2 + d,
                        "removal": {"isic": {"full": [0.9, 0.99, 0.6, 0.4],
                                             "subnetworks": {"g0@0.80": {"removed_group": 0,
                                                                         "groups": [0.2 + d, 0.99, 0.62, 0.41]}}}}}
                       for i, d in enumerate(JITTER)]
    return rec


def _vit_heads():
    return {"sscore": {"isic": {"area": 0.05, "vit": {"mean": 0.2}, "cnn": {"mean": 0.4}}},
            "sscore_per_seed": {"isic": [{"seed": i, "area": 0.05, "vit": 0.2 + d, "cnn": 0.4} for i, d in
                                         enumerate(JITTER)]},
            "attention": {"isic": {"layers": 4, "heads": 4, "core": {"n_images": 8, "heads_beyond_area": [[2, 1]],
                                                                      "max_lift": 1.6, "area": 0.05, "lift_min": 1.2}}},
            "detectors": _detectors()}


RECORDS = {"01_groups": _groups, "02_latent_space": _latent, "03_cnn_neurons": _neurons,
           "04_entanglement": _entanglement, "05_subnetworks": _subnetworks, "06_vit_heads": _vit_heads}


def test_every_claim_reports_an_effect_with_unit_interval_and_paper_value(tmp_path):
    for name, make in RECORDS.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"profile": "cpu", **make()}))
    rows = evaluate_claims(tmp_path)
    assert {r["id"] for r in rows} == {c.id for c in load_claims()}
    for r in rows:
        e = r.get("effect")
        assert e is not None, f"{r['id']}: {r['ours']}"
        assert e["unit"] and e["name"] and "paper" in e and e["threshold"] is not None, r["id"]
        assert e["value"] is not None and e["low"] is not None and e["high"] is not None, r["id"]
        assert e["low"] <= e["value"] <= e["high"], r["id"]
        assert r["verdict"] in ("holds", "fails", "undecided"), r["id"]
        if r["id"] != "vit_heads.heads":  # a count of tested heads: the per-head test is its interval
            assert e["interval"] == "t over 3 seeds" and r["seeds"] == 3, r["id"]
        assert all({"name", "unit", "value", "low", "high", "paper"} <= set(x) for x in r["effects"])
    by_id = {r["id"]: r for r in rows}
    zeroing = next(x for x in by_id["neurons.prune_refit"]["effects"] if x["name"].startswith("ΔWGA after zeroing"))
    assert zeroing["paper"] == pytest.approx(0.40 - 0.37) and zeroing["unit"] == "ΔWGA"  # Table 4
    assert by_id["detectors.sscore"]["effect"]["paper"] is None  # not in the paper: no paper value


@pytest.mark.parametrize("module, key", [
    ("shortcut_nb.sections.groups.record", "table2_per_seed"),
    ("shortcut_nb.sections.groups.record", "sweep_per_seed"),
    ("shortcut_nb.sections.latent_space.record", "neighbourhoods_per_seed"),
    ("shortcut_nb.sections.cnn_neurons.record", "per_seed"),
    ("shortcut_nb.sections.entanglement.record", "per_seed"),
    ("shortcut_nb.sections.subnetworks.record", "per_seed"),
    ("shortcut_nb.sections.vit_heads.record", "sscore_per_seed"),
])
def test_every_notebooks_record_declares_its_per_seed_table(module, key):
    assert key in importlib.import_module(module).KEYS
