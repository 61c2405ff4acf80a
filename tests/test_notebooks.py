"""Every notebook, run headlessly through the runner in the smoke profile, and checked on what it recorded."""
from __future__ import annotations

import json

import nbformat
import pytest

from shortcut_nb.report.runner import TIMEOUTS, notebooks_dir, select_notebooks

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean_with_parameters(name):
    nb = nbformat.read(notebooks_dir() / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{name} carries outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    assert "PROFILE = " in params[0].source and "OUTPUT_DIR = " in params[0].source
    assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in c.source.splitlines()), \
        f"{name} defines functions: logic belongs in the package"
    assert not any("sys.path" in c.source or "autoreload" in c.source for c in code)


from support.notebook_runs import recorded as _recorded, unit as _unit  # noqa: E402


@pytest.mark.notebook
def test_01_groups_records_group_metrics(smoke_run):
    rec = _recorded(smoke_run, "01_groups")
    assert rec["profile"] == "smoke"
    for key in ("avg", "wga", "gap", "groups"):
        assert key in rec
    assert _unit(rec["avg"]) and _unit(rec["wga"]) and rec["wga"] <= rec["avg"] + 1e-9
    assert len(rec["groups"]) == 4 and all(_unit(v) for v in rec["groups"])
    assert abs(rec["gap"] - (rec["avg"] - rec["wga"])) < 1e-9
    assert set(rec["table2"]) == {"waterbirds/cnn", "waterbirds/vit", "isic/cnn", "isic/vit"}
    assert len(rec["sweep"]) >= 2
    for row in rec["table2"].values():
        assert row["wga"] <= row["avg"] + 1e-9 and row["wga"] == pytest.approx(min(row["groups"]), abs=0.5)
    assert (smoke_run[0] / "figures" / "01_groups.png").stat().st_size > 1000


@pytest.mark.notebook
def test_runner_writes_claims_and_index(smoke_run):
    out, results = smoke_run
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert claims and all({"claim", "paper", "ours", "holds"} <= set(c) for c in claims)
    ran = {name for name, r in results.items() if r.ok}
    for c in claims:
        if c["notebook"] in ran:
            assert c["ours"] != "not run"
    assert "| claim | paper | ours | holds |" in (out / "claims.md").read_text()
    index = (out / "index.html").read_text()
    for name in results:
        assert name in index
    assert all(r.seconds < TIMEOUTS["smoke"] for r in results.values())


def test_only_selects_by_number_and_rejects_unknown():
    assert [p.stem for p in select_notebooks("01")] == ["01_groups"]
    with pytest.raises(ValueError, match="names no notebook"):
        select_notebooks("99")
