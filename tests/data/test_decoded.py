"""The decoded split: items bit for bit those of decoding the files; decoded once; redone when the folder changes."""
from __future__ import annotations

import pandas as pd
import torch

from shortcut_nb.data import WaterbirdsLikeSettings, generate_waterbirds_like, load_dataset
from shortcut_nb.data import decoded as decoded_module


def _jpeg_folder(tmp_path):
    settings = WaterbirdsLikeSettings(image_size=24, n_train=32, n_val=8, n_test=8, seed=2, file_format="jpeg",
                                      size_jitter=0.3)
    return generate_waterbirds_like(tmp_path / "wb", settings)


def test_items_from_the_decoded_split_equal_decoding_the_files(tmp_path):
    root = _jpeg_folder(tmp_path)
    plain = load_dataset(root, split="train", image_size=20)
    fast = load_dataset(root, split="train", image_size=20, decoded_dir=tmp_path / "decoded")
    assert len(fast) == len(plain) == 32
    for i in range(len(plain)):
        a, b = plain[i], fast[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert (a["y"], a["a"], a["g"], a["has_mask"]) == (b["y"], b["a"], b["g"], b["has_mask"])


def test_a_split_is_decoded_once_and_again_when_metadata_or_size_change(tmp_path, monkeypatch):
    root = _jpeg_folder(tmp_path)
    calls = []
    real = decoded_module.decode_all
    monkeypatch.setattr(decoded_module, "decode_all", lambda ds: calls.append(ds.image_size) or real(ds))
    cache = tmp_path / "decoded"
    load_dataset(root, split="train", image_size=20, decoded_dir=cache)
    load_dataset(root, split="train", image_size=20, decoded_dir=cache)
    assert calls == [20]
    load_dataset(root, split="train", image_size=16, decoded_dir=cache)
    assert calls == [20, 16]
    meta = pd.read_csv(root / "metadata.csv")
    first = meta.index[meta["split"] == 0][0]
    meta.loc[first, "y"] = 1 - meta.loc[first, "y"]
    meta.to_csv(root / "metadata.csv", index=False)
    relabelled = load_dataset(root, split="train", image_size=20, decoded_dir=cache)
    assert calls == [20, 16, 20]
    assert relabelled[0]["y"] == int(meta.loc[first, "y"])


def test_varied_sizes_and_jpeg_are_written_as_asked(tmp_path):
    root = _jpeg_folder(tmp_path)
    meta = pd.read_csv(root / "metadata.csv")
    from PIL import Image

    sizes = {Image.open(root / f).size for f in meta["img_filename"]}
    assert all(f.endswith(".jpg") for f in meta["img_filename"])
    assert len(sizes) > 10 and all(17 <= w <= 31 and 17 <= h <= 31 for w, h in sizes)
    for img, mask in zip(meta["img_filename"][:10], meta["mask_filename"][:10]):
        assert Image.open(root / img).size == Image.open(root / mask).size


def test_png_folders_keep_their_keys_and_the_format_does_not_move_the_content(tmp_path):
    import hashlib
    import json
    from dataclasses import asdict

    from shortcut_nb.data.synthetic import settings_key

    png = WaterbirdsLikeSettings(image_size=16, n_train=24, n_val=8, n_test=8, seed=1)
    # the key folders had before file_format/size_jitter existed
    old = {k: v for k, v in asdict(png).items() if k not in ("file_format", "size_jitter")}
    old_key = hashlib.sha256(json.dumps({"type": "WaterbirdsLikeSettings", **old}, sort_keys=True).encode()).hexdigest()
    assert settings_key(png) == old_key[:12]
    jpeg = WaterbirdsLikeSettings(image_size=16, n_train=24, n_val=8, n_test=8, seed=1, file_format="jpeg",
                                  size_jitter=0.3)
    assert settings_key(jpeg) != settings_key(png)
    a = pd.read_csv(generate_waterbirds_like(tmp_path / "png", png) / "metadata.csv")
    b = pd.read_csv(generate_waterbirds_like(tmp_path / "jpeg", jpeg) / "metadata.csv")
    same = ["y", "split", "place", "place_filename", "shape"]
    assert a[same].equals(b[same])


def test_a_killed_decoders_temp_file_is_removed_by_the_next_decoder(tmp_path):
    """A decoder killed mid-write leaves ``.<file>.tmp-<pid>``; the next process that decodes that split takes the
    file's lock and removes it (a live writer's pid never appears here: it would hold the lock)."""
    import subprocess
    import sys

    from shortcut_nb.artifacts import temp_path

    root, cache = _jpeg_folder(tmp_path), tmp_path / "decoded"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    load_dataset(root, split="val", image_size=20, decoded_dir=cache)  # the name decoded files get
    (written,) = cache.glob("*-val-20px-*.pt")
    written.unlink()
    leftover = temp_path(written, pid=dead_pid)
    leftover.write_bytes(b"half a tensor")
    again = load_dataset(root, split="val", image_size=20, decoded_dir=cache)
    assert written.is_file() and not leftover.exists() and len(again) == 8


def test_an_edited_cub_segmentation_is_decoded_again(tmp_path):
    """Waterbirds' masks come from a folder of CUB segmentations beside the dataset: the decoded cache follows their
    content too."""
    import numpy as np
    from PIL import Image

    root = _jpeg_folder(tmp_path)
    meta = pd.read_csv(root / "metadata.csv")
    seg_root = tmp_path / "segmentations"
    for rel in meta["img_filename"]:
        (seg_root / rel).parent.mkdir(parents=True, exist_ok=True)
        w, h = Image.open(root / rel).size
        Image.fromarray(np.full((h, w), 255, dtype=np.uint8)).save((seg_root / rel).with_suffix(".png"))
    load = dict(split="val", image_size=20, decoded_dir=tmp_path / "decoded", segmentation_dir=seg_root)
    first = load_dataset(root, **load)[0]["mask"]
    assert not first.any()  # the whole image is the bird: no background
    rel = meta.loc[meta["split"] == 1, "img_filename"].iloc[0]
    w, h = Image.open(root / rel).size
    Image.fromarray(np.zeros((h, w), dtype=np.uint8)).save((seg_root / rel).with_suffix(".png"))
    assert load_dataset(root, **load)[0]["mask"].all()  # no bird left: all background, read from the new file
