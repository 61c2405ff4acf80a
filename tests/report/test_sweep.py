"""``python -m shortcut_nb sweep status``: its exit status tells a script whether the sweep needs another submit."""
from __future__ import annotations

from shortcut_nb.pipeline.runs import run_spec, train_or_load
from shortcut_nb.report import sweep as sweep_cli
from shortcut_nb.report.cli import main


def test_status_exits_non_zero_while_a_run_is_missing_and_zero_once_all_are_done(tmp_path, monkeypatch, capsys):
    spec = run_spec("smoke", "waterbirds", seed=0, epochs=1)
    monkeypatch.setattr(sweep_cli, "planned_specs", lambda ctx, only=None: [spec])  # the notebooks' runs, cut to one
    argv = ["sweep", "status", "--profile", "smoke", "--runs-root", str(tmp_path), "--name", "s"]
    assert main(argv) == 1  # nothing failed, but nothing was trained either
    out = capsys.readouterr().out
    assert "0 done, 0 running, 0 queued, 0 partial, 0 failed, 1 missing" in out
    assert "1 of 1 runs are neither done nor on their way" in out
    train_or_load(spec, root=tmp_path, progress_bar=False)
    assert main(argv) == 0
    assert "neither done" not in capsys.readouterr().out
