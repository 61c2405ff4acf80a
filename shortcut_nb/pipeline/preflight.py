"""Every input a notebook will read, checked before its first training step (issue 28).

:func:`check_inputs` runs :func:`~shortcut_nb.data.check.check_folder` over each of a researcher's dataset
folders the notebook reads (all splits: files that open, masks that fit, groups of val and test, duplicates and
images shared between splits) and, for the s-score notebooks, :func:`~shortcut_nb.data.check.mask_problems`;
then raises one error listing every problem of every folder, worded as ``check-data`` prints it. A folder's
result is stored under ``<runs root>/checks`` keyed by its content fingerprint, so a rerun on unchanged data
costs one ``stat`` per file, and any edit checks it again.

The synthetic benchmark is not checked here: this package generates it from its settings, and its tests check
that a generated folder has no problem (``tests/data/test_check.py``).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

from ..artifacts import atomic_write_json, read_json, stable_key
from ..data import DatasetFormatError
from ..data.check import Problem, check_folder, mask_problems, report
from ..data.fingerprint import folder_fingerprint

CHECK_VERSION = 1  # bump when check_folder finds new kinds of problems: stored results are then redone


def folder_problems(folder: str | os.PathLike, *, root: str | os.PathLike) -> list[Problem]:
    """:func:`~shortcut_nb.data.check.check_folder` of ``folder``, stored under ``root/checks`` by content."""
    path = Path(folder).resolve()
    if not (path / "metadata.csv").is_file():
        return check_folder(path)  # nothing to key a stored result on
    stored = Path(root) / "checks" / f"{stable_key(CHECK_VERSION, str(path), folder_fingerprint(path), length=24)}.json"
    if stored.is_file():
        return [Problem(**p) for p in read_json(stored)["problems"]]
    problems = check_folder(path)
    try:
        atomic_write_json(stored, {"folder": str(path), "problems": [asdict(p) for p in problems]})
    except OSError:
        pass  # a read-only runs root: the check is redone next time, nothing else is lost
    return problems


def check_inputs(folders: Mapping[str, str | os.PathLike], *, root: str | os.PathLike) -> None:
    """Raise one :class:`~shortcut_nb.data.DatasetFormatError` listing every problem of every folder in
    ``folders`` (dataset name -> folder), each as ``check-data`` prints it; nothing when all are fine."""
    _raise_if_any({name: (folder, folder_problems(folder, root=root)) for name, folder in folders.items()})


def check_masks(folders: Mapping[str, str | os.PathLike]) -> None:
    """Raise like :func:`check_inputs` when a folder read for s-scores has no masks to draw from."""
    _raise_if_any({name: (folder, mask_problems(folder)) for name, folder in folders.items()}, need=" for s-scores")


def _raise_if_any(found: Mapping[str, tuple[str | os.PathLike, list[Problem]]], *, need: str = "") -> None:
    failed = [f"dataset {name!r}: {report(folder, problems)}" for name, (folder, problems) in found.items() if problems]
    if failed:
        raise DatasetFormatError(f"the data folders (DATA_FOLDERS) have problems{need}; nothing was trained. Each is "
                                 "listed as `python -m shortcut_nb check-data FOLDER` prints it:\n" + "\n".join(failed))
