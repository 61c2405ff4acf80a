"""The generator's per-item records: images unchanged by recording them, and every item re-renders to its file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shortcut_nb.data import ISICLikeSettings, WaterbirdsLikeSettings, generate_isic_like, generate_waterbirds_like
from shortcut_nb.data.synthetic import RENDER_ITEMS, as_written, render_bird_item, render_lesion_item, render_record

# Digests of folders written by the generator *before* it recorded items (metadata.csv bytes, then each PNG's
# path and decoded pixels): recording draws nothing, so the images stay bit-identical.
GOLDEN = {
    "waterbirds": (WaterbirdsLikeSettings(image_size=32, n_train=24, n_val=8, n_test=8, seed=3),
                   "42374adc7e8de4b426a7753f786eac662853b0ae12cf6c10c1922f7d1178809b"),
    "isic": (ISICLikeSettings(image_size=32, n_train=24, n_val=8, n_test=8, seed=4),
             "58409cfe499ddae9352d74c1c4567d562b8ae9b147a091bbfc45f89c6dfe686a"),
}
GENERATE = {"waterbirds": generate_waterbirds_like, "isic": generate_isic_like}


def folder_digest(root: Path) -> str:
    h = hashlib.sha256()
    h.update((root / "metadata.csv").read_bytes())
    for path in sorted(root.rglob("*.png")):
        h.update(str(path.relative_to(root)).encode())
        with Image.open(path) as im:
            h.update(np.asarray(im).tobytes())
    return h.hexdigest()


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_generated_images_are_bit_identical_to_before_the_records(tmp_path, name):
    settings, digest = GOLDEN[name]
    root = GENERATE[name](tmp_path / name, settings)
    assert folder_digest(root) == digest
    assert (root / RENDER_ITEMS).is_file()


def _rerendered(root: Path, settings, row) -> np.ndarray:
    _, items = render_record(root)
    item = items[row.img_filename]
    if "base" in item:
        return None
    if isinstance(settings, WaterbirdsLikeSettings):
        image, _ = render_bird_item(settings, item, place=row.place)
    else:
        image, _, _ = render_lesion_item(settings, item, y=row.y, patch=bool(row.patch))
    size = Image.open(root / row.img_filename).size
    return as_written(settings, image, size)


@pytest.mark.parametrize("settings", [
    WaterbirdsLikeSettings(image_size=24, n_train=12, n_val=4, n_test=4, seed=5),
    ISICLikeSettings(image_size=24, n_train=12, n_val=8, n_test=8, seed=6),
    WaterbirdsLikeSettings(image_size=24, n_train=8, n_val=4, n_test=4, seed=7, file_format="jpeg", size_jitter=0.2),
    ISICLikeSettings(image_size=24, n_train=8, n_val=8, n_test=8, seed=8, file_format="jpeg", size_jitter=0.2),
], ids=["waterbirds", "isic", "waterbirds-jpeg-jitter", "isic-jpeg-jitter"])
def test_every_item_rerenders_to_its_file(tmp_path, settings):
    generate = generate_waterbirds_like if isinstance(settings, WaterbirdsLikeSettings) else generate_isic_like
    root = generate(tmp_path / "folder", settings)
    recorded, items = render_record(root)
    assert recorded == settings
    meta = pd.read_csv(root / "metadata.csv")
    assert set(items) == set(meta["img_filename"])
    checked = 0
    for row in meta.itertuples():
        pixels = _rerendered(root, settings, row)
        if pixels is not None:
            assert np.array_equal(pixels, _rgb(root / row.img_filename)), row.img_filename
            checked += 1
        else:  # an inserted-patch row: its base is the rendered image it was pasted into
            base = items[row.img_filename]["base"]
            pasted = np.asarray(Image.open(root / row.mask_filename)) >= 128
            outside = ~pasted
            assert np.array_equal(_rgb(root / row.img_filename)[outside], _rgb(root / base)[outside])
    assert checked >= 16


def test_a_folder_without_records_is_refused_with_what_to_do(tmp_path):
    root = generate_waterbirds_like(tmp_path / "wb", WaterbirdsLikeSettings(image_size=16, n_train=8, n_val=4,
                                                                          n_test=4, seed=0))
    (root / RENDER_ITEMS).unlink()
    with pytest.raises(FileNotFoundError, match="generate it again"):
        render_record(root)
    (root / "generator.json").write_text(json.dumps({"generator": "SomethingElse"}))
    assert render_record(root) is None
