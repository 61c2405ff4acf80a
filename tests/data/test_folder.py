"""Loaders on real-format folders the tests write (group_DRO Waterbirds layout), group balancing, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from shortcut_nb.data import (
    DatasetFormatError,
    group_balanced_indices,
    load_dataset,
)
from shortcut_nb.data.samples import draw_masked_samples
from shortcut_nb.data.transforms import IMAGENET_MEAN, IMAGENET_STD

GROUP_DRO_COLUMNS = ["img_id", "img_filename", "y", "split", "place", "place_filename"]


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_group_dro_folder(root: Path, *, size=(12, 10), with_masks=False) -> pd.DataFrame:
    """A folder exactly as group_DRO publishes Waterbirds: its metadata.csv columns, CUB-style paths."""
    rows = []
    rng = np.random.default_rng(0)
    for i, (y, split, place) in enumerate([(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (0, 1, 0), (1, 2, 1), (1, 2, 0)]):
        rel = f"{'001.Black_footed_Albatross' if y else '002.Laysan_Albatross'}/img_{i}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / rel, format="JPEG")
        rows.append({"img_id": i + 1, "img_filename": rel, "y": y, "split": split, "place": place,
                     "place_filename": f"/o/ocean/{i:08d}.jpg" if place else f"/b/bamboo_forest/{i:08d}.jpg"})
    df = pd.DataFrame(rows, columns=GROUP_DRO_COLUMNS)
    if with_masks:
        masks = []
        for i, rel in enumerate(df["img_filename"]):
            mask = np.zeros((size[1], size[0]), dtype=np.uint8)
            mask[:, : size[0] // 2] = 255
            mrel = f"masks/{i}.png"
            _png(root / mrel, mask)
            masks.append(mrel)
        df["mask_filename"] = masks
    df.to_csv(root / "metadata.csv", index=False)
    return df


def test_group_dro_waterbirds_folder_loads_unchanged(tmp_path):
    write_group_dro_folder(tmp_path)
    train = load_dataset(tmp_path, split="train", image_size=8)
    assert len(train) == 4 and train.kind == "waterbirds"
    assert train.group_counts() == [1, 1, 1, 1]
    item = train[3]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert (item["y"], item["a"], item["g"]) == (1, 1, 3)
    assert "mask" not in item
    assert len(load_dataset(tmp_path, split="val", image_size=8)) == 1
    assert load_dataset(tmp_path, split="test", image_size=8).group_counts() == [0, 0, 1, 1]


def test_images_are_imagenet_normalised(tmp_path):
    write_group_dro_folder(tmp_path)
    ds = load_dataset(tmp_path, split="train", image_size=10)
    raw = np.asarray(Image.open(tmp_path / ds.meta["img_filename"][0]).convert("RGB").resize((10, 10), Image.BILINEAR))
    expected = (torch.from_numpy(raw / 255.0).permute(2, 0, 1).float() - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(ds[0]["image"], expected, atol=1e-5)


def test_mask_column_gives_resized_bool_mask(tmp_path):
    write_group_dro_folder(tmp_path, with_masks=True)
    item = load_dataset(tmp_path, split="train", image_size=8)[0]
    assert item["mask"].dtype == torch.bool and item["mask"].shape == (8, 8)
    assert item["mask"][:, :4].all() and not item["mask"][:, 4:].any()


def test_cub_segmentations_give_background_mask(tmp_path):
    df = write_group_dro_folder(tmp_path / "wb", size=(8, 8))
    seg_root = tmp_path / "segmentations"
    for rel in df["img_filename"]:
        seg = np.zeros((8, 8), dtype=np.uint8)
        seg[2:6, 2:6] = 255  # the bird
        _png(seg_root / Path(rel).with_suffix(".png"), seg)
    item = load_dataset(tmp_path / "wb", split="train", image_size=8, segmentation_dir=seg_root)[0]
    assert not item["mask"][2:6, 2:6].any()  # the bird is not spurious
    assert item["mask"].sum() == 64 - 16


def test_missing_image_file_is_named(tmp_path):
    df = write_group_dro_folder(tmp_path)
    (tmp_path / df["img_filename"][1]).unlink()
    with pytest.raises(FileNotFoundError, match=r"row 3.*img_1\.jpg"):
        load_dataset(tmp_path, split="train")


def test_missing_metadata_column_is_named(tmp_path):
    df = write_group_dro_folder(tmp_path)
    df.drop(columns=["split"]).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match="missing column 'split'"):
        load_dataset(tmp_path, split="train")
    df.drop(columns=["place"]).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match="'place'.*'patch'"):
        load_dataset(tmp_path, split="train")


def test_unknown_split_code_is_named(tmp_path):
    df = write_group_dro_folder(tmp_path)
    df.loc[2, "split"] = 7
    df.to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match=r"row 4.*'split'.*7.*0 train, 1 val, 2 test"):
        load_dataset(tmp_path, split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset(tmp_path, split="validation")  # type: ignore[arg-type]


def test_mask_of_wrong_size_is_named(tmp_path):
    write_group_dro_folder(tmp_path, with_masks=True)
    _png(tmp_path / "masks/0.png", np.zeros((5, 5), dtype=np.uint8))
    ds = load_dataset(tmp_path, split="train", image_size=8)
    with pytest.raises(DatasetFormatError, match=r"masks/0\.png is 5x5 but its image .* is 12x10"):
        ds[0]


def test_paths_from_metadata_stay_inside_the_folder(tmp_path):
    df = write_group_dro_folder(tmp_path / "wb")
    df.loc[0, "img_filename"] = "../outside.png"
    _png(tmp_path / "outside.png", np.zeros((4, 4, 3), dtype=np.uint8))
    df.to_csv(tmp_path / "wb" / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match="outside the dataset folder"):
        load_dataset(tmp_path / "wb", split="train")


def test_group_balancing_and_empty_group():
    g = np.array([0] * 10 + [1] * 3 + [2] * 5 + [3] * 7)
    idx = group_balanced_indices(g, seed=0)
    assert np.bincount(g[idx]).tolist() == [3, 3, 3, 3]
    assert len(set(idx)) == len(idx)
    assert np.array_equal(idx, group_balanced_indices(g, seed=0))
    with pytest.raises(ValueError, match=r"group\(s\) \[2\] are empty"):
        group_balanced_indices(np.array([0, 1, 3, 3]), seed=0)


def test_sscore_draw_on_a_folder_without_masks_names_the_folder(tmp_path):
    write_group_dro_folder(tmp_path, with_masks=False)
    train = load_dataset(tmp_path, split="train", image_size=8)
    with pytest.raises(ValueError, match=f"{tmp_path}.*split train.*expected a mask_filename column"):
        draw_masked_samples(train, 4, seed=0)

