"""Every problem of a dataset folder in one pass, before a long run meets the first of them mid-epoch.

:func:`check_folder` reads ``metadata.csv`` and every file it names, and returns all it finds wrong: a file that is
not UTF-8, missing or unknown columns and values, rows pointing outside the folder, images that are missing,
truncated, corrupt or (nearly) uniform (:func:`~.images.image_problems`), masks that are missing, undecodable or
of another size than their image, empty splits, groups missing from the validation or test split, the same row
twice, one file on two rows, the same bytes in two splits (test images leaking into training), and, when
``needs_masks``, a folder or training split without masks. ``python -m shortcut_nb check-data FOLDER`` prints
:func:`report`, which is also what a notebook raises before its first training step
(:meth:`~shortcut_nb.pipeline.context.Context.datasets`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fingerprint import file_sha256
from .folder import SPLIT_CODES, DatasetFormatError, _expected_values, _valid_values, safe_path, utf8_problem
from .groups import GroupSchemeError, attribute_column, binary_only, scheme_of
from .images import image_problems, open_mask

SPLIT_NAMES = {code: name for name, code in SPLIT_CODES.items()}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder: where (file, CSV line) and what was expected."""

    file: str
    message: str
    line: int | None = None  # line of metadata.csv (header = 1), when the problem is a row's

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


def _mask_size(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) of a decoded mask, or the reason it cannot be decoded."""
    try:
        return open_mask(path).size, None
    except Exception as err:  # noqa: BLE001 - any decoder error is the file's problem, reported
        return None, f"{type(err).__name__}: {err}"


def _read(meta: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    not_utf8 = utf8_problem(meta)
    if not_utf8:
        return None, [Problem(str(meta), not_utf8)]
    try:
        df = pd.read_csv(meta, encoding="utf-8-sig")
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


def _file_problems(root: Path, df: pd.DataFrame, meta: Path) -> tuple[list[Problem], dict[int, Path]]:
    """Problems of every image and mask file, and the image file of each row that has one (for duplicates)."""
    problems = []
    images: dict[int, Path] = {}
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
        images[row] = image
        size, found = image_problems(image)
        problems += [Problem(str(image), message, line=line) for message in found]
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
        mask_size, error = _mask_size(mask)
        if error:
            problems.append(Problem(str(mask), f"cannot be decoded ({error})", line=line))
        elif size is not None and mask_size != size:
            problems.append(Problem(str(mask), f"is {mask_size[0]}x{mask_size[1]} but its image {image.name} is "
                                               f"{size[0]}x{size[1]}: a mask must have its image's size", line=line))
    return problems, images


def _split_name(value) -> str:
    return SPLIT_NAMES.get(value, f"split {value!r}")


def _duplicate_problems(df: pd.DataFrame, meta: Path, images: dict[int, Path]) -> list[Problem]:
    """The same row twice, one image file on two rows, the same image bytes in two splits (leakage)."""
    problems = []
    repeated = df.duplicated(keep=False)
    for _, rows in df[repeated].groupby(list(df.columns), dropna=False).groups.items():
        first, *others = (int(r) for r in rows)
        problems += [Problem(str(meta), f"repeats line {first + 2} (the same row twice: its image counts twice)",
                             line=r + 2) for r in others]
    by_path: dict[Path, list[int]] = {}
    for row, path in images.items():
        by_path.setdefault(path, []).append(row)
    by_content: dict[str, list[int]] = {}
    for path, rows in by_path.items():
        first, *others = rows
        for row in others:
            if repeated.iloc[row]:
                continue  # reported as a repeated row
            splits = {_split_name(df["split"].iloc[r]) for r in (first, row)}
            leak = " in two splits (leakage: the same image in " + " and ".join(sorted(splits)) + ")" if len(
                splits) > 1 else ""
            problems.append(Problem(str(meta), f"names {path.name} as line {first + 2} does{leak}; each image once",
                                    line=row + 2))
        by_content.setdefault(file_sha256(path), []).append(first)
    for rows in by_content.values():
        first = rows[0]
        for row in rows[1:]:
            if df["split"].iloc[row] != df["split"].iloc[first]:
                problems.append(Problem(str(images[row]), f"has the same bytes as {images[first].name} (line "
                                        f"{first + 2}) in another split (leakage: {_split_name(df['split'].iloc[row])} "
                                        f"and {_split_name(df['split'].iloc[first])} share an image)", line=row + 2))
    return problems


def _mask_requirement(df: pd.DataFrame, meta: Path) -> list[Problem]:
    """s-scores draw training images with a non-empty mask: the folder needs a mask column with masks in train."""
    if "mask_filename" not in df.columns:
        return [Problem(str(meta), "has no mask_filename column: s-scores need a mask of the spurious region per image")]
    names = df["mask_filename"]
    masked = names.notna() & (names.astype(str).str.len() > 0)
    if not (masked & (df["split"] == SPLIT_CODES["train"])).any():
        return [Problem(str(meta), "no training row has a mask_filename: s-scores draw training images with a mask")]
    return []


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


def check_folder(root: str | os.PathLike, *, needs_masks: bool = False) -> list[Problem]:
    """All problems of the dataset folder ``root`` (empty when it follows the data contract).

    Reads every image and mask once (the cost of one epoch's decoding) and hashes every image (duplicates across
    splits). ``needs_masks``: the folder is read for s-scores (a mask column, masks in the training split).
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
    files, images = _file_problems(root, df, meta)
    problems += files
    problems += _duplicate_problems(df, meta, images)
    problems += _count_problems(df, meta, attribute)
    if needs_masks:
        problems += _mask_requirement(df, meta)
    return problems


def mask_problems(root: str | os.PathLike) -> list[Problem]:
    """What keeps a folder (otherwise checked by :func:`check_folder`) from s-scores: no mask column, or no
    training row with a mask. Reads ``metadata.csv`` only."""
    meta = Path(root) / "metadata.csv"
    df, problems = _read(meta)
    if df is None or "split" not in df.columns:
        return problems
    df["split"] = pd.to_numeric(df["split"], errors="coerce")
    return _mask_requirement(df, meta)


def report(folder: str | os.PathLike, problems: list[Problem]) -> str:
    """What ``check-data`` prints for one folder (and a notebook raises): each problem on its own line."""
    if not problems:
        return f"{folder}: no problem found (metadata, every image and mask decoded, splits and groups present)"
    return "\n".join([f"{folder}: {len(problems)} problem(s)", *(f"  {p}" for p in problems)])
