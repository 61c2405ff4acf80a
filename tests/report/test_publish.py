"""The report never mixes runs: a notebook's outputs are replaced only by a successful run, a failed one keeps the
last good outputs in last_good/ and its claims show "not run", and a verdict of an earlier runner call says so."""
from __future__ import annotations

import errno
import json
from pathlib import Path

import nbformat
import pytest

from shortcut_nb.report import runner
from shortcut_nb.report.claims import evaluate_claims, verdict_text
from shortcut_nb.report.cli import main
from shortcut_nb.report.publish import LAST_GOOD, keep_last_good, publish, stage_folder
from shortcut_nb.report.runner import NotebookRun, error_tail, run_all


def outputs(stage: Path, stem: str, *, figures: tuple[str, ...], value: str) -> None:
    (stage / f"{stem}.ipynb").write_text(value)
    (stage / f"{stem}.json").write_text(json.dumps({"value": value}))
    (stage / "figures").mkdir(exist_ok=True)
    for name in figures:
        (stage / "figures" / name).write_text(value)


def test_a_success_replaces_the_outputs_and_a_failure_moves_the_last_good_ones_aside(tmp_path):
    out = tmp_path / "out"
    first = stage_folder(out, "01_groups")
    outputs(first, "01_groups", figures=("01_groups.png", "01_old.png"), value="first")
    publish(first, out, "01_groups")
    second = stage_folder(out, "01_groups")
    outputs(second, "01_groups", figures=("01_groups.png",), value="second")
    (out / "figures" / "03_other.png").write_text("another notebook's")
    publish(second, out, "01_groups")
    assert json.loads((out / "01_groups.json").read_text()) == {"value": "second"}
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["01_groups.png", "03_other.png"]  # 01_old: gone
    failed = stage_folder(out, "01_groups")
    (failed / "01_groups.ipynb").write_text("failed")
    (failed / "figures").mkdir()
    (failed / "figures" / "01_groups.png").write_text("half-drawn")
    keep_last_good(failed, out, "01_groups")
    assert (out / "01_groups.ipynb").read_text() == "failed" and not (out / "01_groups.json").exists()
    assert not (out / "figures" / "01_groups.png").exists() and (out / "figures" / "03_other.png").exists()
    assert json.loads((out / LAST_GOOD / "01_groups.json").read_text()) == {"value": "second"}
    assert (out / LAST_GOOD / "figures" / "01_groups.png").read_text() == "second"
    again = stage_folder(out, "01_groups")  # a second failure keeps the same last good outputs
    keep_last_good(again, out, "01_groups")
    assert json.loads((out / LAST_GOOD / "01_groups.json").read_text()) == {"value": "second"}
    assert not (out / "01_groups.ipynb").exists()  # papermill wrote no notebook this time
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no stage left behind


def test_claims_of_a_failed_notebook_are_not_run_and_an_earlier_runs_verdict_says_so(tmp_path):
    (tmp_path / "runs.json").write_text(json.dumps({"notebooks": [
        {"name": "01_groups", "ok": False, "seconds": 1, "error": "x"},
        {"name": "02_latent_space", "ok": True, "seconds": 1, "error": ""}]}))
    (tmp_path / "03_cnn_neurons.json").write_text(json.dumps({"profile": "smoke",
                                                              "provenance": {"recorded_at": "2020-01-02T03:04:05"}}))
    rows = evaluate_claims(tmp_path)
    failed = [r for r in rows if r["notebook"] == "01_groups"]
    assert failed and all(r["ours"] == "not run (its notebook failed in this run)" and r["holds"] is None
                          for r in failed)
    earlier = [r for r in rows if r["notebook"] == "03_cnn_neurons"]
    assert earlier and all(r["earlier_run"] == "2020-01-02T03:04:05" for r in earlier)
    assert verdict_text(earlier[0]).endswith("(from an earlier run, recorded 2020-01-02T03:04:05)")
    assert not any("earlier_run" in r for r in rows if r["notebook"] != "03_cnn_neurons")


def test_an_error_tail_starts_at_a_line_start():
    text = "".join(f"line {i}: some words of the traceback\n" for i in range(200))
    tail = error_tail(text, 500)
    assert tail.startswith("[... earlier output cut]\nline ") and text.endswith(tail.split("\n", 1)[1])
    assert len(tail) <= 500 + len("[... earlier output cut]\n")
    assert error_tail("short\n", 500) == "short\n"


def test_runs_root_that_is_a_file_is_a_usage_error_before_any_notebook(tmp_path, capsys):
    file = tmp_path / "runs"
    file.write_text("not a folder")
    for root, said in ((file, f"{file} is a file"), (file / "sub", f"{file / 'sub'} lies under {file}, which is a file")):
        with pytest.raises(SystemExit) as exit_:
            main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--runs-root", str(root)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --runs-root: '{root}': {said} (expected a folder" in err
    assert not (tmp_path / "out").exists()


def test_a_full_disk_under_out_is_a_clear_error_and_the_old_report_stays(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("the previous report")
    monkeypatch.setattr(runner, "run_notebook", lambda book, **kw: NotebookRun(book.stem, 1.0, True))

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    status = main(["run", "--profile", "smoke", "--only", "01", "--out", str(out)])
    assert status == 1
    err = capsys.readouterr().err
    assert f"could not write the report into --out {out}: no space left on device (writing {out}/" in err
    assert "Traceback" not in err and (out / "index.html").read_text() == "the previous report"


FAILING = "if FAIL:\n    raise ValueError('asked to fail:\\n' + 'a long explanation, word after word\\n' * 200)\n"


@pytest.mark.notebook
def test_a_failed_rerun_shows_failed_keeps_the_last_good_outputs_and_reports_no_old_numbers(tmp_path):
    """End to end through papermill: a stub notebook that records, then fails when asked to."""
    books = tmp_path / "notebooks"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('PROFILE = "cpu"\nOUTPUT_DIR = "out"\nFAIL = False\n',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from shortcut_nb import report\nreport.record('07_stub', {'n': 1}, OUTPUT_DIR)"),
                nbformat.v4.new_code_cell(FAILING)]
    nbformat.write(nb, books / "07_stub.ipynb")
    out = tmp_path / "out"
    assert [r.ok for r in run_all(profile="smoke", out=out, notebooks=books)] == [True]
    assert json.loads((out / "07_stub.json").read_text())["provenance"]["parameters"]["FAIL"] is False
    (result,) = run_all(profile="smoke", out=out, notebooks=books, parameters={"FAIL": True})
    assert not result.ok and result.error.rstrip().endswith("a long explanation, word after word")
    assert result.error.startswith("[... earlier output cut]\n")
    assert not (out / "07_stub.json").exists() and (out / LAST_GOOD / "07_stub.json").is_file()
    assert "asked to fail" in (out / "07_stub.ipynb").read_text()  # the failed execution, for its traceback
    index = (out / "index.html").read_text()
    assert "FAILED" in index and "last_good/07_stub.json" in index
    assert [p.name for p in out.iterdir() if p.name.startswith(".running-")] == []


def test_a_published_record_names_the_output_folder_it_was_published_to(tmp_path):
    """The notebook ran with OUTPUT_DIR = its fresh folder; once published, its record says where its outputs are
    (the fresh folder, since removed, is kept as ``executed_in``)."""
    out = tmp_path / "out"
    stage = stage_folder(out, "01_groups")
    (stage / "01_groups.json").write_text(json.dumps(
        {"provenance": {"parameters": {"PROFILE": "smoke", "OUTPUT_DIR": str(stage)}}}))
    publish(stage, out, "01_groups")
    provenance = json.loads((out / "01_groups.json").read_text())["provenance"]
    assert provenance["parameters"] == {"PROFILE": "smoke", "OUTPUT_DIR": str(out.resolve())}
    assert provenance["executed_in"] == str(stage) and not stage.exists()
