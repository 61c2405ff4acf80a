"""Artifacts: the weights hash that keeps masks from being loaded onto other weights; atomic writes on a full disk."""
from __future__ import annotations

import copy
import errno
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from shortcut_nb import artifacts
from shortcut_nb.artifacts import (atomic_torch_save, atomic_write_bytes, atomic_write_json, load_checkpoint,
                                   stale_temps, temp_path, weights_hash)


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


WRITERS = {"torch": lambda path: atomic_torch_save({"w": torch.zeros(250_000)}, path),  # 1 MB: a real write
           "bytes": lambda path: atomic_write_bytes(path, b"x" * 1_000_000),
           "json": lambda path: atomic_write_json(path, {"x": list(range(100_000))})}


def assert_no_space_and_nothing_left(path: Path, error: pytest.ExceptionInfo) -> None:
    message = str(error.value)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
    assert "no space left on device" in message and str(path) in message and "free there" in message
    assert path.read_bytes() == b"the last good version"  # nothing replaced
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left filling the disk


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("writer", WRITERS)
def test_a_full_disk_says_no_space_with_the_path_and_leaves_no_temp_file(tmp_path, writer):
    """A real ENOSPC: the writer's temp file is a link to /dev/full, where every write fails for want of space."""
    path = tmp_path / "runs" / "last.pt"
    path.parent.mkdir()
    path.write_bytes(b"the last good version")
    temp_path(path).symlink_to("/dev/full")
    with pytest.raises(OSError) as error:
        WRITERS[writer](path)
    assert_no_space_and_nothing_left(path, error)


def test_torch_s_own_words_for_a_full_disk_become_no_space_left(tmp_path, monkeypatch):
    """torch.save writing to a path says ``unexpected pos`` on a full disk: the writer says what it means."""
    def half_then_full(obj, handle):
        handle.write(b"PK" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(artifacts.torch, "save", half_then_full)
    path = tmp_path / "final.pt"
    path.write_bytes(b"the last good version")
    with pytest.raises(OSError) as error:
        atomic_torch_save({"w": torch.zeros(3)}, path)
    assert_no_space_and_nothing_left(path, error)
    assert "unexpected pos" in str(error.value.__cause__)  # the original error stays attached


def test_a_failed_write_leaves_no_temp_file_and_other_errors_keep_their_words(tmp_path, monkeypatch):
    def broken(obj, handle):
        handle.write(b"PK")
        raise ValueError("cannot pickle this")

    monkeypatch.setattr(artifacts.torch, "save", broken)
    with pytest.raises(ValueError, match="cannot pickle this"):
        atomic_torch_save({}, tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []


def test_stale_temps_are_the_artifact_s_and_its_companions_not_ours_nor_others(tmp_path):
    weights = tmp_path / "resnet_mini-32px-abc.pth"
    theirs = [temp_path(weights, 11), temp_path(tmp_path / "resnet_mini-32px-abc.head.pth", 12),
              temp_path(tmp_path / "resnet_mini-32px-abc.pth.partial.pt", 13),
              temp_path(tmp_path / "resnet_mini-32px-abc.json", 14)]
    ours = temp_path(weights)
    other_artifact = temp_path(tmp_path / "resnet_mini-32px-abd.pth", 15)
    for temp in [*theirs, ours, other_artifact]:
        temp.write_bytes(b"half")
    assert stale_temps(weights) == sorted(theirs)
    run = tmp_path / "run"
    run.mkdir()
    (run / f".last.pt.tmp-{os.getpid() + 1}").write_bytes(b"half")
    (run / "last.pt").write_bytes(b"whole")
    assert [p.name for p in stale_temps(run, inside=True)] == [f".last.pt.tmp-{os.getpid() + 1}"]
