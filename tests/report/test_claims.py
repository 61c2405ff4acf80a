"""The claims report: verdicts follow the recorded numbers; missing notebooks show as not run."""
from __future__ import annotations

import json

import pytest

from shortcut_nb.report.claims import evaluate_claims, write_claims_report
from shortcut_nb.report.html import write_index


def _jitter(row, d):
    """A seed's copy of a hand-made row: WGA and the group accuracies moved by ``d`` (AVG kept: GAP moves too)."""
    out = dict(row)
    if "wga" in out:
        out["wga"] = out["wga"] + d
    if "groups" in out:
        out["groups"] = [g + d for g in out["groups"]]
    return out


def _record(tmp_path, table2, sweep, jitter=(-0.01, 0.0, 0.01)):
    """Notebook 01's record with one seed per ``jitter`` (the seeds' rows spread around the mean)."""
    (tmp_path / "01_groups.json").write_text(json.dumps({
        "profile": "cpu", "table2": table2, "sweep": sweep,
        "table2_per_seed": {k: [_jitter(r, d) for d in jitter] for k, r in table2.items()},
        "sweep_per_seed": {k: [_jitter(r, d) for d in jitter] for k, r in sweep.items()}}))


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
    assert rows["groups.gap"]["verdict"] == "fails" and rows["groups.gap"]["effect"]["unit"] == "accuracy"


def test_a_row_whose_interval_covers_its_threshold_is_undecided(tmp_path):
    """GAP 0.12 on the mean (0.02 above the 0.10 of "well below"), but the three seeds spread ±0.05: the interval
    covers 0.10, so the row is undecided (holds null), not "holds" by a margin smaller than its noise."""
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.73}}, GOOD_SWEEP, jitter=(-0.05, 0.0, 0.05))
    rows = {r["id"]: r for r in evaluate_claims(tmp_path)}
    gap = rows["groups.gap"]
    assert gap["holds"] is None and gap["verdict"] == "undecided" and gap["seeds"] == 3
    e = gap["effect"]
    assert e["value"] == pytest.approx(0.12) and e["low"] < 0.10 < e["high"] and e["interval"] == "t over 3 seeds"
    assert gap["margin"] == pytest.approx(e["low"] - 0.10)


def test_one_seed_without_an_interval_is_undecided(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.5}}, GOOD_SWEEP, jitter=(0.0,))
    rows = {r["id"]: r for r in evaluate_claims(tmp_path)}
    assert rows["groups.sweep"]["verdict"] == "undecided (one seed, no interval)"
    assert rows["groups.sweep"]["holds"] is None and rows["groups.sweep"]["effect"]["low"] is None


def test_report_files_are_well_formed(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"arch": "cnn", "dataset": "waterbirds", "avg": 0.85, "wga": 0.5}},
            GOOD_SWEEP)
    json_path, md_path = write_claims_report(tmp_path)
    rows = json.loads(json_path.read_text())["claims"]
    assert all({"claim", "paper", "ours", "holds"} <= set(r) for r in rows)
    md = md_path.read_text()
    assert md.count("\n|") >= len(rows) + 1
    not_run = [r for r in rows if r["notebook"] != "01_groups"]
    assert all(r["ours"] == "not run" and r["holds"] is None for r in not_run)
    gap = next(r for r in rows if r["id"] == "groups.gap")
    # the paper's value of the same effect: ResNet-18 on Waterbirds, GAP 0.37 (Table 2)
    assert gap["effect"]["paper"] == pytest.approx(0.37) and gap["effect"]["n_seeds"] == 3
    line = next(l for l in md.splitlines() if l.startswith(f"| {gap['claim']} |"))
    e = gap["effect"]
    assert (f"| GAP (AVG − WGA), waterbirds/cnn: {e['value']:.2f} accuracy (needs > 0.10) | [{e['low']:.2f}, "
            f"{e['high']:.2f}] (t over 3 seeds) | 0.37 | holds |") in line
    assert (tmp_path / "figures" / "claims_forest.png").is_file() and "figures/claims_forest.png" in md


def test_rows_say_how_many_seeds_decided_them(tmp_path):
    """A row decided on one run says 1; a row decided on each of three seeds says 3, in the JSON and the table."""
    per_seed = {"waterbirds/cnn": [{"avg": 0.85, "wga": 0.5}, {"avg": 0.86, "wga": 0.4}, {"avg": 0.8, "wga": 0.6}]}
    (tmp_path / "01_groups.json").write_text(json.dumps({"profile": "cpu", "table2": {"waterbirds/cnn": {
        "avg": 0.84, "wga": 0.5}}, "table2_per_seed": per_seed, "sweep": GOOD_SWEEP}))  # the sweep: one run
    json_path, md_path = write_claims_report(tmp_path)
    rows = {r["id"]: r for r in json.loads(json_path.read_text())["claims"]}
    assert rows["groups.gap"]["seeds"] == 3 and rows["groups.sweep"]["seeds"] == 1
    assert "seeds" not in rows["neurons.spread"]  # not run: no seeds to count
    line = next(l for l in md_path.read_text().splitlines() if l.startswith(f"| {rows['groups.gap']['claim']} |"))
    assert line.endswith("| 3 | cpu |")


def test_the_index_shows_each_rows_effect_interval_verdict_margin_and_seeds(tmp_path):
    _record(tmp_path, {"waterbirds/cnn": {"avg": 0.85, "wga": 0.5}}, GOOD_SWEEP)
    json_path, _ = write_claims_report(tmp_path)
    gap = next(r for r in json.loads(json_path.read_text())["claims"] if r["id"] == "groups.gap")
    index = write_index(tmp_path, results=[], profile="cpu").read_text()
    e = gap["effect"]
    assert (f"<td>[{e['low']:.2f}, {e['high']:.2f}] (t over 3 seeds)</td><td>no paper value</td><td>holds</td>"
            f"<td>{gap['margin']:+.3f}</td><td>3</td>") in index
    assert "<td>—</td><td></td><td></td>" in index  # a notebook that did not run
    # the forest figure comes before the table
    assert index.index("figures/claims_forest.png") < index.index("<table>")


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
