"""Notebook parameters: a name the parameters cell does not declare stops a run, by the runner or plain papermill;
the parameters as applied (defaults included) are what a notebook records."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from shortcut_nb import report

CELL = ('PROFILE = "cpu"\nOUTPUT_DIR = "out"\nDATA_FOLDERS = {}  # by name\nTAU = 0.7\nSEEDS = None\n'
        "SIZE = 2 * 32\n")
RECORDS = ("from shortcut_nb import report\n"
           "parameters = report.applied_parameters()\n"
           "report.record('01_stub', {'tau': TAU}, OUTPUT_DIR)\n")


def stub_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(CELL, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(RECORDS)]
    path = folder / "01_stub.ipynb"
    nbformat.write(nb, path)
    return path


def fake_shell(*cells: str, **namespace) -> SimpleNamespace:
    """What applied_parameters reads of an IPython shell: its parsed input history and its namespace."""
    return SimpleNamespace(history_manager=SimpleNamespace(input_hist_parsed=["", *cells]), user_ns=namespace)


def test_check_parameters_returns_every_parameter_as_applied(tmp_path):
    book = stub_notebook(tmp_path)
    applied = report.check_parameters(book, {"TAU": 0.5})
    assert applied == {"PROFILE": "cpu", "OUTPUT_DIR": "out", "DATA_FOLDERS": {}, "TAU": 0.5, "SEEDS": None,
                       "SIZE": "2 * 32"}  # a default that is not a literal: its source text


def test_check_parameters_refuses_a_misspelt_name(tmp_path):
    book = stub_notebook(tmp_path)
    with pytest.raises(report.ParameterError) as err:
        report.check_parameters(book, {"DATA_FOLDER": {"x": "/data"}, "TAU": 0.5})
    assert "DATA_FOLDER (did you mean DATA_FOLDERS?)" in str(err.value)
    assert "01_stub: PROFILE, OUTPUT_DIR, DATA_FOLDERS, TAU, SEEDS, SIZE" in str(err.value)


def test_applied_parameters_in_a_kernel_reads_the_parameters_and_injected_cells():
    injected = '# Parameters\nPROFILE = "smoke"\nTAU = 0.25\n'
    shell = fake_shell("import os", CELL, injected, "x = 1", PROFILE="smoke", OUTPUT_DIR="out", DATA_FOLDERS={},
                       TAU=0.25, SEEDS=None, SIZE=64, os=object())
    assert report.applied_parameters(shell) == {"PROFILE": "smoke", "OUTPUT_DIR": "out", "DATA_FOLDERS": {},
                                                "TAU": 0.25, "SEEDS": None, "SIZE": 64}


def test_applied_parameters_stops_a_notebook_papermill_gave_an_undeclared_name():
    injected = '# Parameters\nPROFILE = "smoke"\nDATA_FOLDER = {"x": "/data"}\n'
    with pytest.raises(report.ParameterError) as err:
        report.applied_parameters(fake_shell(CELL, injected, "started = 0", PROFILE="smoke", DATA_FOLDER={}))
    assert "DATA_FOLDER (did you mean DATA_FOLDERS?)" in str(err.value)
    assert "papermill passed, but this notebook does not declare it" in str(err.value)


def test_applied_parameters_outside_a_notebook_or_without_a_parameters_cell_is_empty():
    assert report.applied_parameters() == {}  # no IPython shell under pytest
    assert report.applied_parameters(fake_shell("x = 1", "# Parameters\nY = 2\n", Y=2)) == {}


@pytest.mark.notebook
def test_plain_papermill_with_a_misspelt_parameter_fails_and_a_right_one_is_recorded(tmp_path):
    """The real path of a papermill user: `papermill -p`, a kernel, the notebook's first cell."""
    book = stub_notebook(tmp_path)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "papermill", str(book), str(tmp_path / "executed.ipynb"), "--kernel", "python3",
            "-p", "OUTPUT_DIR", str(out)]
    bad = subprocess.run([*base, "-p", "DATA_FOLDER", "mine"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "DATA_FOLDER (did you mean DATA_FOLDERS?)" in bad.stderr + bad.stdout
    assert not (out / "01_stub.json").exists()  # it stopped before recording anything
    good = subprocess.run([*base, "-p", "TAU", "0.5"], capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    applied = json.loads((out / "01_stub.json").read_text())["provenance"]["parameters"]
    assert applied == {"PROFILE": "cpu", "OUTPUT_DIR": str(out), "DATA_FOLDERS": {}, "TAU": 0.5, "SEEDS": None,
                       "SIZE": 64}
