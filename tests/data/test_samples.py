"""The one draw of s-score samples: seeded, masked items only (non-empty masks for draw_masked_samples)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb.data.samples import MaskedSamples, draw_masked_samples, sample_for_sscore


def _items(n: int = 12) -> list[dict]:
    items = []
    for i in range(n):
        item = {"image": torch.full((3, 8, 8), float(i)), "y": torch.tensor(0)}
        if i % 3:  # every third item has no mask
            item["mask"] = torch.rand(8, 8) > 0.5
        items.append(item)
    return items


def test_sample_for_sscore_picks_masked_items_reproducibly() -> None:
    items = _items()
    images, masks, idx = sample_for_sscore(items, 5, seed=3, return_indices=True)
    assert images.shape == (5, 3, 8, 8) and masks.shape == (5, 8, 8) and masks.dtype == torch.bool
    assert all(i % 3 for i in idx.tolist()) and len(set(idx.tolist())) == 5
    assert torch.equal(images[:, 0, 0, 0], idx.float())
    assert torch.equal(masks[0], items[int(idx[0])]["mask"])
    again_images, _ = sample_for_sscore(items, 5, seed=3)
    assert torch.equal(again_images, images)
    other = sample_for_sscore(items, 5, seed=4, return_indices=True)[2]
    assert other.tolist() != idx.tolist()
    with pytest.raises(ValueError, match="only 8"):
        sample_for_sscore(items, 9, seed=0)


def test_the_draw_follows_the_seeded_permutation() -> None:
    items = _items()
    idx = sample_for_sscore(items, 4, seed=7, return_indices=True)[2].tolist()
    order = [i for i in torch.randperm(12, generator=torch.Generator().manual_seed(7)).tolist() if i % 3]
    assert idx == order[:4]


def test_draw_masked_samples_keeps_non_empty_masks_only() -> None:
    items = _items()
    items[1]["mask"] = torch.zeros(8, 8, dtype=torch.bool)  # a mask without a pixel: never drawn
    samples = draw_masked_samples(items, 20, seed=2)  # asks for more than exist: what exists
    assert isinstance(samples, MaskedSamples) and len(samples) == 7
    assert samples.indices.dtype == np.int64 and 1 not in samples.indices.tolist()
    assert sorted(samples.indices.tolist()) == [i for i in range(12) if i % 3 and i != 1]
    assert samples.images.dtype == torch.float32 and samples.masks.dtype == torch.bool
    assert bool(samples.masks.flatten(1).any(1).all())
    assert torch.equal(samples.images[:, 0, 0, 0], torch.from_numpy(samples.indices).float())
    few = draw_masked_samples(items, 3, seed=2)
    assert few.indices.tolist() == samples.indices[:3].tolist()  # the same seed: the same first items
    assert 0.0 < samples.area <= 1.0


def test_draw_masked_samples_errors() -> None:
    with pytest.raises(ValueError, match="positive int"):
        draw_masked_samples(_items(), 0, seed=0)
    empty = [{"image": torch.zeros(3, 4, 4), "mask": torch.zeros(4, 4, dtype=torch.bool)} for _ in range(3)]
    with pytest.raises(ValueError, match="no item with a non-empty spurious mask"):
        draw_masked_samples(empty, 2, seed=0)
    with pytest.raises(TypeError, match="dicts"):
        draw_masked_samples([torch.zeros(3, 4, 4)], 1, seed=0)
