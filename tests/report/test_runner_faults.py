"""The runner stopped from outside: SIGTERM or kill -9 of ``python -m shortcut_nb run`` ends its papermill process
and the notebook's kernel too (no orphan left training)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from support.processes import descendants, end, wait_for, wait_gone

PARAMETERS = 'PROFILE = "cpu"\nOUTPUT_DIR = "out"\n'
# The kernel says who it is, then works for longer than the test waits.
BUSY = """import os, pathlib, time
pid_file = pathlib.Path(OUTPUT_DIR).parent / "kernel.pid"  # OUTPUT_DIR: the runner's fresh folder inside --out
pathlib.Path(str(pid_file) + ".tmp").write_text(str(os.getpid()))
os.replace(str(pid_file) + ".tmp", pid_file)
time.sleep(600)
"""


def busy_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(BUSY)]
    folder.mkdir()
    nbformat.write(nb, folder / "01_busy.ipynb")
    return folder


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "SIGTERM"])
def test_stopping_the_runner_ends_its_papermill_and_kernel(tmp_path, stop):
    books, out = busy_notebook(tmp_path / "notebooks"), tmp_path / "out"
    runner = subprocess.Popen([sys.executable, "-m", "shortcut_nb", "run", "--profile", "smoke", "--notebooks",
                               str(books), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    below: set[int] = set()
    try:
        kernel = int(wait_for(out / "kernel.pid", timeout=180).read_text())
        below = descendants(runner.pid)
        assert kernel in below and len(below) >= 2  # papermill, and the kernel below it
        runner.send_signal(stop)
        _, err = runner.communicate(timeout=30)
        assert runner.returncode == (-stop if stop == signal.SIGKILL else 128 + stop)
        left = wait_gone(below, timeout=15)
        assert not left, f"still running after the runner was stopped: {left}"
        if stop == signal.SIGTERM:
            assert "stopped by SIGTERM while running 01_busy.ipynb" in err
    finally:
        end(runner, below)
