"""A lock per run: two processes that want the same run never both train it.

The lock is ``fcntl.flock`` on a lock file next to the run's artifacts (``<run dir>/run.lock`` for a
fine-tuning, ``<weights>.pth.lock`` for a stand-in pretraining). The kernel releases it when its holder
exits, however it exits (an exception, SIGKILL, a preempted SLURM job), so a lock is never stale. On a
file system shared by several machines, Linux's NFS client turns ``flock`` into POSIX byte-range locks
held by the server, which other clients see (NFSv4, or NFSv3 with lockd); Lustre and BeeGFS need their
``flock`` mount option (without it ``flock`` fails with an error, it never silently succeeds).

The second process blocks until the first releases the lock, then re-checks the cache and loads the
finished run. The holder writes its host, pid and start time into the lock file for
:func:`lock_holder` (shown by ``sweep status``).

Within one thread the lock is re-entrant: a thread that holds a run's lock may ask for it again.

Whoever takes a run's or an artifact's lock first removes the temp files its killed writers left
(:func:`~.artifacts.remove_stale_temps`): only the lock's holder writes them, so any other one is a dead writer's.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from .artifacts import remove_stale_temps

LOCK_NAME = "run.lock"


class LockTimeout(TimeoutError):
    """The lock was still held by another process when the timeout ran out."""


_held: dict[tuple[str, int], list] = {}  # (path, thread id) -> [fd, depth]
_held_guard = threading.Lock()


def _holder_text() -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, timeout: float | None = None, poll_s: float = 0.2) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created with its folders) for the ``with`` block.

    Args:
        path: the lock file.
        timeout: seconds to wait for another holder; None waits for ever.
        poll_s: how often a waiter with a timeout retries.

    Raises:
        LockTimeout: another process still held it after ``timeout`` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    slot = (str(path.resolve()), threading.get_ident())
    with _held_guard:
        if slot in _held:
            _held[slot][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[slot][1] -= 1
        return

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while not _try_flock(fd, fcntl.LOCK_EX):
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} is held by {lock_holder(path)} (waited {timeout} s)")
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder_text() + "\n").encode(), 0)
        with _held_guard:
            _held[slot] = [fd, 1]
        try:
            yield path
        finally:
            with _held_guard:
                del _held[slot]
            os.ftruncate(fd, 0)  # no holder any more (the file stays: removing it would race with a waiter)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some process (this one included) holds the lock on ``path`` now."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        if _try_flock(fd, fcntl.LOCK_EX):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def lock_holder(path: str | os.PathLike) -> dict | None:
    """``{"host", "pid", "since"}`` of the process holding the lock on ``path``, or None when it is free."""
    if not is_locked(path):
        return None
    try:
        text = Path(path).read_text().strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def run_lock_path(run_directory: str | os.PathLike) -> Path:
    """The lock file of a fine-tuning run (in its run folder)."""
    return Path(run_directory) / LOCK_NAME


def artifact_lock_path(artifact: str | os.PathLike) -> Path:
    """The lock file of a single-file artifact (``weights.pth`` -> ``weights.pth.lock``)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".lock")


@contextlib.contextmanager
def run_lock(run_directory: str | os.PathLike, *, timeout: float | None = None) -> Iterator[Path]:
    """The lock of the run in ``run_directory`` (see :func:`file_lock`); the temps in it are removed on taking it."""
    with file_lock(run_lock_path(run_directory), timeout=timeout) as path:
        remove_stale_temps(run_directory, inside=True)
        yield path


@contextlib.contextmanager
def artifact_lock(artifact: str | os.PathLike, *, timeout: float | None = None) -> Iterator[Path]:
    """The lock of the artifact ``artifact`` (a file, or a folder written whole; see :func:`file_lock`); the temps
    of it and its companions are removed on taking it."""
    with file_lock(artifact_lock_path(artifact), timeout=timeout) as path:
        remove_stale_temps(artifact)
        yield path
