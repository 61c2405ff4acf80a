"""Feature extraction and its disk cache: values equal f_enc's output, hits compute nothing, any change of
weights, folder, split or image size recomputes, two processes sharing a cache extract each entry once."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset, Subset

from shortcut_nb.config import seed_everything
from shortcut_nb.data import load_dataset
from shortcut_nb.pipeline.feature_cache import (
    dataset_fingerprint,
    extract_features,
    feature_path,
    is_cached,
    model_fingerprint,
)
from shortcut_nb.models import build_model



@pytest.fixture(scope="module")
def cnn():
    seed_everything(0)
    return build_model("resnet_mini", image_size=16).eval()


@pytest.fixture()
def train16(tiny_waterbirds):
    return load_dataset(tiny_waterbirds, split="train", image_size=16)


class ForwardCounter:
    """Counts images that go through an encoder (a forward hook)."""

    def __init__(self, module: torch.nn.Module):
        self.images = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.images += inputs[0].shape[0]

    def close(self):
        self.handle.remove()


def test_features_equal_encoder_output_and_labels(cnn, train16, tmp_path):
    feats = extract_features(cnn, train16, cache_dir=tmp_path, batch_size=24, progress_bar=False)
    images = torch.stack([train16[i]["image"] for i in range(len(train16))])
    with torch.no_grad():
        expected = cnn.f_enc(images).numpy()
    assert feats["z"].dtype == np.float32 and feats["z"].shape == (len(train16), cnn.num_features)
    np.testing.assert_allclose(feats["z"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(feats["y"], train16.y.numpy())
    np.testing.assert_array_equal(feats["a"], train16.a.numpy())
    np.testing.assert_array_equal(feats["g"], 2 * feats["y"] + feats["a"])
    np.testing.assert_array_equal(feats["index"], np.arange(len(train16)))
    assert feats["y"].dtype == np.int64 and not feats["from_cache"]


def test_second_call_loads_from_disk_without_a_forward_pass(cnn, train16, tmp_path):
    first = extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)
    counter = ForwardCounter(cnn.f_enc)
    try:
        second = extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)
    finally:
        counter.close()
    assert counter.images == 0
    assert second["from_cache"] and second["key"] == first["key"] and Path(second["path"]).is_file()
    for name in ("z", "y", "a", "g", "index"):
        np.testing.assert_array_equal(second[name], first[name])
    assert second["extract_seconds"] == pytest.approx(first["extract_seconds"])
    assert is_cached(cnn, train16, cache_dir=tmp_path)


@pytest.mark.parametrize("edit", ["in_place", "data_attribute", "load_state_dict", "buffer"])
def test_changing_the_weights_invalidates(edit, train16, tmp_path):
    model = build_model("resnet_mini", image_size=16).eval()
    before = extract_features(model, train16, cache_dir=tmp_path, progress_bar=False)
    with torch.no_grad():
        if edit == "in_place":
            model.f_enc.layer4[0].downsample[0].weight.mul_(1.5)  # (residual branches end in zero-init BN)
        elif edit == "data_attribute":  # bypasses autograd's version counter: the content hash still sees it
            model.f_enc.conv1.weight.data[0, 0, 0, 0] += 1.0
        elif edit == "load_state_dict":
            other = build_model("resnet_mini", image_size=16)
            model.load_state_dict(other.state_dict())
        else:  # BatchNorm statistics are weights too
            model.f_enc.bn1.running_mean.add_(0.5)
    after = extract_features(model, train16, cache_dir=tmp_path, progress_bar=False)
    assert not after["from_cache"] and after["key"] != before["key"]
    assert not np.allclose(after["z"], before["z"])


def test_checkpoint_file_round_trip_shares_the_key_and_head_is_not_part_of_it(cnn, train16, tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save(cnn.state_dict(), path)
    clone = build_model("resnet_mini", image_size=16, weights_file=path).eval()
    assert model_fingerprint(clone) == model_fingerprint(cnn)
    extract_features(cnn, train16, cache_dir=tmp_path / "c", progress_bar=False)
    with torch.no_grad():
        clone.head.weight.zero_()  # z = f_enc(x) does not depend on the head: a refitted head keeps the features
    assert extract_features(clone, train16, cache_dir=tmp_path / "c", progress_bar=False)["from_cache"]


def test_fingerprint_covers_architecture(train16):
    a = build_model("resnet_mini", image_size=16)
    b = build_model("vit_mini", image_size=16)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert len(model_fingerprint(a)) == 64


def test_split_image_size_folder_and_metadata_change_the_key(cnn, tiny_waterbirds, tmp_path):
    train = load_dataset(tiny_waterbirds, split="train", image_size=16)
    keys = {
        "train16": feature_path(cnn, train, cache_dir=tmp_path),
        "val16": feature_path(cnn, load_dataset(tiny_waterbirds, split="val", image_size=16), cache_dir=tmp_path),
        "train32": feature_path(cnn, load_dataset(tiny_waterbirds, split="train", image_size=32), cache_dir=tmp_path),
    }
    copy = tmp_path / "copy"
    shutil.copytree(tiny_waterbirds, copy)
    keys["copy"] = feature_path(cnn, load_dataset(copy, split="train", image_size=16), cache_dir=tmp_path)
    meta = pd.read_csv(copy / "metadata.csv")
    meta["note"] = "edited"
    meta.to_csv(copy / "metadata.csv", index=False)
    keys["copy_edited"] = feature_path(cnn, load_dataset(copy, split="train", image_size=16), cache_dir=tmp_path)
    assert len(set(keys.values())) == len(keys)
    # the same folder, split and size loaded twice keeps its key
    assert feature_path(cnn, load_dataset(tiny_waterbirds, split="train", image_size=16), cache_dir=tmp_path) == \
        keys["train16"]


def test_subset_has_its_own_key_and_matches_rows_of_the_full_split(cnn, train16, tmp_path):
    full = extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)
    rows = [5, 1, 9, 30]
    sub = extract_features(cnn, Subset(train16, rows), cache_dir=tmp_path, progress_bar=False)
    assert not sub["from_cache"] and sub["key"] != full["key"]
    np.testing.assert_allclose(sub["z"], full["z"][rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sub["index"], rows)
    assert dataset_fingerprint(Subset(train16, rows))["subset"] != dataset_fingerprint(Subset(train16, rows[:3]))["subset"]


class TensorItems(Dataset):
    """A dataset that is not a folder: dict items from tensors."""

    def __init__(self, n=6, size=16):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "y": i % 2, "a": (i // 2) % 2, "g": 2 * (i % 2) + (i // 2) % 2, "index": i}


def test_other_datasets_need_a_key_when_caching(cnn, tmp_path):
    with pytest.raises(TypeError, match="dataset_key"):
        extract_features(cnn, TensorItems(), cache_dir=tmp_path, progress_bar=False)
    uncached = extract_features(cnn, TensorItems(), cache=False, progress_bar=False)
    assert uncached["path"] is None and not uncached["from_cache"] and not list(tmp_path.iterdir())
    keyed = extract_features(cnn, TensorItems(), cache_dir=tmp_path, dataset_key="randn-6", progress_bar=False)
    np.testing.assert_allclose(keyed["z"], uncached["z"], rtol=1e-6, atol=1e-6)
    assert extract_features(cnn, TensorItems(), cache_dir=tmp_path, dataset_key="randn-6", progress_bar=False)["from_cache"]
    assert not extract_features(cnn, TensorItems(), cache_dir=tmp_path, dataset_key="randn-6", key_extra="hooked",
                                progress_bar=False)["from_cache"]


def test_bad_arguments_raise_clear_errors(cnn, train16, tmp_path):
    with pytest.raises(TypeError, match="f_enc"):
        extract_features(torch.nn.Linear(2, 2), train16, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="nn.Module"):
        extract_features("resnet", train16, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(cnn, train16, cache_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        extract_features(cnn, Subset(train16, []), cache=False, progress_bar=False)


def test_mode_is_restored_and_vit_works(train16, tmp_path):
    vit = build_model("vit_mini", image_size=16).train()
    vit.f_enc.blocks[0].eval()  # a mixed mode (e.g. frozen layers) survives extraction
    feats = extract_features(vit, train16, cache_dir=tmp_path, progress_bar=False)
    assert vit.training and vit.f_enc.training and not vit.f_enc.blocks[0].training
    assert vit.f_enc.blocks[1].training
    vit.eval()
    with torch.no_grad():
        expected = vit.f_enc(torch.stack([train16[i]["image"] for i in range(4)])).numpy()
    np.testing.assert_allclose(feats["z"][:4], expected, rtol=1e-5, atol=1e-5)
    assert feats["z"].shape[1] == 128


def test_unreadable_cache_entry_is_recomputed(cnn, train16, tmp_path):
    first = extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)
    Path(first["path"]).write_bytes(b"not an npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)
    assert not again["from_cache"] and any("unreadable feature cache" in str(w.message) for w in caught)
    np.testing.assert_array_equal(again["z"], first["z"])
    assert extract_features(cnn, train16, cache_dir=tmp_path, progress_bar=False)["from_cache"]


def test_default_cache_dir_is_under_the_runs_root(cnn, train16, tmp_path, monkeypatch):
    monkeypatch.setenv("SHORTCUT_NB_RUNS", str(tmp_path / "runs"))
    feats = extract_features(cnn, train16, progress_bar=False)
    assert Path(feats["path"]).parent == tmp_path / "runs" / "features"
    assert Path(feats["path"]).with_suffix(".json").is_file()


def _extract_every_split(model, folder, cache_dir, counter, start):
    """In a forked process: wait for the start, then ask for the features of each split (a slow, counted extraction)."""
    from shortcut_nb.pipeline import feature_cache

    real = feature_cache._compute

    def counted(*args, **kwargs):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the other process asks while this one extracts
        return real(*args, **kwargs)

    feature_cache._compute = counted
    start.wait(timeout=60)
    for split in ("train", "val", "test"):
        extract_features(model, load_dataset(folder, split=split, image_size=16), cache_dir=cache_dir, progress_bar=False)


def test_two_processes_sharing_a_root_extract_each_entry_once(cnn, tiny_waterbirds, tmp_path):
    context = multiprocessing.get_context("fork")
    counter, cache_dir = tmp_path / "extractions", tmp_path / "features"
    start = context.Barrier(2)
    workers = [context.Process(target=_extract_every_split, args=(cnn, tiny_waterbirds, cache_dir, counter, start))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert len(counter.read_text().split()) == 3  # one extraction per split, not one per split and process
    for split in ("train", "val", "test"):
        assert is_cached(cnn, load_dataset(tiny_waterbirds, split=split, image_size=16), cache_dir=cache_dir)
