"""A dataset folder's content fingerprint: what the numbers computed from it were computed from.

Minimal version (recorded in each notebook's JSON): ``metadata.csv``'s bytes plus the relative path, size and
modification time of every other file in the folder, so an edited, replaced, added or removed image or mask
changes it. Hidden files and folders (temporary files of writers) are left out.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..artifacts import file_hash


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A 16-hex-digit fingerprint of ``folder``'s files: metadata.csv's sha256, every file's path, size and mtime.

    Raises:
        FileNotFoundError: ``folder`` holds no ``metadata.csv`` (the message names the folder).
    """
    folder = Path(folder)
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{folder}: no metadata.csv, expected a dataset folder holding one")
    digest = hashlib.sha256(f"metadata.csv:{file_hash(metadata, length=64)}\n".encode())
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = Path(parent, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
