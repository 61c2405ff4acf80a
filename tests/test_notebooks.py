"""Every notebook: stored clean with one parameters cell; the runner's smoke run writes the claims report and index.

What each notebook records is checked in ``tests/sections/<name>/test_notebook.py``.
"""
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


@pytest.mark.notebook
def test_runner_writes_claims_and_index(smoke_run):
    out, results = smoke_run
    claims = json.loads((out / "claims.json").read_text())["claims"]
    assert claims and all({"claim", "paper", "ours", "holds"} <= set(c) for c in claims)
    ran = {name for name, r in results.items() if r.ok}
    for c in claims:
        if c["notebook"] in ran:
            assert c["ours"] != "not run"
    md = (out / "claims.md").read_text()
    assert "| claim | paper | ours | effect | 95 % interval | paper's value | verdict | margin | seeds | profile |" in md
    assert "figures/claims_forest.png" in md and (out / "figures" / "claims_forest.png").is_file()
    for c in claims:  # every evaluated row states its effect (unit, interval, paper's value) and seeds (issue 24)
        if c["notebook"] in ran and c.get("effect"):
            assert {"unit", "value", "low", "high", "paper", "n_seeds"} <= set(c["effect"])
            # a deciding effect no seed could measure (smoke: no neuron above τ, nothing to prune) says so
            assert c["seeds"] >= 1 or (c["effect"]["value"] is None and c["verdict"] == "undecided (not measured)"), c
    index = (out / "index.html").read_text()
    for name in results:
        assert name in index
    assert all(r.seconds < TIMEOUTS["smoke"] for r in results.values())


def test_only_selects_by_number_and_rejects_unknown():
    assert [p.stem for p in select_notebooks("01")] == ["01_groups"]
    with pytest.raises(ValueError, match="names no notebook"):
        select_notebooks("99")
