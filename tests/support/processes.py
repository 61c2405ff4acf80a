"""Helpers of the fault tests: wait for a file a child writes, find a process's descendants, tell a dead one."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def wait_for(path: Path, *, timeout: float = 120) -> Path:
    """``path`` once it exists (an AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, grandchildren, ...), read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and fields[0] not in ("Z", "X"):
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], *, timeout: float) -> set[int]:
    """The pids of ``pids`` still alive after up to ``timeout`` seconds (empty as soon as all are gone)."""
    deadline = time.monotonic() + timeout
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def end(process: subprocess.Popen, pids: set[int]) -> None:
    """A test's cleanup: kill ``process`` and whatever of ``pids`` still runs."""
    process.kill()
    process.wait()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
