"""Counterfactual pairs: each image beside the same image with one factor changed.

Two ways to make a counterfactual:

* ``"render"`` — the synthetic benchmark re-renders the item with the spurious attribute or the core flipped,
  everything else equal (:mod:`.rerender`); the only way to flip the core.
* ``"composite"`` — any folder with spurious masks (Waterbirds' own construction): the spurious region of image
  ``i`` is replaced by that of a partner ``j`` of the same split with another attribute value. With ``m_i``,
  ``m_j`` the two masks, the replaced region is ``R = m_i ∩ m_j`` when both are non-empty (a background swap: only
  pixels that are spurious in both images move, so no part of ``j``'s object comes along; the partner is the one
  of up to :data:`PARTNER_CANDIDATES` drawn candidates that overlaps ``m_i`` most) and ``R = m_i ∪ m_j`` when one
  is empty (a patch added from ``j``, or removed by ``j``'s patch-free pixels, as :func:`~shortcut_nb.data.insert_patches`
  does). ``coverage = |R| / |m_i ∪ m_j|`` says how much of the spurious regions was swapped (1 for patches).

Outside the region the counterfactual equals the image exactly (at the dataset's resolution for compositing; at
the file's for rendering, which the dataset's resize then carries, so for a dataset ``image_size`` other than
the files' a pixel next to the region may mix both).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data.folder import ShortcutDataset
from ..data.synthetic import render_record
from ..data.transforms import image_to_uint8, mask_to_tensor
from .rerender import rendered_counterfactual

Flip = Literal["attribute", "core"]
Method = Literal["auto", "render", "composite"]
FLIPS: tuple[str, ...] = ("attribute", "core")
METHODS: tuple[str, ...] = ("auto", "render", "composite")
#: partners drawn per image when compositing; the one overlapping its spurious region most is used
PARTNER_CANDIDATES = 16

__all__ = ["FLIPS", "METHODS", "PARTNER_CANDIDATES", "Flipped", "Pairs", "core_flip_unavailable", "pairs"]


@dataclass(frozen=True)
class Flipped:
    """What each pair changed (n pairs; H, W the dataset's image size).

    Attributes:
        flip: ``"attribute"`` or ``"core"``.
        method: ``"render"`` or ``"composite"``.
        y, a: (n,) long, the images' class and attribute value; ``y_cf``, ``a_cf``: the counterfactuals'.
        region: (n, H, W) bool, where a counterfactual may differ from its image.
        partner: (n,) long, the partner row (composite), -1 when rendered.
        coverage: (n,) float, ``|R| / |m_i ∪ m_j|`` (composite; see the module docstring), 1 when rendered.
    """

    flip: str
    method: str
    y: Tensor
    a: Tensor
    y_cf: Tensor
    a_cf: Tensor
    region: Tensor
    partner: Tensor
    coverage: Tensor


class Pairs(NamedTuple):
    """``images``, ``counterfactuals`` (n, 3, H, W) normalised as the dataset's items, ``indices`` (n,) rows of
    the dataset, ``flipped`` (:class:`Flipped`)."""

    images: Tensor
    counterfactuals: Tensor
    indices: Tensor
    flipped: Flipped


def _check_args(dataset: object, n: object, seed: object, flip: object, method: object) -> None:
    if not isinstance(dataset, ShortcutDataset):
        raise TypeError(f"dataset must be a ShortcutDataset (shortcut_nb.data.load_dataset), got {type(dataset).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _draw(eligible: np.ndarray, groups: np.ndarray, n: int, seed: int, what: str) -> np.ndarray:
    """``n`` of the ``eligible`` rows, spread evenly over their ``groups`` (both (N,)): each group's rows in a
    random order, taken one per group in turn (groups in a random order) until ``n`` are drawn. Any ``n`` at
    least the number of groups present holds every group, and no group holds more than one row above another
    unless it ran out; a plain random draw of a few pairs misses the minority groups. Sorted."""
    if n > len(eligible):
        raise ValueError(f"n={n} exceeds the {len(eligible)} {what} of this split")
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(eligible[groups == g]) for g in rng.permutation(np.unique(groups))]
    rounds = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
    return np.sort(np.asarray(rounds[:n], dtype=eligible.dtype))


def pairs(dataset: ShortcutDataset, n: int, seed: int, flip: Flip = "attribute", *, method: Method = "auto") -> Pairs:
    """``n`` images of ``dataset`` and their counterfactuals with ``flip`` changed.

    Args:
        dataset: one split of a dataset folder (:func:`~shortcut_nb.data.load_dataset`).
        n: pairs to draw (rows without replacement, spread evenly over the split's groups; the same rows for both
            flips of one seed when rendered).
        seed: which rows, and partners / shapes.
        flip: ``"attribute"`` (the spurious attribute) or ``"core"`` (the class-defining object; rendered only).
        method: ``"auto"`` (render for the synthetic benchmark, else composite), ``"render"``, ``"composite"``
            (see the module docstring; compositing needs spurious masks).

    Returns:
        :class:`Pairs` ``(images, counterfactuals, indices, flipped)``.

    Raises:
        ValueError: a core flip of a folder that is not the synthetic benchmark, compositing without masks or
            with one attribute value, ``n`` above the rows available.
        FileNotFoundError: a synthetic folder generated before items were recorded (regenerate it).
    """
    _check_args(dataset, n, seed, flip, method)
    record = render_record(dataset.root) if method != "composite" else None
    if method == "render" and record is None:
        raise ValueError(f"method='render' needs the synthetic benchmark, but {dataset.root} has no generator.json "
                         "of shortcut_nb's generators; use method='composite' (a folder with spurious masks)")
    if record is None:
        if flip == "core":
            raise ValueError(f"flip='core' needs a renderer of the class-defining object, which only the synthetic "
                             f"benchmark has ({dataset.root} is not one: no generator.json of shortcut_nb's "
                             "generators, or method='composite'); on real folders flip the attribute by compositing")
        return _composite(dataset, n, int(seed))
    indices = _draw(np.arange(len(dataset)), dataset.g.numpy(), n, int(seed), "rows")
    images, cfs, regions, y_cf, a_cf = [], [], [], [], []
    for i in indices.tolist():
        r = rendered_counterfactual(dataset, i, record, flip=flip, seed=int(seed))
        images.append(dataset[i]["image"])
        cfs.append(dataset.normalise(image_to_uint8(Image.fromarray(r.image), dataset.image_size)))
        regions.append(mask_to_tensor(Image.fromarray(r.region.astype(np.uint8) * 255), dataset.image_size))
        y_cf.append(r.y)
        a_cf.append(r.a)
    index = torch.as_tensor(indices, dtype=torch.long)
    flipped = Flipped(flip, "render", dataset.y[index], dataset.a[index], torch.tensor(y_cf), torch.tensor(a_cf),
                      torch.stack(regions), torch.full((n,), -1, dtype=torch.long), torch.ones(n))
    return Pairs(torch.stack(images), torch.stack(cfs), index, flipped)


def core_flip_unavailable(dataset: ShortcutDataset) -> str | None:
    """Why ``dataset`` cannot flip its core (the ground truth needs it), or None when it can (the synthetic benchmark).

    Raises:
        FileNotFoundError: a synthetic folder generated before items were recorded (regenerate it).
    """
    if render_record(dataset.root) is not None:
        return None
    return (f"{dataset.root} is not the synthetic benchmark: only its renderer can flip the class-defining object "
            "(the core) with everything else equal, so the counterfactual ground truth (attribute and core flips) "
            "cannot be measured here")


def composite_region(mask: Tensor, partner_mask: Tensor) -> Tensor:
    """The region a composite replaces (module docstring): ``m_i ∩ m_j`` when both are non-empty, else ``m_i ∪ m_j``.

    Args:
        mask, partner_mask: bool (H, W).
    """
    if mask.any() and partner_mask.any():
        return mask & partner_mask
    return mask | partner_mask


def _composite(dataset: ShortcutDataset, n: int, seed: int) -> Pairs:
    if dataset.mask_paths is None:
        raise ValueError(f"compositing needs spurious masks, but {dataset.root} has no mask_filename column (or "
                         "segmentation_dir); only the synthetic benchmark can flip without them")
    with_mask = np.array([p is not None for p in dataset.mask_paths])
    a = dataset.a.numpy()
    eligible = np.flatnonzero(with_mask)
    values = np.unique(a[eligible])
    if len(values) < 2:
        raise ValueError(f"compositing needs rows of two attribute values with masks; this split has only "
                         f"a={values.tolist()}")
    indices = _draw(eligible, dataset.g.numpy()[eligible], n, seed, "rows with a mask")
    rng = np.random.default_rng([seed, 1])
    items: dict[int, dict] = {}

    def item(j: int) -> dict:
        if j not in items:
            items[j] = dataset[j]
        return items[j]

    out = {k: [] for k in ("images", "cfs", "regions", "partners", "a_cf", "coverage")}
    for i in indices.tolist():
        mine = item(i)
        value = rng.choice(values[values != a[i]])
        candidates = eligible[a[eligible] == value]
        drawn = rng.choice(candidates, size=min(PARTNER_CANDIDATES, len(candidates)), replace=False).tolist()
        masks = [item(j)["mask"] for j in drawn]
        if mine["mask"].any():
            best = int(np.argmax([int((mine["mask"] & m).sum()) for m in masks]))
        else:  # adding the partner's spurious region: prefer a partner that has one
            best = next((k for k, m in enumerate(masks) if m.any()), 0)
        j, partner_mask = drawn[best], masks[best]
        region = composite_region(mine["mask"], partner_mask)
        union = int((mine["mask"] | partner_mask).sum())
        out["images"].append(mine["image"])
        out["cfs"].append(torch.where(region, item(j)["image"], mine["image"]))
        out["regions"].append(region)
        out["partners"].append(j)
        out["a_cf"].append(int(a[j]))
        out["coverage"].append(float(region.sum()) / union if union else 0.0)
    index = torch.as_tensor(indices, dtype=torch.long)
    y = dataset.y[index]
    flipped = Flipped("attribute", "composite", y, dataset.a[index], y.clone(), torch.tensor(out["a_cf"]),
                      torch.stack(out["regions"]), torch.tensor(out["partners"]), torch.tensor(out["coverage"]))
    return Pairs(torch.stack(out["images"]), torch.stack(out["cfs"]), index, flipped)
