"""ISIC patch insertion: malignant test images get a benign image's patch, pasted through its mask."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shortcut_nb.data import insert_patches


def test_insert_patches_pastes_masked_region(tiny_isic, tmp_path):
    root = tmp_path / "isic"
    shutil.copytree(tiny_isic, root)
    meta = pd.read_csv(root / "metadata.csv")
    meta = meta[meta["inserted_from"].isna()].drop(columns=["inserted_from"])  # back to a real-ISIC-like folder
    meta.to_csv(root / "metadata.csv", index=False)
    n_malignant_test = int(((meta.split == 2) & (meta.y == 1)).sum())
    added = insert_patches(root, split="test", seed=0)
    assert added == n_malignant_test
    new = pd.read_csv(root / "metadata.csv")
    rows = new[new["inserted_from"].notna()]
    assert (rows.y == 1).all() and (rows.patch == 1).all() and (rows.split == 2).all()
    row = rows.iloc[0]
    mask = np.asarray(Image.open(root / row.mask_filename)) >= 128
    pasted = np.asarray(Image.open(root / row.img_filename).convert("RGB"))
    source = np.asarray(Image.open(root / row.inserted_from).convert("RGB"))
    assert mask.any()
    assert np.array_equal(pasted[mask], source[mask])
    with pytest.raises(ValueError, match="already has inserted patches"):
        insert_patches(root, split="test", seed=0)
