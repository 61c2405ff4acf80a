"""Every problem of a dataset folder in one pass, before a long run meets the first of them mid-epoch.

:func:`check_folder` reads ``metadata.csv`` and every file it names, and returns all it finds wrong: missing
or unknown columns and values, rows pointing outside the folder, images that are missing, truncated or
undecodable, masks that are missing, undecodable or of another size than their image, empty splits, and
groups missing from the validation or test split. ``python -m shortcut_nb check-data FOLDER`` prints them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .folder import SPLIT_CODES, DatasetFormatError, _expected_values, _valid_values, safe_path
from .groups import GroupSchemeError, attribute_column, binary_only, scheme_of


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder: where (file, CSV line) and what was expected."""

    file: str
    message: str
    line: int | None = None  # line of metadata.csv (header = 1), when the problem is a row's

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


def _decode(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) of a fully decoded image, or the reason it cannot be decoded."""
    try:
        with Image.open(path) as im:
            im.load()  # decodes every byte: a truncated file fails here, not mid-epoch
            return im.size, None
    except Exception as err:  # noqa: BLE001 - any decoder error is the file's problem, reported
        return None, f"{type(err).__name__}: {err}"


def _read(meta: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        df = pd.read_csv(meta)
    except pd.errors.EmptyDataError:
        return None, [Problem(str(meta), "is empty: expected a header line (img_filename, y, split, place or "
                                         "patch) and one row per image")]
    except Exception as err:  # noqa: BLE001 - unreadable CSV
        return None, [Problem(str(meta), f"cannot be read as CSV: {err}")]
    return df, []


def _column_problems(df: pd.DataFrame, meta: Path, attribute: str) -> list[Problem]:
    problems = []
    binary = binary_only(meta.parent, attribute)
    for column in ("y", attribute, "split"):
        values = pd.to_numeric(df[column], errors="coerce")
        ok = _valid_values(values, column, binary)
        expected = _expected_values(column, attribute, binary)
        for row in np.flatnonzero(~ok.to_numpy()):
            problems.append(Problem(str(meta), f"column {column!r} has {df[column].tolist()[row]!r}; expected "
                                               f"{expected}", line=int(row) + 2))
        df[column] = values
    return problems


def _file_problems(root: Path, df: pd.DataFrame, meta: Path) -> list[Problem]:
    problems = []
    has_mask_column = "mask_filename" in df.columns
    for row, record in enumerate(df.itertuples(index=False)):
        line = row + 2
        try:
            image = safe_path(root, getattr(record, "img_filename"), what="img_filename", row=row)
        except DatasetFormatError as err:
            problems.append(Problem(str(meta), str(err).split(": ", 1)[-1], line=line))
            continue
        if not image.is_file():
            problems.append(Problem(str(meta), f"image file not found: {image}", line=line))
            continue
        size, error = _decode(image)
        if error:
            problems.append(Problem(str(image), f"cannot be decoded ({error})", line=line))
        mask_name = getattr(record, "mask_filename") if has_mask_column else None
        if not isinstance(mask_name, str) or not mask_name:
            continue  # a row without a mask: allowed, it is never drawn for s-scores
        try:
            mask = safe_path(root, mask_name, what="mask_filename", row=row)
        except DatasetFormatError as err:
            problems.append(Problem(str(meta), str(err).split(": ", 1)[-1], line=line))
            continue
        if not mask.is_file():
            problems.append(Problem(str(meta), f"mask file not found: {mask}", line=line))
            continue
        mask_size, error = _decode(mask)
        if error:
            problems.append(Problem(str(mask), f"cannot be decoded ({error})", line=line))
        elif size is not None and mask_size != size:
            problems.append(Problem(str(mask), f"is {mask_size[0]}x{mask_size[1]} but its image {image.name} is "
                                               f"{size[0]}x{size[1]}: a mask must have its image's size", line=line))
    return problems


def _count_problems(df: pd.DataFrame, meta: Path, attribute: str) -> list[Problem]:
    problems = []
    binary = binary_only(meta.parent, attribute)
    ok = (_valid_values(df["split"], "split", binary) & _valid_values(df["y"], "y", binary)
          & _valid_values(df[attribute], attribute, binary))
    valid = df[ok].astype({"y": int, attribute: int})
    if valid.empty:
        return problems
    try:
        groups = scheme_of(valid, meta.parent, attribute)
    except GroupSchemeError as err:
        return problems + [Problem(str(meta.parent / "metadata.json"), str(err).split(": ", 1)[-1])]
    for split, code in SPLIT_CODES.items():
        if not (valid["split"] == code).any():
            problems.append(Problem(str(meta), f"split {split!r} is empty: no row has split = {code}"))
    # Worst-group accuracy and DFR's tuning read every group of the evaluation splits. (Training may lack
    # groups by design: ISIC's malignant training images carry no patch, a 0 % minority sweep has none.)
    for split in ("val", "test"):
        rows = valid[valid["split"] == SPLIT_CODES[split]]
        if not len(rows):
            continue
        counts = np.bincount(groups.group_of(rows["y"], rows[attribute]).astype(int), minlength=groups.n_groups)
        for g in np.flatnonzero(counts == 0):
            problems.append(Problem(str(meta), f"group {groups.names[g]} (g = {g}) has no {split} image: "
                                               "worst-group accuracy and DFR's tuning need every group there"))
    return problems


def check_folder(root: str | os.PathLike) -> list[Problem]:
    """All problems of the dataset folder ``root`` (empty when it follows the data contract).

    Reads every image and mask once (the cost of one epoch's decoding).
    """
    root = Path(root)
    meta = root / "metadata.csv"
    if not root.is_dir():
        return [Problem(str(root), "dataset folder not found")]
    if not meta.is_file():
        return [Problem(str(meta), "not found: a dataset folder needs a metadata.csv with columns img_filename, "
                                   "y, split and place (Waterbirds) or patch (ISIC)")]
    df, problems = _read(meta)
    if df is None:
        return problems
    try:
        attribute = attribute_column(df.columns, meta)
    except GroupSchemeError as err:
        return [Problem(str(meta), str(err).split(": ", 1)[-1])]
    missing = [c for c in ("img_filename", "y", "split") if c not in df.columns]
    if missing:
        return [Problem(str(meta), f"missing column(s) {missing} (found {list(df.columns)})")]
    if df.empty:
        return [Problem(str(meta), "has a header but no rows: expected one row per image")]
    problems += _column_problems(df, meta, attribute)
    problems += _file_problems(root, df, meta)
    problems += _count_problems(df, meta, attribute)
    return problems
