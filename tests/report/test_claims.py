"""The claims report: verdicts follow the recorded numbers; missing notebooks show as not run."""
from __future__ import annotations

import json

import pytest

from shortcut_nb.report.claims import evaluate_claims, write_claims_report
from shortcut_nb.report.html import write_index


def _record(tmp_path, table2, sweep):
    (tmp_path / "01_groups.json").write_text(json.dumps({"profile": "cpu", "table2": table2, "sweep": sweep}))


GOOD_SWEEP = {
    "0.5": {"ratio": 0.5, "groups": [0.97, 0.96, 0.9, 0.92]},
    "0.25": {"ratio": 0.25, "groups": [0.98, 0.9, 0.8, 0.93]},
    "0.05": {"ratio": 0.05, "groups": [0.99, 0.7, 0.5, 0.95]},
    "0": {"ratio": 0.0, "groups": [0.99, 0.3, 0.2, 0.96]},
}


def test_claims_hold_and_fail_with_the_numbers(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.5}}, GOOD_SWEEP)
    rows = {r["id"]: r for r in evaluate_claims(tmp_path)}
    assert rows["groups.gap"]["holds"] is True and rows["groups.sweep"]["holds"] is True
    rising = {k: dict(v) for k, v in GOOD_SWEEP.items()}
    rising["0"] = {"ratio": 0.0, "groups": [0.99, 0.9, 0.9, 0.96]}  # minority accuracy rises at 0 %
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.8}}, rising)
    rows = {r["id"]: r for r in evaluate_claims(tmp_path)}
    assert rows["groups.gap"]["holds"] is False and rows["groups.sweep"]["holds"] is False


def test_report_files_are_well_formed(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.5}}, GOOD_SWEEP)
    json_path, md_path = write_claims_report(tmp_path)
    rows = json.loads(json_path.read_text())["claims"]
    assert all({"claim", "paper", "ours", "holds"} <= set(r) for r in rows)
    assert md_path.read_text().count("\n|") >= len(rows) + 1
    not_run = [r for r in rows if r["notebook"] != "01_groups"]
    assert all(r["ours"] == "not run" and r["holds"] is None for r in not_run)


def test_rows_say_how_many_seeds_decided_them(tmp_path):
    """A row decided on one run says 1; a row decided on each of three seeds says 3, in the JSON and the table."""
    per_seed = {"waterbirds/cnn": [{"avg": 0.85, "wga": 0.5}, {"avg": 0.86, "wga": 0.4}, {"avg": 0.8, "wga": 0.6}]}
    (tmp_path / "01_groups.json").write_text(json.dumps({"profile": "cpu", "table2": {"waterbirds/cnn": {
        "avg": 0.84, "wga": 0.5}}, "table2_per_seed": per_seed, "sweep": GOOD_SWEEP}))
    json_path, md_path = write_claims_report(tmp_path)
    rows = {r["id"]: r for r in json.loads(json_path.read_text())["claims"]}
    assert rows["groups.gap"]["seeds"] == 3 and rows["groups.sweep"]["seeds"] == 1
    assert "seeds" not in rows["neurons.spread"]  # not run: no seeds to count
    line = next(l for l in md_path.read_text().splitlines() if l.startswith(f"| {rows['groups.gap']['claim']} |"))
    assert line.endswith("| 3 | cpu |")


def test_the_index_shows_each_rows_verdict_margin_and_seeds(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.5}}, GOOD_SWEEP)
    json_path, _ = write_claims_report(tmp_path)
    gap = next(r for r in json.loads(json_path.read_text())["claims"] if r["id"] == "groups.gap")
    index = write_index(tmp_path, results=[], profile="cpu").read_text()
    assert f"<td>yes</td><td>{gap['margin']:+.3f}</td><td>1</td>" in index
    assert "<td>—</td><td></td><td></td>" in index  # a notebook that did not run


def test_an_undecided_claim_is_recorded_with_holds_null(tmp_path):
    """A detector claim whose interval covers 0.5 (issue 29): verdict 'undecided', holds None, in JSON and table."""
    auroc = {"value": 0.55, "low": 0.45, "high": 0.65}
    entry = {"available": True, "n_seeds": 1, "n_spurious": 5, "n_neurons": 16, "n_pairs": 8,
             "table": {k: {"auroc": auroc} for k in ("sscore", "group_gap", "spuriosity")}}
    (tmp_path / "03_cnn_neurons.json").write_text(json.dumps({"profile": "smoke", "detectors": {"isic": entry}}))
    json_path, md_path = write_claims_report(tmp_path)
    rows = {r["id"]: r for r in json.loads(json_path.read_text())["claims"]}
    row = rows["detectors.sscore"]
    assert row["holds"] is None and row["verdict"] == "undecided" and row["margin"] == pytest.approx(-0.05)
    assert row["paper"].startswith("not in the paper")
    assert "| undecided | -0.050 | 1 | smoke |" in md_path.read_text()


def test_a_dataset_without_masks_is_measured_by_its_mask_free_ranking(tmp_path):
    rec = {"profile": "smoke", "inputs": {"user_run": True}, "datasets": {},
           "mask_free": {"bare": {"model": "resnet18", "top": {"group_gap": [3, 1, 4, 1, 5, 9], "spuriosity": [2, 7]},
                                  "agreement": 0.42}}}
    (tmp_path / "03_cnn_neurons.json").write_text(json.dumps(rec))
    _, md_path = write_claims_report(tmp_path)
    assert ("| 03_cnn_neurons | bare (resnet18): no masks, neurons ranked by the mask-free detectors | top by group gap "
            "n3, n1, n4, n1, n5; by spuriosity n2, n7 (the rankings agree at Spearman 0.42) |") in md_path.read_text()
