"""A folder's fingerprint follows its content: the same files anywhere (copied, touched) give the same one; an edited
image, mask, row or metadata.json gives another; the decoded cache and a researcher's runs follow it."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from shortcut_nb.data import load_dataset
from shortcut_nb.data.fingerprint import folder_fingerprint
from shortcut_nb.pipeline import runs
from shortcut_nb.pipeline.runs import run_dir, run_spec


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst, pd.read_csv(dst / "metadata.csv")


def test_the_same_content_anywhere_has_the_same_fingerprint(tmp_path, tiny_isic):
    a, _ = _copy(tiny_isic, tmp_path / "a")
    b, _ = _copy(tiny_isic, tmp_path / "elsewhere" / "b")
    for path in b.rglob("*"):
        os.utime(path, ns=(1, 1))  # other mtimes, as on another machine
    assert folder_fingerprint(a) == folder_fingerprint(b) == folder_fingerprint(tiny_isic)


def test_an_edited_image_mask_row_or_description_changes_it(tmp_path, tiny_isic):
    root, meta = _copy(tiny_isic, tmp_path / "isic")
    seen = {folder_fingerprint(root)}
    image = root / meta.loc[0, "img_filename"]
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(image)  # one pixel, in place
    seen.add(folder_fingerprint(root))
    masked = meta.index[meta["mask_filename"].notna()][0]
    mask = root / meta.loc[masked, "mask_filename"]
    Image.fromarray(255 - np.asarray(Image.open(mask))).save(mask)
    seen.add(folder_fingerprint(root))
    meta.loc[1, "y"] = 1 - meta.loc[1, "y"]
    meta.to_csv(root / "metadata.csv", index=False)
    seen.add(folder_fingerprint(root))
    (root / "metadata.json").write_text('{"classes": ["benign", "malignant"]}')
    seen.add(folder_fingerprint(root))
    assert len(seen) == 5


def test_an_image_replaced_in_place_is_decoded_again(tmp_path, tiny_isic):
    """metadata.csv unchanged, one training image replaced: the decoded cache serves the new pixels."""
    root, meta = _copy(tiny_isic, tmp_path / "isic")
    cache = tmp_path / "decoded"
    before = load_dataset(root, split="train", image_size=16, decoded_dir=cache)
    first = root / meta.loc[int(np.flatnonzero(meta["split"] == 0)[0]), "img_filename"]
    Image.fromarray(255 - np.asarray(Image.open(first).convert("RGB"))).save(first)
    after = load_dataset(root, split="train", image_size=16, decoded_dir=cache)
    fresh = load_dataset(root, split="train", image_size=16)
    assert torch.equal(after[0]["image"], fresh[0]["image"])
    assert not torch.equal(after[0]["image"], before[0]["image"])


def test_a_researchers_run_is_keyed_by_the_folders_content(tmp_path, tiny_isic, monkeypatch):
    """An edited image trains anew (a new run folder); an untouched copy elsewhere with the same content is the same
    data; the synthetic benchmark keeps its settings key."""
    root, meta = _copy(tiny_isic, tmp_path / "isic")
    spec = run_spec("smoke", "isic", folder=root)
    before = run_dir(spec, root=tmp_path / "runs")
    assert run_dir(spec, root=tmp_path / "runs") == before
    image = root / meta.loc[2, "img_filename"]
    Image.fromarray(255 - np.asarray(Image.open(image).convert("RGB"))).save(image)
    assert run_dir(spec, root=tmp_path / "runs") != before
    monkeypatch.setattr(runs, "folder_fingerprint", lambda folder: pytest.fail("the synthetic key reads no file"))
    run_dir(run_spec("smoke", "isic"), root=tmp_path / "runs")  # its names are pinned in tests/pipeline/test_runs.py
