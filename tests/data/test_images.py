"""Images decode to what a viewer shows (each mode against a reference conversion written here with numpy), and a
corrupt or blank image is named by check-data with its file and line."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shortcut_nb.data import load_dataset
from shortcut_nb.data.check import check_folder
from shortcut_nb.data.images import jpeg_structure_problem, open_mask, open_rgb

SIZE = (20, 12)  # (width, height) of the images these tests write


def _pixels(seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(SIZE[1], SIZE[0], channels), dtype=np.uint8)


def _decoded(tmp_path: Path, image: Image.Image, name: str = "image.png", **save) -> np.ndarray:
    path = tmp_path / name
    image.save(path, **save)
    return np.asarray(open_rgb(path))


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    values = np.linspace(0, 65535, SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]).astype(np.uint16)
    reference = np.round(values / 257.0).astype(np.uint8)  # 65535 -> 255, linear
    out = _decoded(tmp_path, Image.fromarray(values))
    assert Image.open(tmp_path / "image.png").mode.startswith("I")
    assert np.array_equal(out, np.repeat(reference[..., None], 3, axis=2))


def test_rgba_and_la_are_composited_over_white(tmp_path):
    rgba = _pixels(1, 4)
    alpha = rgba[..., 3:].astype(np.float64) / 255
    reference = np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    out = _decoded(tmp_path, Image.fromarray(rgba, "RGBA"))
    assert np.abs(out.astype(int) - reference).max() <= 1  # PIL's compositing rounds in 8-bit steps
    la = _pixels(2, 2)
    alpha = la[..., 1:].astype(np.float64) / 255
    grey = np.round(la[..., :1] * alpha + 255 * (1 - alpha))
    out = _decoded(tmp_path, Image.fromarray(la, "LA"), "la.png")
    assert np.abs(out.astype(int) - np.repeat(grey, 3, axis=2)).max() <= 1


def test_a_palette_with_a_transparent_index_shows_white_there(tmp_path):
    index = (np.arange(SIZE[0] * SIZE[1]) % 4).reshape(SIZE[1], SIZE[0]).astype(np.uint8)
    palette = np.array([[0, 0, 0], [200, 10, 10], [10, 200, 10], [10, 10, 200]], dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.reshape(-1).tolist())
    reference = palette[index]
    reference[index == 0] = 255  # index 0 (black in the palette) is transparent
    out = _decoded(tmp_path, image, transparency=0)
    assert np.array_equal(out, reference)


def test_a_cmyk_jpeg_decodes_to_its_rgb(tmp_path):
    cmyk = _pixels(3, 4) // 4 * 4  # coarse values: the JPEG round trip stays close
    cmyk[...] = cmyk.mean(axis=(0, 1), keepdims=True).astype(np.uint8)  # flat colour: no JPEG ringing
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, "CMYK").save(path, quality=100)
    c, m, y, k = (Image.open(path).getpixel((0, 0))[i] / 255 for i in range(4))  # stored values
    reference = np.round(255 * (1 - np.array([c, m, y])) * (1 - k))  # the CMYK -> RGB a viewer applies
    out = np.asarray(open_rgb(path))
    assert np.abs(out.astype(int) - reference).max() <= 1


def test_an_exif_rotated_jpeg_is_shown_upright_and_its_mask_checked_upright(tmp_path):
    stored = _pixels(4)
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates 90 degrees clockwise
    Image.fromarray(stored).save(path, quality=100, exif=exif.tobytes())
    out = np.asarray(open_rgb(path))
    raw = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape == (SIZE[0], SIZE[1], 3)  # width and height swapped
    assert np.array_equal(out, np.rot90(raw, k=-1))  # rotated clockwise, as a viewer shows it
    mask_path = tmp_path / "mask.png"
    Image.fromarray(np.zeros((SIZE[0], SIZE[1]), dtype=np.uint8)).save(mask_path)  # drawn on the upright image
    assert open_mask(mask_path).size == open_rgb(path).size


def _folder(tmp_path: Path, tiny_waterbirds: Path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "wb"
    shutil.copytree(tiny_waterbirds, root)
    return root, pd.read_csv(root / "metadata.csv")


def test_the_dataset_serves_a_16_bit_image_as_its_8_bit_values(tmp_path, tiny_waterbirds):
    root, meta = _folder(tmp_path, tiny_waterbirds)
    row = int(meta.index[meta["split"] == 0][0])
    path = root / meta.loc[row, "img_filename"]
    grey = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(path)
    ds = load_dataset(root, split="train", image_size=16)
    image, _ = ds.decode(0)
    assert np.array_equal(image[0].numpy(), grey // 257)  # was all 255 (white)
    assert check_folder(root) == []


def _corrupt_scan(data: bytes) -> bytes:
    """A JPEG whose headers are intact and whose scan data has a run of garbage in the middle."""
    start = data.index(b"\xff\xda") + 20
    middle = start + (len(data) - start) // 2
    garbage = bytes([0x5A, 0xFF, 0xE4, 0x12] * 8)  # a stray marker: libjpeg ends the scan early, silently
    return data[:middle] + garbage + data[middle + len(garbage):]


def test_a_jpeg_with_corrupt_scan_data_is_named_by_check_data(tmp_path, tiny_waterbirds):
    root, meta = _folder(tmp_path, tiny_waterbirds)
    row = int(meta.index[meta["split"] == 2][0])
    png = root / meta.loc[row, "img_filename"]
    buffer = io.BytesIO()
    Image.open(png).convert("RGB").resize((96, 96)).save(buffer, format="JPEG", quality=95)
    assert jpeg_structure_problem(buffer.getvalue()) is None
    jpeg = png.with_suffix(".jpg")
    jpeg.write_bytes(_corrupt_scan(buffer.getvalue()))
    Image.open(jpeg).load()  # PIL decodes it without a word: the garbage would reach training
    meta.loc[row, "img_filename"] = str(jpeg.relative_to(root))
    mask = root / meta.loc[row, "mask_filename"]
    Image.open(mask).resize((96, 96)).save(mask)
    meta.to_csv(root / "metadata.csv", index=False)
    problems = [str(p) for p in check_folder(root)]
    assert len(problems) == 1 and f"{jpeg}, line {row + 2}: corrupt JPEG" in problems[0], problems


def test_a_truncated_jpeg_is_refused_not_filled_with_grey(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_pixels(5)).resize((64, 64)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(OSError, match="truncated"):
        open_rgb(path)
    assert "truncated" in jpeg_structure_problem(path.read_bytes())


def test_a_uniform_image_is_named_by_check_data(tmp_path, tiny_waterbirds):
    root, meta = _folder(tmp_path, tiny_waterbirds)
    row = int(meta.index[meta["split"] == 1][0])
    path = root / meta.loc[row, "img_filename"]
    Image.new("RGB", Image.open(path).size, (90, 90, 90)).save(path)
    problems = [str(p) for p in check_folder(root)]
    assert problems == [f"{path}, line {row + 2}: is (nearly) uniform: pixel standard deviation 0.00 < 1.0 on 0..255 "
                        "(a blank or failed export?)"]


def test_sound_jpegs_have_no_structure_problem(tmp_path):
    """Baseline, progressive, greyscale and restart-marked JPEGs, and a generated JPEG folder, pass."""
    from shortcut_nb.data import WaterbirdsLikeSettings, generate_waterbirds_like

    image = Image.fromarray(_pixels(6)).resize((64, 48))
    for options in ({}, {"progressive": True}, {"restart_marker_blocks": 2}):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", **options)
        assert jpeg_structure_problem(buffer.getvalue()) is None, options
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format="JPEG")
    assert jpeg_structure_problem(buffer.getvalue()) is None
    root = generate_waterbirds_like(tmp_path / "jpeg", WaterbirdsLikeSettings(
        image_size=24, n_train=16, n_val=8, n_test=8, seed=4, file_format="jpeg", size_jitter=0.3))
    assert check_folder(root) == []
