"""A split decoded once: uint8 images (and masks) at one size, in one file, instead of JPEG decoding every epoch.

A real Waterbirds folder holds about 11,800 JPEGs of varying size; 100 epochs would decode and resize each
one 100 times. :func:`decoded_split` decodes a split once into ``<cache dir>/<key>.pt`` and loads it from
there afterwards. The key covers what decides the pixels: the folder's content fingerprint (``metadata.csv`` and
every image and mask file's bytes, :func:`~.fingerprint.folder_fingerprint`), the split, the size, the
segmentation folder and the transform; change any (an image edited in place included) and the split is decoded
again.
Items built from it are bit for bit those of decoding the files (:func:`~.transforms.normalise_uint8`).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..artifacts import atomic_torch_save, load_checkpoint
from ..locks import artifact_lock
from .fingerprint import file_sha256, folder_fingerprint
from .transforms import TRANSFORM_ID

if TYPE_CHECKING:
    from .folder import ShortcutDataset

DECODED_FORMAT = 1


@dataclass(frozen=True)
class DecodedSplit:
    """A split's pixels: ``images`` uint8 (N, 3, S, S); ``masks`` bool (N, S, S) and ``has_mask`` bool (N,), or None."""

    images: torch.Tensor
    masks: torch.Tensor | None
    has_mask: torch.Tensor | None


def _segmentations(dataset: "ShortcutDataset") -> str:
    """The content of a Waterbirds split's CUB segmentations (a folder of their own, outside the dataset's)."""
    if dataset.segmentation_dir is None:
        return "none"
    return hashlib.sha256("\n".join(file_sha256(p) for p in dataset.mask_paths).encode()).hexdigest()


def decoded_key(dataset: "ShortcutDataset") -> str:
    """What decides a split's decoded pixels, hashed: the folder's content, the split, the size, the content of
    its segmentations (when they come from another folder) and the decoder."""
    parts = [f"v{DECODED_FORMAT}", "content", folder_fingerprint(dataset.root), dataset.split, str(dataset.image_size),
             _segmentations(dataset), TRANSFORM_ID]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def decode_all(dataset: "ShortcutDataset") -> DecodedSplit:
    """Decode every image (and mask) of ``dataset`` at its size."""
    n, size = len(dataset), dataset.image_size
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.bool) if dataset.has_masks else None
    has_mask = torch.zeros(n, dtype=torch.bool) if dataset.has_masks else None
    for i in range(n):
        image, mask = dataset.decode(i)
        images[i] = image
        if masks is not None and mask is not None:
            masks[i], has_mask[i] = mask, True
    return DecodedSplit(images, masks, has_mask)


def _stored(path: Path, n: int) -> DecodedSplit | None:
    if path.is_file():
        state = load_checkpoint(path)
        if state.get("format") == DECODED_FORMAT and int(state["images"].shape[0]) == n:
            return DecodedSplit(state["images"], state["masks"], state["has_mask"])
    return None


def decoded_split(dataset: "ShortcutDataset", cache_dir: str | os.PathLike) -> DecodedSplit:
    """``dataset``'s pixels from ``cache_dir``, decoded and written there (atomically, under the file's lock, which
    also clears what a killed decoder left) the first time; a finished file is read without the lock (a read-only
    runs root serves it)."""
    path = Path(cache_dir) / f"{dataset.kind}-{dataset.split}-{dataset.image_size}px-{decoded_key(dataset)}.pt"
    split = _stored(path, len(dataset))
    if split is not None:
        return split
    path.parent.mkdir(parents=True, exist_ok=True)
    with artifact_lock(path):
        split = _stored(path, len(dataset))  # another process may have decoded it while this one waited
        if split is None:
            split = decode_all(dataset)
            atomic_torch_save({"format": DECODED_FORMAT, "images": split.images, "masks": split.masks,
                               "has_mask": split.has_mask}, path)
    return split
