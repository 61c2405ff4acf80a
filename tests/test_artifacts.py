"""Artifacts: the weights hash that keeps masks from being loaded onto other weights."""
from __future__ import annotations

import copy

import torch
from torch import nn

from shortcut_nb.artifacts import atomic_torch_save, load_checkpoint, weights_hash


def test_weights_hash_follows_the_values_not_the_file(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))  # a 0-d buffer too (num_batches_tracked)
    twin = copy.deepcopy(model)
    path = atomic_torch_save({"state": model.state_dict(), "seconds": 1.5}, tmp_path / "a.pt")
    atomic_torch_save({"state": model.state_dict(), "seconds": 9.0}, tmp_path / "b.pt")  # other bytes, same weights
    twin.load_state_dict(load_checkpoint(tmp_path / "b.pt")["state"])
    assert path.read_bytes() != (tmp_path / "b.pt").read_bytes()
    assert weights_hash(twin) == weights_hash(model)
    with torch.no_grad():
        twin[0].weight[0, 0, 0, 0] += 1e-6
    assert weights_hash(twin) != weights_hash(model)
    twin = copy.deepcopy(model)
    twin[1].num_batches_tracked += 1
    assert weights_hash(twin) != weights_hash(model)
