"""The one place that draws s-score samples: random items of a split that carry a spurious mask.

The paper scores each neuron on 50 random training images (§5.1). An item without a
mask cannot be scored, and an item whose mask is empty (an ISIC-like image without a
colour patch) scores 0 whatever the neuron looks at, so :func:`draw_masked_samples`
keeps only items with a non-empty mask. Every notebook draws through it, so the same
``seed`` scores every model on the same images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskedSamples:
    """Images with their spurious masks, drawn from a split.

    Attributes:
        images: float (N, 3, H, W), normalised as the dataset gives them.
        masks: bool (N, H, W), the spurious region of each image.
        indices: int64 (N,), the items' indices in the split.
    """

    images: Tensor
    masks: Tensor
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def area(self) -> float:
        """The s-score's chance level: the mean over samples of each mask's share of the image's pixels."""
        return float(self.masks.float().mean(dim=(-2, -1)).mean())


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@overload
def sample_for_sscore(dataset: Any, n: int, seed: int, *, return_indices: Literal[False] = ...,
                      nonempty: bool = ..., allow_fewer: bool = ...) -> tuple[Tensor, Tensor]: ...
@overload
def sample_for_sscore(dataset: Any, n: int, seed: int, *, return_indices: Literal[True],
                      nonempty: bool = ..., allow_fewer: bool = ...) -> tuple[Tensor, Tensor, Tensor]: ...
def sample_for_sscore(dataset: Any, n: int, seed: int, *, return_indices: bool = False, nonempty: bool = False,
                      allow_fewer: bool = False) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Draw ``n`` random samples that carry a mask (the paper uses 50 training images, §5.1).

    Items are dicts with ``"image"`` (C, H, W) and ``"mask"`` (H, W); items without a
    mask (missing key or None) are skipped. The draw is a seeded permutation, so the
    same seed gives the same samples.

    Args:
        dataset: a map-style dataset (``len`` and ``[i]``).
        n: number of samples.
        seed: seed of the permutation.
        return_indices: also return the dataset indices drawn.
        nonempty: skip items whose mask has no pixel (ISIC-like images without a patch).
        allow_fewer: return what exists when fewer than ``n`` qualify (at least one) instead of raising.

    Returns:
        ``images`` (n, C, H, W) float, ``masks`` (n, H, W) bool, and with ``return_indices``
        the long tensor (n,) of dataset indices.
    """
    _check_positive("n", n)
    total = len(dataset)
    gen = torch.Generator().manual_seed(int(seed))
    images, masks, picked = [], [], []
    for i in torch.randperm(total, generator=gen).tolist():
        item = dataset[i]
        if not isinstance(item, dict) or "image" not in item:
            raise TypeError(f"dataset items must be dicts with 'image' (and 'mask'), got {type(item).__name__}")
        mask = item.get("mask")
        if mask is None:
            continue
        mask = torch.as_tensor(mask).bool()
        if nonempty and not bool(mask.any()):
            continue
        images.append(torch.as_tensor(item["image"]))
        masks.append(mask)
        picked.append(i)
        if len(picked) == n:
            break
    if not picked and nonempty:
        where = f" ({dataset.root}, split {getattr(dataset, 'split', '?')})" if hasattr(dataset, "root") else ""
        raise ValueError(f"dataset{where} has no item with a non-empty spurious mask: no s-score can be computed; "
                         "expected a mask_filename column in metadata.csv naming binary masks of the spurious region")
    if len(picked) < n and not allow_fewer:
        raise ValueError(f"asked for n={n} samples with masks, but the dataset has only {len(picked)} "
                         f"(of {total} items)")
    out = (torch.stack(images), torch.stack(masks))
    return (*out, torch.tensor(picked)) if return_indices else out


def draw_masked_samples(dataset: Any, n: int, seed: int) -> MaskedSamples:
    """Up to ``n`` random items of ``dataset`` whose spurious mask has at least one pixel.

    Walks a seeded permutation of the dataset and stops once ``n`` are found, so only
    about ``n / (fraction with a mask)`` items are loaded. Fewer than ``n`` are returned
    when fewer exist.

    Args:
        dataset: map-style dataset of dicts with ``image`` (3, H, W) and ``mask`` (H, W).
        n: number of samples wanted (>= 1).
        seed: seed of the permutation (same seed, same samples).

    Returns:
        :class:`MaskedSamples` with ``1 <= len <= n``.

    Raises:
        ValueError: ``n`` not a positive int, or no item with a non-empty mask.
    """
    images, masks, picked = sample_for_sscore(dataset, _check_positive("n", n), seed, return_indices=True,
                                              nonempty=True, allow_fewer=True)
    return MaskedSamples(images=images.float(), masks=masks, indices=picked.numpy().astype(np.int64))
