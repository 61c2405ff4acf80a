"""The command line: the installed console script, and `run`'s notebook parameters checked before any notebook runs.

The runs use tiny notebooks written here (a cell tagged ``parameters`` and a cell that records every parameter it
received in ``OUTPUT_DIR/<stem>.json``), executed by the real runner (papermill, the venv's python3 kernel).
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.cli import _resolve_type

from shortcut_nb.report.cli import main, parameter_value
from shortcut_nb.report.runner import ParameterError, plan_parameters, run_all, select_notebooks

RECORD = """import json, pathlib
received = {k: v for k, v in dict(globals()).items() if k.isupper()}
pathlib.Path(OUTPUT_DIR, "{stem}.json").write_text(json.dumps(received))
"""
# Two notebooks: a name only one of them declares must reach that one only.
PARAMETER_CELLS = {
    "01_alpha": 'PROFILE = "cpu"\nOUTPUT_DIR = "out"\nDATA_FOLDERS = {}\nMODEL = None\nCHECKPOINT = None\n'
                "IMAGE_SIZE = None\nDRY_RUN = False\n",
    "03_beta": 'PROFILE = "cpu"\nOUTPUT_DIR = "out"\nMODEL = None\nTAU = 0.7\nWEIGHTS = None  # a list\n'
               "OPTIONS: dict = {}\nDRY_RUN = False\n",
}


def write_notebook(folder: Path, stem: str, parameters_cell: str) -> Path:
    """A notebook with a ``parameters`` cell and a cell recording what it received in OUTPUT_DIR/<stem>.json."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(parameters_cell, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(RECORD.replace("{stem}", stem))]
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def books(tmp_path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem, cell in PARAMETER_CELLS.items():
        write_notebook(folder, stem, cell)
    return folder


@pytest.fixture()
def dataset(tmp_path) -> Path:
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "metadata.csv").write_text("img_filename,y,place,split\n")
    return folder


def received(out: Path, stem: str) -> dict:
    return json.loads((out / f"{stem}.json").read_text())


def run_error(argv: list[str], capsys) -> str:
    """Run the CLI expecting a usage error: assert exit 2, return stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_console_script_from_package_metadata_prints_usage(monkeypatch, capsys):
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "shortcut-nb"]
    script = entry.load()  # as pip's launcher: import the module, take the attribute, sys.exit(script())
    monkeypatch.setattr(sys, "argv", ["shortcut-nb", "--help"])
    with pytest.raises(SystemExit) as exit_:
        sys.exit(script())
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and all(command in out for command in ("run", "check-data", "sweep"))


@pytest.mark.parametrize("text", ["3", "-2", "0.5", "1e3", "True", "False", "None", "resnet18", "true", "yes", "a b"])
def test_p_values_convert_as_papermill_does(text):
    assert parameter_value("X", text) == _resolve_type(text)
    assert type(parameter_value("X", text)) is type(_resolve_type(text))


def test_p_values_starting_with_bracket_or_brace_are_yaml():
    assert parameter_value("W", "[0.5, 0.0]") == [0.5, 0.0]
    assert parameter_value("O", '{"a": 1, "b": [2020-01-01]}') == {"a": 1, "b": ["2020-01-01"]}  # dates stay text
    with pytest.raises(ParameterError, match=r"-p W '\[0.5,': .*not valid YAML/JSON"):
        parameter_value("W", "[0.5,")


@pytest.mark.notebook
def test_run_passes_each_notebook_the_parameters_it_declares(books, dataset, tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)  # relative paths are made absolute (notebooks run in their own folder)
    out = tmp_path / "out"
    status = main(["run", "--profile", "smoke", "--notebooks", str(books), "--out", str(out),
                   "--data", "mydata=mydata", "--model", "resnet18", "--checkpoint", "model.pt", "--image-size", "64",
                   "-p", "TAU", "0.5", "-p", "WEIGHTS", "[0.5, 0.0]", "-y", "{OPTIONS: {a: 1}}"])
    assert status == 0
    common = {"PROFILE": "smoke"}
    for name in ("01_alpha", "03_beta"):  # each executes into a fresh folder inside --out, published on success
        assert Path(received(out, name).pop("OUTPUT_DIR")).parent == out.resolve()
    assert {k: v for k, v in received(out, "01_alpha").items() if k != "OUTPUT_DIR"} == {**common, "DATA_FOLDERS": {"mydata": str(dataset.resolve())},
                                         "MODEL": "resnet18", "CHECKPOINT": str(checkpoint.resolve()),
                                         "IMAGE_SIZE": 64, "DRY_RUN": False}
    assert {k: v for k, v in received(out, "03_beta").items() if k != "OUTPUT_DIR"} == {**common, "MODEL": "resnet18", "TAU": 0.5, "WEIGHTS": [0.5, 0.0],
                                        "OPTIONS": {"a": 1}, "DRY_RUN": False}
    log = capsys.readouterr().out
    assert log.count("[shortcut_nb] parameters:") == 1
    assert "03_beta: MODEL='resnet18', TAU=0.5, WEIGHTS=[0.5, 0.0], OPTIONS={'a': 1}\n" in log  # cell's order
    assert f"01_alpha: DATA_FOLDERS={{'mydata': '{dataset.resolve()}'}}, MODEL='resnet18'" in log
    assert json.loads((out / "runs.json").read_text())["parameters"]["03_beta"]["TAU"] == 0.5


@pytest.mark.notebook
def test_run_all_keeps_dry_run_and_filters_by_the_selected_notebooks(books, tmp_path):
    out = tmp_path / "out"
    results = run_all(profile="smoke", out=out, only="03", notebooks=books, dry_run=True,
                      parameters={"TAU": 0.25})
    assert [(r.name, r.ok) for r in results] == [("03_beta", True)]
    assert received(out, "03_beta")["TAU"] == 0.25 and received(out, "03_beta")["DRY_RUN"] is True
    assert not (out / "01_alpha.ipynb").exists()
    with pytest.raises(ParameterError, match="IMAGE_SIZE"):  # declared by 01 only, which is not selected
        plan_parameters(select_notebooks("03", books), {"IMAGE_SIZE": 32})


def test_a_misspelt_parameter_stops_the_run_before_any_notebook(books, tmp_path, capsys):
    out = tmp_path / "out"
    err = run_error(["run", "--profile", "smoke", "--notebooks", str(books), "--out", str(out),
                     "-p", "TAU", "0.5", "-p", "DATA_FOLDER", "{x: /data}"], capsys)
    assert "unknown notebook parameter(s): DATA_FOLDER (did you mean DATA_FOLDERS?)" in err
    assert "01_alpha: PROFILE, OUTPUT_DIR, DATA_FOLDERS, MODEL, CHECKPOINT, IMAGE_SIZE, DRY_RUN" in err
    assert "03_beta: PROFILE, OUTPUT_DIR, MODEL, TAU, WEIGHTS, OPTIONS, DRY_RUN" in err
    assert not out.exists()  # nothing ran: no executed notebook, no report


@pytest.mark.parametrize(("argv", "message"), [
    (["-p", "PROFILE", "paper"], "PROFILE is set by the runner: use --profile"),
    (["-y", "OUTPUT_DIR: /tmp/x"], "OUTPUT_DIR is set by the runner: use --out"),
    (["-p", "DRY_RUN", "True"], "DRY_RUN is set by the runner: use --dry-run"),
    (["-y", "[1, 2]"], "-y '[1, 2]': got a list, expected a mapping of parameters"),
    (["--model", "a", "-p", "MODEL", "b"], "MODEL is given by both --model and -p/-y"),
    (["--image-size", "big"], "argument --image-size: 'big': not an integer"),
    (["--image-size", "0"], "argument --image-size: '0': 0 is not a positive integer"),
    (["--model", "weights/missing.pth"], "argument --model: 'weights/missing.pth': "),
])
def test_bad_parameters_are_usage_errors(books, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    err = run_error(["run", "--notebooks", str(books), "--out", str(out), *argv], capsys)
    assert message in err
    assert not out.exists()


def test_data_and_checkpoint_must_exist(books, dataset, tmp_path, capsys):
    base = ["run", "--notebooks", str(books), "--out", str(tmp_path / "out")]
    err = run_error([*base, "--data", str(dataset)], capsys)
    assert f"argument --data: '{dataset}': expected NAME=PATH" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = run_error([*base, "--data", f"mydata={empty}"], capsys)
    assert f"argument --data: 'mydata={empty}': {empty} holds no metadata.csv (expected a dataset folder" in err
    err = run_error([*base, "--data", f"mydata={dataset}", "--data", f"mydata={dataset}"], capsys)
    assert "--data gives mydata more than once" in err
    err = run_error([*base, "--checkpoint", str(tmp_path / "nope.pt")], capsys)
    assert f"argument --checkpoint: '{tmp_path / 'nope.pt'}': {tmp_path / 'nope.pt'} is not a file" in err
    err = run_error([*base, "-y", f"DATA_FOLDERS: {{mydata: {empty}}}"], capsys)  # the same check without --data
    assert f"parameter DATA_FOLDERS: {empty} holds no metadata.csv" in err
    assert not (tmp_path / "out").exists()
