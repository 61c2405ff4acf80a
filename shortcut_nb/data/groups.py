"""A dataset's identity: its classes, its spurious attribute and values, and the groups they make.

A group is a (class, attribute value) pair, ``g = y · n_values + a``. For the paper's binary datasets this is
``g = 2·y + a`` (G0..G3 of Waterbirds, BwoP, BwP, MwoP, MwP of ISIC); a researcher's folder may have any number
of classes and attribute values (Spawrious: 4 × 4). Names come from the data: an optional ``metadata.json``
beside ``metadata.csv``::

    {"classes": ["circle", "square", "triangle"], "attribute": "colour",
     "values": ["red square", "green square", "no square"]}

else from the paper (``place`` and ``patch`` columns of two values) or from the numbers (``class 1 / a=2``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..vocab import ATTRIBUTE_NAMES, CLASS_NAMES, GROUP_NAMES

#: the spurious-attribute columns understood, in the order they are looked for; place and patch are the
#: paper's (Waterbirds, ISIC), ``a`` the generic one
ATTRIBUTE_COLUMNS: dict[str, str | None] = {"place": "waterbirds", "patch": "isic", "a": None}
SIDECAR = "metadata.json"


class GroupSchemeError(ValueError):
    """A dataset's classes or attribute values do not fit its metadata; the message names the file."""


@dataclass(frozen=True)
class GroupScheme:
    """Classes × attribute values of a dataset, and the group each pair is.

    Attributes:
        classes: class names, index = ``y``.
        attribute: the spurious attribute's name (``place``, ``patch`` or the data's own).
        values: the attribute's value names, index = ``a``.
        paper: ``"waterbirds"`` / ``"isic"`` when these are the paper's binary groups (its group names), else None.
    """

    classes: tuple[str, ...]
    attribute: str
    values: tuple[str, ...]
    paper: str | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_values(self) -> int:
        return len(self.values)

    @property
    def n_groups(self) -> int:
        return self.n_classes * self.n_values

    def group_of(self, y, a):
        """Group index ``y · n_values + a`` of ints, arrays or tensors (``2y + a`` for two values)."""
        return y * self.n_values + a

    def class_of(self, g: int) -> int:
        return int(g) // self.n_values

    def value_of(self, g: int) -> int:
        return int(g) % self.n_values

    @property
    def names(self) -> tuple[str, ...]:
        """One label per group, ``"<class> / <value>"`` (the paper's own for its two datasets)."""
        if self.paper is not None:
            return GROUP_NAMES[self.paper]
        return tuple(f"{c} / {v}" for c in self.classes for v in self.values)

    def as_record(self) -> dict:
        """What a notebook records about the groups (JSON-ready)."""
        return {"classes": list(self.classes), "attribute": self.attribute, "values": list(self.values),
                "group_names": list(self.names), "paper": self.paper}


def paper_scheme(dataset: str) -> GroupScheme:
    """The paper's 2 × 2 groups of ``"waterbirds"`` or ``"isic"``."""
    column = {"waterbirds": "place", "isic": "patch"}[dataset]
    return GroupScheme(classes=CLASS_NAMES[dataset], attribute=column, values=ATTRIBUTE_NAMES[dataset], paper=dataset)


def attribute_column(columns, meta_path: str | os.PathLike) -> str:
    """The spurious-attribute column of a metadata file (``place``, ``patch`` or ``a``)."""
    for column in ATTRIBUTE_COLUMNS:
        if column in columns:
            return column
    raise GroupSchemeError(f"{meta_path}: missing the spurious-attribute column: one of 'place' (Waterbirds), "
                           f"'patch' (ISIC) or 'a' (any other data); found columns {list(columns)}")


def binary_only(root: str | os.PathLike, column: str) -> bool:
    """Whether ``y`` and ``column`` must be 0/1: the paper's format (``place`` / ``patch``) without a
    ``metadata.json`` naming more classes or values (a 7 there is a typo, not a seventh class)."""
    return ATTRIBUTE_COLUMNS[column] is not None and not (Path(root) / SIDECAR).is_file()


def _names(sidecar: Path, data: dict, key: str, needed: int, default: list[str]) -> tuple[str, ...]:
    names = data.get(key)
    if names is None:
        return tuple(default)
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise GroupSchemeError(f"{sidecar}: {key!r} must be a list of non-empty names, got {names!r}")
    if len(names) < needed:
        raise GroupSchemeError(f"{sidecar}: {key!r} names {len(names)} but metadata.csv uses {needed} "
                               f"(values 0..{needed - 1}): name every one")
    if len(set(names)) != len(names):
        raise GroupSchemeError(f"{sidecar}: {key!r} has repeated names {names}")
    return tuple(names)


def read_sidecar(root: str | os.PathLike) -> dict:
    """The optional ``metadata.json`` of a dataset folder as a dict (empty when absent); read as data."""
    path = Path(root) / SIDECAR
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise GroupSchemeError(f"{path}: not valid JSON ({err}); expected e.g. "
                               '{"classes": [...], "attribute": "...", "values": [...]}') from None
    if not isinstance(data, dict):
        raise GroupSchemeError(f"{path}: expected a JSON object with 'classes', 'attribute' and 'values'")
    unknown = sorted(set(data) - {"classes", "attribute", "values"})
    if unknown:
        raise GroupSchemeError(f"{path}: unknown key(s) {unknown}; expected 'classes', 'attribute', 'values'")
    if "attribute" in data and not (isinstance(data["attribute"], str) and data["attribute"]):
        raise GroupSchemeError(f"{path}: 'attribute' must be a non-empty name, got {data['attribute']!r}")
    return data


def scheme_of(df: pd.DataFrame, root: str | os.PathLike, column: str) -> GroupScheme:
    """The groups of a metadata table whose ``y`` and ``column`` hold non-negative ints (already checked).

    The paper's names for a ``place``/``patch`` column of two values and two classes with no ``metadata.json``;
    otherwise names from ``metadata.json``, else from the numbers. The counts are the names' (when given) or
    the largest value + 1, so a value absent from the data still has its group.
    """
    root = Path(root)
    sidecar = read_sidecar(root)
    n_classes = int(df["y"].max()) + 1
    n_values = int(df[column].max()) + 1
    paper = ATTRIBUTE_COLUMNS[column]
    if paper is not None and not sidecar and n_classes <= 2 and n_values <= 2:
        return paper_scheme(paper)
    path = root / SIDECAR
    classes = _names(path, sidecar, "classes", n_classes, [f"class {k}" for k in range(n_classes)])
    name = sidecar.get("attribute", column)
    values = _names(path, sidecar, "values", n_values, [f"{name}={v}" for v in range(n_values)])
    return GroupScheme(classes=classes, attribute=name, values=values)


def group_counts(g, n_groups: int) -> list[int]:
    """Samples per group, ``[n_0, ..., n_{G-1}]``, of group indices (N,)."""
    return np.bincount(np.asarray(g, dtype=np.int64), minlength=n_groups).tolist()
