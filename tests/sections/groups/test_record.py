"""What notebook 01 records: the headline, Table 2 without per-seed lists, the per-seed runs, the sweep, the run log."""
from __future__ import annotations

import json

from support.groups_results import sweep, table2

from shortcut_nb.sections.groups import record


def test_payload_has_the_declared_keys_and_the_headline_model():
    t2, sw = table2(), sweep()
    rec = record.payload(t2, sw, profile="smoke", seconds=3.5, runs={"trained": 2, "loaded": 3},
                         weights="random (dry run)")
    assert tuple(rec) == record.KEYS and rec["weights"] == "random (dry run)"
    assert rec["headline"] == "waterbirds/cnn"  # the headline when present, not the first row
    head = t2["waterbirds/cnn"]
    assert [rec[k] for k in record.HEADLINE] == [head[k] for k in record.HEADLINE]
    assert rec["runs"] == {"trained": 2, "loaded": 3} and rec["profile"] == "smoke" and rec["seconds"] == 3.5
    row = rec["table2"]["isic/cnn"]
    assert list(row)[-5:] == ["model", "dataset", "arch", "group_names", "worst_group"] and "per_seed" not in row
    assert row["group_names"] == ["BwoP", "BwP", "MwoP", "MwP"]
    assert (row["model"], row["dataset"], row["arch"]) == ("cnn_mini", "isic", "cnn")
    assert rec["table2_per_seed"]["isic/cnn"] == list(t2["isic/cnn"].per_seed)
    assert list(rec["sweep"]) == ["0.5", "0.05", "0"] and rec["sweep"]["0"]["ratio"] == 0.0
    assert rec["sweep"]["0.05"]["groups"] == [0.99, 0.7, 0.5, 0.95]
    assert json.loads(json.dumps(rec)) == rec  # JSON as it stands


def test_payload_falls_back_to_the_first_model_and_omits_no_run_log():
    t2 = {"isic/cnn": table2()["isic/cnn"]}
    rec = record.payload(t2, {}, profile="cpu", seconds=1.0)
    assert rec["headline"] == "isic/cnn" and rec["wga"] == 0.4 and rec["sweep"] == {}
    assert "runs" not in rec
