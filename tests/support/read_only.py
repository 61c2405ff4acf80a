"""A runs root made read-only: ``chmod -R a-w`` where permissions bind, else (as root, who ignores them) every
call that would create, change or remove something under it raises PermissionError as a read-only folder would."""
from __future__ import annotations

import builtins
import errno
import io
import os
import stat
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _under(root: Path, path) -> bool:
    try:
        return Path(os.path.abspath(os.fsdecode(path))).is_relative_to(root)
    except TypeError:  # a file descriptor
        return False


def _refused(path) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied (read-only runs root)", os.fsdecode(path))


def make_read_only(root: Path, monkeypatch, request) -> str:
    """Make ``root`` read-only for the rest of the test; returns how (``"chmod"`` or ``"refused writes"``)."""
    root = Path(root).resolve()
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [root, *root.rglob("*")]}
        for path, mode in modes.items():
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        request.addfinalizer(lambda: [path.chmod(mode) for path, mode in modes.items()])  # pytest can then clean up
        return "chmod"
    real_open, real_os_open = builtins.open, os.open

    def os_open(path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and _under(root, path):
            raise _refused(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and _under(root, file):
            raise _refused(file)
        return real_open(file, mode, *args, **kwargs)

    def refuse(real):
        def call(path, *args, **kwargs):
            if _under(root, path):
                if real is os.mkdir and os.path.exists(path):
                    raise FileExistsError(errno.EEXIST, "File exists", os.fsdecode(path))
                raise _refused(path)
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, refuse(getattr(os, name)))
    return "refused writes"
