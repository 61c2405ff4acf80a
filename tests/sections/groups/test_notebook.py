"""Notebook 01 (groups: Tables 2-3), run headlessly in the smoke profile, checked on what it recorded."""
from __future__ import annotations

import pytest
from support.notebook_runs import recorded, unit

from shortcut_nb.sections.groups.record import KEYS

NAME = "01_groups"


@pytest.mark.notebook
def test_01_groups_records_group_metrics(smoke_run):
    rec = recorded(smoke_run, NAME)
    assert rec["profile"] == "smoke"
    assert set(KEYS) <= set(rec)
    for key in ("avg", "wga", "gap", "groups"):
        assert key in rec
    assert unit(rec["avg"]) and unit(rec["wga"]) and rec["wga"] <= rec["avg"] + 1e-9
    assert len(rec["groups"]) == 4 and all(unit(v) for v in rec["groups"])
    assert abs(rec["gap"] - (rec["avg"] - rec["wga"])) < 1e-9
    assert set(rec["table2"]) == {"waterbirds/cnn", "waterbirds/vit", "isic/cnn", "isic/vit"}
    assert len(rec["sweep"]) >= 2
    for row in rec["table2"].values():
        assert row["wga"] <= row["avg"] + 1e-9 and row["wga"] == pytest.approx(min(row["groups"]), abs=0.5)
    for fig in ("01_groups", "01_seed_spread"):
        assert (smoke_run[0] / "figures" / f"{fig}.png").stat().st_size > 1000
    n_seeds = rec["table2"]["waterbirds/cnn"]["n_seeds"]
    assert set(rec["runs"]) == {"trained", "loaded"}
    assert sum(rec["runs"].values()) == n_seeds * (len(rec["table2"]) + len(rec["sweep"]))  # one per run asked for
