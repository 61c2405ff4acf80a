"""The synthetic benchmark: generators are deterministic, follow Table 1's counts, write the real folder layout;
folders are generated once per settings."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import torch

from shortcut_nb.data import WaterbirdsLikeSettings, ensure_synthetic, generate_waterbirds_like, load_dataset


def test_synthetic_folder_is_generated_once(tmp_path):
    s = WaterbirdsLikeSettings(image_size=8, n_train=16, n_val=8, n_test=8)
    first = ensure_synthetic("waterbirds", s, root=tmp_path)
    stamp = (first / "metadata.csv").stat().st_mtime_ns
    again = ensure_synthetic("waterbirds", s, root=tmp_path)
    assert again == first and (again / "metadata.csv").stat().st_mtime_ns == stamp
    other = ensure_synthetic("waterbirds", WaterbirdsLikeSettings(image_size=8, n_train=16, n_val=8, n_test=8, seed=1), root=tmp_path)
    assert other != first


def _folder_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_waterbirds_generator_is_deterministic(tmp_path):
    s = WaterbirdsLikeSettings(image_size=16, n_train=40, n_val=8, n_test=8, seed=5)
    a = _folder_digest(generate_waterbirds_like(tmp_path / "a", s))
    b = _folder_digest(generate_waterbirds_like(tmp_path / "b", s))
    c = _folder_digest(generate_waterbirds_like(tmp_path / "c", WaterbirdsLikeSettings(image_size=16, n_train=40, n_val=8, n_test=8, seed=6)))
    assert a == b and a != c


@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.05, 0.0])
def test_waterbirds_group_counts_follow_table1(tmp_path, ratio):
    s = WaterbirdsLikeSettings(image_size=8, n_train=400, n_val=16, n_test=16, minority_ratio=ratio)
    root = generate_waterbirds_like(tmp_path / "wb", s)
    counts = load_dataset(root, split="train", image_size=8).group_counts()
    n0, n1 = counts[0] + counts[1], counts[2] + counts[3]
    assert sum(counts) == 400
    assert n0 == round(400 * 3703 / 4795)  # the landbird share of paper Table 1
    assert counts[1] == round(n0 * ratio) and counts[2] == round(n1 * ratio)
    assert load_dataset(root, split="test", image_size=8).group_counts() == [4, 4, 4, 4]
    assert load_dataset(root, split="val", image_size=8).group_counts() == [4, 4, 4, 4]


def test_waterbirds_test_pairs_share_the_foreground(tiny_waterbirds):
    test = load_dataset(tiny_waterbirds, split="test", image_size=16)
    assert test.has_masks
    # consecutive rows are the same object on land (a=0) then on water (a=1)
    for i in range(0, len(test), 2):
        first, second = test[i], test[i + 1]
        assert (first["y"], first["a"], second["y"], second["a"]) == (first["y"], 0, first["y"], 1)
        assert torch.equal(first["mask"], second["mask"])
        fg = ~first["mask"]
        assert torch.equal(first["image"][:, fg], second["image"][:, fg])  # the very same object pixels
        assert not torch.equal(first["image"][:, ~fg], second["image"][:, ~fg])  # on different backgrounds


def test_isic_generator_layout(tiny_isic):
    meta = pd.read_csv(tiny_isic / "metadata.csv")
    train = meta[meta.split == 0]
    assert not ((train.y == 1) & (train.patch == 1)).any()  # no malignant image with a patch in training
    share = train[train.y == 0].patch.mean()
    assert 0.35 < share < 0.6
    test = load_dataset(tiny_isic, split="test", image_size=16)
    assert test.group_counts() == [4, 4, 4, 4]
    for i in range(len(test)):
        item = test[i]
        assert item["mask"].any() == bool(item["a"])  # a patch image has a patch mask, others none
