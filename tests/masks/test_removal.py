"""shortcut_nb.masks.removal: group removal (Fig. 7): D \\ {group}, never touching the removed group."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support.toy_masks import toy_model

from shortcut_nb.masks import exclude_groups, train_group_removal_mask

def test_exclude_groups():
    g = torch.tensor([0, 1, 2, 3, 1, 0])
    assert exclude_groups(g, 1).tolist() == [0, 2, 3, 5]
    assert exclude_groups(np.array([0, 1, 2, 3]), [0, 3]).tolist() == [1, 2]
    with pytest.raises(ValueError, match="groups"):
        exclude_groups(g, "BwP")


class _GroupDataset(torch.utils.data.Dataset):
    """Items of the removed group carry NaN images: if training touched one, the logits would be NaN."""

    def __init__(self, n: int = 48, poison_group: int = 1):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 16, 16, generator=gen)
        self.y = torch.randint(0, 2, (n,), generator=gen)
        a = torch.randint(0, 2, (n,), generator=gen)
        self.g = 2 * self.y + a
        self.x[self.g == poison_group] = float("nan")

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "y": self.y[i], "g": self.g[i]}


def test_group_removal_uses_only_remaining_groups():
    model = toy_model()
    ds = _GroupDataset(poison_group=1)
    assert bool((ds.g == 1).any())
    res = train_group_removal_mask(model, ds, remove_group=1, steps=4, lr=0.2, batch_size=16)
    assert all(bool(torch.isfinite(lg).all()) for lg in res.logits.values())
    assert all(math.isfinite(h["ce"]) for h in res.history)
    assert abs(res.keep_fraction() - 0.8) <= 0.02 and res.settings["removed_groups"] == "1"
    # the same through batches (rows of the group dropped per batch) and a loader factory
    batches = [{"image": ds.x[i : i + 16], "y": ds.y[i : i + 16], "g": ds.g[i : i + 16]} for i in range(0, 48, 16)]
    for source in (batches, lambda: iter(batches)):
        r = train_group_removal_mask(model, source, remove_group=[1], steps=4, lr=0.2)
        assert all(bool(torch.isfinite(lg).all()) for lg in r.logits.values())
    # control: not removing the poisoned group does give NaN
    bad = train_group_removal_mask(model, ds, remove_group=3, steps=2, batch_size=48)
    assert not all(bool(torch.isfinite(lg).all()) for lg in bad.logits.values())


def test_without_a_target_the_penalty_stays_on_and_the_mask_is_the_logits_sign():
    model = toy_model()
    ds = _GroupDataset(poison_group=1)
    # lr 1.0, strong penalty: a target of 0.8 would switch the penalty off within a few steps
    kw = dict(remove_group=1, steps=8, lr=1.0, sparsity_weight=1.0, batch_size=16)
    targeted = train_group_removal_mask(model, ds, **kw)
    assert not all(h["penalty_on"] for h in targeted.history)
    free = train_group_removal_mask(model, ds, keep_fraction=None, **kw)
    assert all(h["penalty_on"] for h in free.history) and free.keep_target is None
    assert free.keep_fraction() == pytest.approx(free.history[-1]["train_keep"], abs=0.02)
    assert free.keep_fraction() < 0.5
