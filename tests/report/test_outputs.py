"""What notebooks record: JSON written atomically with its provenance, figures as PNG."""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from shortcut_nb import report


def test_record_merges_within_a_run_but_keeps_nothing_of_an_earlier_run(tmp_path):
    (tmp_path / "01_groups.json").write_text(json.dumps({"avg": 0.1, "old_verdict": "holds"}))  # an earlier run's
    report.record("01_groups", {"avg": 0.8, "wga": 0.4}, tmp_path)
    path = report.record("01_groups", {"wga": 0.5, "gap": 0.3}, tmp_path)
    rec = json.loads(path.read_text())
    assert {k: rec[k] for k in ("avg", "wga", "gap", "torch_threads")} == {
        "avg": 0.8, "wga": 0.5, "gap": 0.3, "torch_threads": torch.get_num_threads()}
    assert "old_verdict" not in rec


def test_record_says_what_produced_the_numbers(tmp_path):
    prov = json.loads(report.record("02_x", {"n": 1}, tmp_path).read_text())["provenance"]
    repo = Path(report.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert prov["git_commit"].removesuffix("+dirty") == (head or "unknown")
    assert prov["torch_threads"] == torch.get_num_threads() and prov["device"] in ("cpu", "cuda") or \
        prov["device"].startswith("cuda (")
    assert prov["package_version"] == importlib.metadata.version("shortcut_nb")
    assert prov["parameters"] == {}  # outside a notebook; in one, every parameter (tests/report/test_parameters.py)
    assert prov["recorded_at"][:4].isdigit()


def test_save_figure_writes_png_under_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = report.save_figure(fig, "fig3", tmp_path)
    assert path == tmp_path / "figures" / "fig3.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["fig3.png"]  # no temporary file left



def test_save_figure_on_a_full_disk_names_the_path_and_leaves_no_temp(tmp_path, monkeypatch):
    import errno

    import pytest

    fig, ax = plt.subplots()
    report.save_figure(fig, "fig3", tmp_path)
    before = (tmp_path / "figures" / "fig3.png").read_bytes()

    def full(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(fig), "savefig", full)
    with pytest.raises(OSError, match=r"no space left on device .*fig3.png"):
        report.save_figure(fig, "fig3", tmp_path)
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["fig3.png"]  # the old figure, whole; no temp
    assert (tmp_path / "figures" / "fig3.png").read_bytes() == before
