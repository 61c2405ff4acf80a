"""Dataset folders in the group_DRO / Waterbirds layout, extended with spurious masks.

A dataset is a folder with ``metadata.csv``:

========================  =====================================================
column                    meaning
========================  =====================================================
``img_filename``          image path relative to the folder
``y``                     class label 0..C-1 (Waterbirds: 1 = waterbird; ISIC: 1 = malignant)
``place`` / ``patch``     spurious attribute a (Waterbirds: 1 = water; ISIC: 1 = patch);
/ ``a``                   ``a`` (0..V-1) for any other data
``split``                 0 train, 1 val, 2 test
``mask_filename``         optional binary PNG of the spurious region
========================  =====================================================

and optionally ``metadata.json`` naming the classes, the attribute and its values
(:mod:`~shortcut_nb.data.groups`). A group is a (y, a) pair, ``g = y * V + a`` (``2*y + a`` for the paper's
binary data). Real folders and the synthetic benchmark load through the same code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..vocab import Split
from .decoded import DecodedSplit, decoded_split
from .groups import GroupScheme, GroupSchemeError, attribute_column, binary_only, group_counts, scheme_of
from .images import open_mask, open_rgb
from .transforms import Normalization, image_to_uint8, mask_to_tensor, normalise_uint8, normalization

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
ATTRIBUTE_COLUMN = {"waterbirds": "place", "isic": "patch"}


class DatasetFormatError(ValueError):
    """A dataset folder does not follow the data contract; the message names file, row and column."""


@dataclass(frozen=True)
class FolderInfo:
    """What a folder's metadata says: its format (``waterbirds``, ``isic`` or ``generic``), the attribute column,
    whether it has masks, and its groups."""

    root: Path
    kind: str
    attribute: str
    has_masks: bool
    groups: GroupScheme


def group_of(y: int | np.ndarray, a: int | np.ndarray, n_values: int = 2):
    """Group index ``g = y * n_values + a`` (the paper's ``2*y + a``: G0..G3 / BwoP, BwP, MwoP, MwP)."""
    return y * n_values + a


def read_metadata(root: str | os.PathLike) -> tuple[pd.DataFrame, FolderInfo]:
    """Read and validate ``root/metadata.csv`` (and ``metadata.json``); detect the format and groups."""
    root = Path(root)
    meta_path = root / "metadata.csv"
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: a dataset folder needs a metadata.csv with columns "
            "img_filename, y, split and place (Waterbirds), patch (ISIC) or a (any other spurious attribute)"
        )
    not_utf8 = utf8_problem(meta_path)
    if not_utf8:
        raise DatasetFormatError(f"{meta_path} {not_utf8}")
    try:
        df = pd.read_csv(meta_path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DatasetFormatError(f"{meta_path} is empty: expected a header line (img_filename, y, split, place or "
                                 "patch) and one row per image") from None
    try:
        attribute = attribute_column(df.columns, meta_path)
    except GroupSchemeError as err:
        raise DatasetFormatError(str(err)) from None
    kind = {"place": "waterbirds", "patch": "isic"}.get(attribute, "generic")
    for column in ("img_filename", "y", "split", attribute):
        if column not in df.columns:
            raise DatasetFormatError(f"{meta_path}: missing column {column!r} (found {list(df.columns)})")
    if df.empty:
        raise DatasetFormatError(f"{meta_path} has a header but no rows: expected one row per image")
    binary = binary_only(root, attribute)
    for column in ("y", attribute, "split"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = ~_valid_values(values, column, binary)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            expected = _expected_values(column, attribute, binary)
            raise DatasetFormatError(
                f"{meta_path}, row {row + 2} (data row {row}): column {column!r} has {df[column].tolist()[row]!r}; "
                f"expected {expected}")
        df[column] = values.astype(int)
    try:
        groups = scheme_of(df, root, attribute)
    except GroupSchemeError as err:
        raise DatasetFormatError(str(err)) from None
    has_masks = "mask_filename" in df.columns and df["mask_filename"].notna().any()
    return df, FolderInfo(root=root, kind=kind, attribute=attribute, has_masks=bool(has_masks), groups=groups)


def utf8_problem(path: Path) -> str | None:
    """Where ``path`` stops being UTF-8 text (line, byte offset, the byte), or None when it is UTF-8 throughout.

    pandas' own error gives an offset within one of its read buffers, not the file's."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return (f"is not UTF-8 text: line {line} (byte offset {err.start}) holds byte {data[err.start]:#04x} "
                f"({err.reason}); save the file as UTF-8 (e.g. from a latin-1 file: iconv -f latin1 -t utf-8)")
    return None


def _valid_values(values: pd.Series, column: str, binary: bool) -> pd.Series:
    """Which entries of a numeric ``split``, ``y`` or attribute column are allowed (see :func:`_expected_values`)."""
    if column == "split":
        return values.isin([0, 1, 2])
    if binary:
        return values.isin([0, 1])
    return values.notna() & (values >= 0) & (values % 1 == 0)


def _expected_values(column: str, attribute: str, binary: bool) -> str:
    if column == "split":
        return "one of [0, 1, 2] (0 train, 1 val, 2 test)"
    if binary:
        return (f"one of [0, 1] (the paper's binary {'classes' if column == 'y' else repr(attribute)}; for more, "
                "use an 'a' column or name them in metadata.json)")
    return "a non-negative integer (" + ("a class index)" if column == "y" else "the attribute value's index)")


def safe_path(root: Path, relative: str, *, what: str, row: int) -> Path:
    """Resolve a path from metadata and refuse any that leaves the dataset folder."""
    if not isinstance(relative, str) or not relative:
        raise DatasetFormatError(f"{root / 'metadata.csv'}, row {row + 2}: empty {what}")
    root_resolved = root.resolve()
    path = (root_resolved / relative).resolve()
    if not path.is_relative_to(root_resolved):
        raise DatasetFormatError(
            f"{root / 'metadata.csv'}, row {row + 2}: {what} {relative!r} points outside the dataset folder"
        )
    return path


class ShortcutDataset(Dataset):
    """One split of a dataset folder. ``ds[i]`` is a dict:

    - ``image``: float tensor (3, H, W), resized to ``image_size`` and ImageNet-normalised;
    - ``y``, ``a``, ``g``: ints (class, spurious attribute, group ``y * V + a``; see :attr:`groups`);
    - ``mask``: bool tensor (H, W) of the spurious region (only when the folder has masks);
    - ``has_mask``: whether this row has a mask (a row without one gets an all-False ``mask``, which must not
      be read as "no spurious region": s-score draws skip such rows);
    - ``index``: the row's position within this split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        split: Split,
        image_size: int = 224,
        segmentation_dir: str | os.PathLike | None = None,
        cache: bool = False,
        decoded_dir: str | os.PathLike | None = None,
        normalize: Normalization | str | dict | None = None,
    ):
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {tuple(SPLIT_CODES)}, got {split!r}")
        df, info = read_metadata(root)
        self.info = info
        self.root = info.root
        self.kind = info.kind
        self.groups: GroupScheme = info.groups
        self.normalization: Normalization = normalization(normalize)
        self.split = split
        self.image_size = int(image_size)
        rows = df.index[df["split"] == SPLIT_CODES[split]]
        if len(rows) == 0:
            raise DatasetFormatError(f"{info.root / 'metadata.csv'}: split {split!r} is empty (no row has split = "
                                     f"{SPLIT_CODES[split]})")
        self.meta = df.loc[rows].reset_index().rename(columns={"index": "row"})
        self.y = torch.tensor(self.meta["y"].to_numpy(copy=True), dtype=torch.long)
        self.a = torch.tensor(self.meta[info.attribute].to_numpy(copy=True), dtype=torch.long)
        self.g = self.groups.group_of(self.y, self.a)
        self.segmentation_dir = Path(segmentation_dir) if segmentation_dir is not None else None
        self.image_paths = [
            safe_path(self.root, f, what="img_filename", row=r) for f, r in zip(self.meta["img_filename"], self.meta["row"])
        ]
        for path, r in zip(self.image_paths, self.meta["row"]):
            if not path.is_file():
                raise FileNotFoundError(f"{self.root / 'metadata.csv'}, row {r + 2}: image file not found: {path}")
        self.mask_paths: list[Path | None] | None = None
        if self.segmentation_dir is not None:
            self.mask_paths = []
            for f, r in zip(self.meta["img_filename"], self.meta["row"]):
                seg = safe_path(self.segmentation_dir, str(Path(f).with_suffix(".png")), what="segmentation", row=r)
                if not seg.is_file():
                    raise FileNotFoundError(f"segmentation for row {r + 2} ({f}) not found: {seg}")
                self.mask_paths.append(seg)
        elif info.has_masks:
            self.mask_paths = [
                None if (not isinstance(f, str) or not f) else safe_path(self.root, f, what="mask_filename", row=r)
                for f, r in zip(self.meta["mask_filename"], self.meta["row"])
            ]
            for path, r in zip(self.mask_paths, self.meta["row"]):
                if path is not None and not path.is_file():
                    raise FileNotFoundError(f"{self.root / 'metadata.csv'}, row {r + 2}: mask file not found: {path}")
        self._cache: dict[int, dict] | None = {} if cache else None
        self._decoded: DecodedSplit | None = decoded_split(self, decoded_dir) if decoded_dir is not None else None

    @property
    def decoded(self) -> DecodedSplit | None:
        """The split's decoded pixels when it was loaded with ``decoded_dir=`` (else None)."""
        return self._decoded

    @property
    def has_masks(self) -> bool:
        return self.mask_paths is not None

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def n_groups(self) -> int:
        return self.groups.n_groups

    def group_counts(self) -> list[int]:
        """Rows per group of this split, ``[n_0, ..., n_{G-1}]`` (every group of the scheme, zeros included)."""
        return group_counts(self.g, self.n_groups)

    @property
    def transform_id(self) -> str:
        """The resize and normalisation of this dataset's items (part of the feature cache's key)."""
        return self.normalization.transform_id

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (..., 3, H, W) of this dataset -> the model's input (its normalisation)."""
        return normalise_uint8(images, self.normalization)

    def _load_mask(self, i: int, image_size_wh: tuple[int, int]) -> torch.Tensor | None:
        assert self.mask_paths is not None
        path = self.mask_paths[i]
        if path is None:
            return None
        m = open_mask(path)
        if m.size != image_size_wh:
            raise DatasetFormatError(
                f"mask {path} is {m.size[0]}x{m.size[1]} but its image {self.image_paths[i].name} is "
                f"{image_size_wh[0]}x{image_size_wh[1]}: a mask must have its image's size"
            )
        mask = mask_to_tensor(m, self.image_size)
        if self.segmentation_dir is not None:
            mask = ~mask  # CUB segmentations mark the bird; the spurious region is the background
        return mask

    def decode(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Row ``i``'s pixels from its files: uint8 image (3, S, S) and bool mask (S, S) or None (no mask)."""
        try:
            im = open_rgb(self.image_paths[i])  # as a viewer shows it: upright, 16-bit scaled, alpha over white
            size_wh = im.size
            image = image_to_uint8(im, self.image_size)
        except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for truncated or foreign files
            raise DatasetFormatError(f"{self.root / 'metadata.csv'}, row {int(self.meta['row'].iloc[i]) + 2}: image "
                                     f"{self.image_paths[i]} cannot be decoded ({type(err).__name__}: {err}); "
                                     f"`python -m shortcut_nb check-data {self.root}` lists every such file") from err
        mask = self._load_mask(i, size_wh) if self.mask_paths is not None else None
        return image, mask

    def __getitem__(self, i: int) -> dict:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        if self._decoded is not None:
            image = self._decoded.images[i]
            mask = self._decoded.masks[i] if self._decoded.has_mask is not None and self._decoded.has_mask[i] else None
        else:
            image, mask = self.decode(i)
        item = {"image": self.normalise(image), "y": int(self.y[i]), "a": int(self.a[i]), "g": int(self.g[i]),
                "index": i}
        if self.mask_paths is not None:
            item["has_mask"] = mask is not None
            item["mask"] = mask if mask is not None else torch.zeros(self.image_size, self.image_size, dtype=torch.bool)
        if self._cache is not None:
            self._cache[i] = item
        return item


def load_dataset(
    root: str | os.PathLike,
    *,
    split: Split,
    image_size: int = 224,
    segmentation_dir: str | os.PathLike | None = None,
    cache: bool = False,
    decoded_dir: str | os.PathLike | None = None,
    normalize: Normalization | str | dict | None = None,
) -> ShortcutDataset:
    """Load one split of a dataset folder (real Waterbirds/ISIC or the synthetic benchmark).

    Args:
        root: folder holding ``metadata.csv`` and the images.
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: images and masks are resized to ``image_size × image_size``.
        segmentation_dir: Waterbirds only: a folder of CUB bird segmentations laid out like
            ``img_filename`` (with ``.png``); the spurious mask is the background, 1 − bird.
        cache: keep decoded items in memory (small synthetic sets).
        decoded_dir: decode the split once into a uint8 file there and serve items from it (real folders:
            no JPEG decoding per epoch; see :mod:`~shortcut_nb.data.decoded`).
        normalize: the input normalisation the model was trained with: ``"imagenet"`` (default),
            ``"inception"`` (0.5, 0.5), ``{"mean": [...], "std": [...]}`` (:func:`~.transforms.normalization`).

    Returns:
        A :class:`ShortcutDataset`.
    """
    return ShortcutDataset(root, split=split, image_size=image_size, segmentation_dir=segmentation_dir, cache=cache,
                           decoded_dir=decoded_dir, normalize=normalize)


def group_balanced_indices(
    g: torch.Tensor | np.ndarray, *, seed: int, n_per_group: int | None = None, groups: tuple[int, ...] | None = None
) -> np.ndarray:
    """Indices of a group-balanced subsample: each group drawn without replacement to the smallest group's size.

    ``groups``: the groups to balance (None: ``0 .. max(g)``, each of which must be present).

    Raises:
        ValueError: when a requested group is empty (nothing to balance with).
    """
    g = np.asarray(g)
    rng = np.random.default_rng(seed)
    groups = tuple(range(int(g.max(initial=-1)) + 1)) if groups is None else groups
    members = {k: np.flatnonzero(g == k) for k in groups}
    empty = [k for k, idx in members.items() if len(idx) == 0]
    if empty:
        raise ValueError(f"cannot group-balance: group(s) {empty} are empty (group counts {[len(members[k]) for k in groups]})")
    size = min(len(idx) for idx in members.values())
    if n_per_group is not None:
        if n_per_group > size:
            raise ValueError(f"n_per_group={n_per_group} exceeds the smallest group's size {size}")
        size = n_per_group
    picked = [rng.choice(idx, size=size, replace=False) for idx in members.values()]
    return np.sort(np.concatenate(picked))
