"""Counterfactuals of the synthetic benchmark, re-rendered from the generator's per-item records.

For an item of a folder written by :func:`~shortcut_nb.data.generate_waterbirds_like` or
:func:`~shortcut_nb.data.generate_isic_like` (``render_items.json``, :func:`~shortcut_nb.data.synthetic.render_record`):

========================  ==========================================================  ===========================
flip                      Waterbirds-like                                             ISIC-like
========================  ==========================================================  ===========================
``"attribute"``           the background drawn for the other place (same object)      the colour patch added or
                                                                                      removed (same skin, lesion)
``"core"``                the object drawn as a shape of the other class (same        the lesion drawn for the
                          position, size, rotation, colour, shading, background)      other class (same skin, patch)
========================  ==========================================================  ===========================

The counterfactual is rendered at the generator's size, written as the generator writes (size jitter, JPEG:
:func:`~shortcut_nb.data.synthetic.as_written`), and composed with the item's own file inside the flipped region
only, so outside that region it equals the file exactly. The item's own render is checked against its file first
(a folder edited after generation is refused). An MwP row (a benign patch pasted by
:func:`~shortcut_nb.data.insert_patches`) loses its patch by returning to the malignant image it was pasted into.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.folder import ShortcutDataset, safe_path
from ..data.synthetic import (
    ISICLikeSettings,
    WaterbirdsLikeSettings,
    as_written,
    render_bird_item,
    render_lesion_item,
)

Settings = WaterbirdsLikeSettings | ISICLikeSettings


@dataclass(frozen=True)
class Rendered:
    """One counterfactual at its file's resolution: ``image`` uint8 (h, w, 3), ``region`` bool (h, w) where it
    may differ from the item's file, and the class and attribute it shows."""

    image: np.ndarray
    region: np.ndarray
    y: int
    a: int


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) >= 128


def _at_size(region: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A bool region (S, S) at a file's (w, h), resized as the generator resizes masks (nearest)."""
    if region.shape[::-1] == tuple(size_wh):
        return region
    return np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize(size_wh, Image.NEAREST)) >= 128


def _check_own(settings: Settings, own: np.ndarray, file_pixels: np.ndarray, path: Path) -> None:
    written = as_written(settings, own, (file_pixels.shape[1], file_pixels.shape[0]))
    if written.shape != file_pixels.shape or not np.array_equal(written, file_pixels):
        raise ValueError(f"{path} differs from its re-render from render_items.json: the folder was changed after "
                         "generation (or written by another generator version); regenerate it to draw counterfactuals")


def _compose(settings: Settings, flipped: np.ndarray, region: np.ndarray, file_pixels: np.ndarray, *,
             keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flipped render written like the file, inside ``region`` (minus ``keep``), on the file's pixels."""
    size_wh = (file_pixels.shape[1], file_pixels.shape[0])
    region = _at_size(region, size_wh)
    if keep is not None:
        region = region & ~keep
    image = np.where(region[..., None], as_written(settings, flipped, size_wh), file_pixels)
    return image, region


def _other_shape(settings: WaterbirdsLikeSettings, y: int, seed: int, row: int) -> str:
    shapes = settings.class_shapes[1 - y]
    return shapes[int(np.random.default_rng([seed, row]).integers(len(shapes)))]


def _bird(settings: WaterbirdsLikeSettings, item: dict, y: int, a: int, flip: str, seed: int, row: int,
          file_pixels: np.ndarray, path: Path) -> Rendered:
    own, fg = render_bird_item(settings, item, place=a)
    _check_own(settings, own, file_pixels, path)
    if flip == "attribute":
        flipped, _ = render_bird_item(settings, item, place=1 - a)
        image, region = _compose(settings, flipped, ~fg, file_pixels)
        return Rendered(image, region, y, 1 - a)
    flipped, fg_flipped = render_bird_item(settings, item, place=a, shape=_other_shape(settings, y, seed, row))
    image, region = _compose(settings, flipped, fg | fg_flipped, file_pixels)
    return Rendered(image, region, 1 - y, a)


def _lesion(settings: ISICLikeSettings, item: dict, y: int, a: int, flip: str, file_pixels: np.ndarray,
            path: Path) -> Rendered:
    own, lesion, patch = render_lesion_item(settings, item, y=y, patch=bool(a))
    _check_own(settings, own, file_pixels, path)
    if flip == "attribute":
        flipped, _, flipped_patch = render_lesion_item(settings, item, y=y, patch=not a)
        image, region = _compose(settings, flipped, patch | flipped_patch, file_pixels)
        return Rendered(image, region, y, 1 - a)
    flipped, flipped_lesion, _ = render_lesion_item(settings, item, y=y, patch=bool(a), lesion_y=1 - y)
    image, region = _compose(settings, flipped, (lesion | flipped_lesion) & ~patch, file_pixels)
    return Rendered(image, region, 1 - y, a)


def _inserted(settings: ISICLikeSettings, dataset: ShortcutDataset, i: int, base: dict, base_path: Path, y: int,
              flip: str, file_pixels: np.ndarray) -> Rendered:
    """An MwP row: ``file_pixels`` is the rendered image at ``base_path`` with a patch pasted inside its mask."""
    if dataset.mask_paths is None or dataset.mask_paths[i] is None:
        raise ValueError(f"{dataset.image_paths[i]}: an inserted-patch row needs its patch mask (mask_filename)")
    pasted = _read_mask(dataset.mask_paths[i])
    base_pixels = _read_rgb(base_path)
    if flip == "attribute":
        return Rendered(base_pixels, pasted, y, 0)
    own, lesion, _ = render_lesion_item(settings, base, y=y, patch=False)
    flipped, flipped_lesion, _ = render_lesion_item(settings, base, y=y, patch=False, lesion_y=1 - y)
    _check_own(settings, own, base_pixels, base_path)
    image, region = _compose(settings, flipped, lesion | flipped_lesion, file_pixels, keep=pasted)
    return Rendered(image, region, 1 - y, 1)


def rendered_counterfactual(dataset: ShortcutDataset, i: int, record: tuple[Settings, dict[str, dict]], *,
                            flip: str, seed: int) -> Rendered:
    """Row ``i`` of ``dataset`` (a synthetic folder's split) with ``flip`` changed (see the module docstring).

    Args:
        record: :func:`~shortcut_nb.data.synthetic.render_record` of ``dataset.root``.
        flip: ``"attribute"`` or ``"core"``.
        seed: picks the other class's shape (Waterbirds-like core flips), per row.
    """
    settings, items = record
    name = str(dataset.meta["img_filename"].iloc[i])
    if name not in items:
        raise ValueError(f"{dataset.root}: row {name!r} has no entry in render_items.json, so it cannot be "
                         "re-rendered (was metadata.csv edited after generation?)")
    item, path = items[name], dataset.image_paths[i]
    y, a = int(dataset.y[i]), int(dataset.a[i])
    file_pixels = _read_rgb(path)
    if "base" in item:
        if not isinstance(settings, ISICLikeSettings):
            raise ValueError(f"{dataset.root}: inserted-patch rows exist only in ISIC-like folders")
        base_path = safe_path(dataset.root, item["base"], what="render base", row=int(dataset.meta["row"].iloc[i]))
        return _inserted(settings, dataset, i, items[item["base"]], base_path, y, flip, file_pixels)
    if isinstance(settings, WaterbirdsLikeSettings):
        return _bird(settings, item, y, a, flip, seed, int(dataset.meta["row"].iloc[i]), file_pixels, path)
    return _lesion(settings, item, y, a, flip, file_pixels, path)
