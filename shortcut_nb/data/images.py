"""Image files as a viewer shows them, and the signs that a file is corrupt: the one place images are opened.

:func:`open_rgb` turns every mode PIL reads into the RGB a viewer shows: EXIF orientation applied, 16-bit
greyscale scaled to 8 bits (PIL's own ``convert("RGB")`` clips it, so most 16-bit images come out white),
palette and alpha images composited over white (a browser or image viewer on a white page shows a transparent
pixel as white; PIL's ``convert("RGB")`` would show the colour stored under it, often black), CMYK converted
by PIL (Adobe's inverted CMYK JPEGs are handled when opened). :func:`open_mask` reads a mask the same way, as
greyscale. :func:`image_problems` lists what makes a file unusable: a decoder error or warning, a failed
``verify()``, a JPEG whose marker structure is broken (PIL's JPEG decoder silently fills or skips corrupt scan
data), or pixels that are (nearly) uniform.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: 16-bit integer modes PIL opens greyscale PNGs and TIFFs in; their values span 0..65535
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
#: a decoded image whose RGB values have a smaller standard deviation (0..255 scale) is reported as uniform
UNIFORM_STD = 1.0
#: what transparent pixels are composited over (what a viewer on a white page shows)
BACKGROUND = (255, 255, 255)


class ImageDecodeError(ValueError):
    """An image's pixels cannot be read as a viewer would show them (the message names the file)."""


def _to_8bit(image: Image.Image, path: str | os.PathLike) -> Image.Image:
    """16-bit integer greyscale -> 8-bit ``L`` (v / 257, rounded); other modes unchanged; float refused."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        raise ImageDecodeError(f"{path}: a floating-point image (PIL mode F) has no fixed value range: save it as "
                               "an 8- or 16-bit image")
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """An image with transparency (palette with a transparent index, LA, RGBA, PA) composited over white."""
    if (image.mode == "P" and "transparency" in image.info) or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGBA", image.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image


def _open(path: str | os.PathLike) -> Image.Image:
    """The decoded image of ``path``, upright (EXIF orientation applied), 16-bit scaled to 8-bit."""
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
    return _to_8bit(upright, path)


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """``path`` as the RGB image a viewer shows (see the module docstring).

    Raises:
        OSError, SyntaxError, ValueError: PIL's errors for a truncated or foreign file; :class:`ImageDecodeError`
            for a floating-point image.
    """
    return _flatten(_open(path)).convert("RGB")


def open_mask(path: str | os.PathLike) -> Image.Image:
    """``path`` as a greyscale (``L``) mask, upright and 8-bit like :func:`open_rgb`'s images (no compositing: a
    mask's transparency says nothing about the spurious region)."""
    return _open(path).convert("L")


def jpeg_structure_problem(data: bytes) -> str | None:
    """What is wrong with a JPEG's marker structure (None when nothing is).

    Walks the segments and each scan's entropy-coded data: inside a scan only stuffed ``FF 00``, fill bytes and
    restart markers in the order RST0..RST7 may appear; a sequential image's one full scan must run to the
    end-of-image marker, and that marker must end the file (or be followed by a second image). PIL's decoder
    (libjpeg) decodes a scan cut short by a stray marker silently, as garbage or grey; a bit flip that keeps the
    markers intact is not found here. (PIL reads truncated files as errors unless
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set; this package never sets it.)
    """
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return "no JPEG start-of-image marker"
    i, restart_interval, frame_components, progressive = 2, 0, 0, False
    while i < n:
        if data[i] != 0xFF:
            return f"byte {i}: found {data[i]:#04x} where a marker was due (corrupt data between segments)"
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker, i = data[i], i + 1
        if marker == 0xD9:
            trailer = data[i:]
            if trailer.rstrip(b"\x00").endswith(b"\xff\xd9") and not trailer.startswith(b"\xff\xd8"):
                return (f"byte {i - 2}: an end-of-image marker {len(trailer)} bytes before the file's end (a marker "
                        "inside the scan data: corrupt scan data)")
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker < 0xC0:
            return f"byte {i - 2}: invalid marker FF {marker:02X} (corrupt scan data)"
        if i + 2 > n:
            return "the file ends inside a segment header (truncated)"
        length = int.from_bytes(data[i:i + 2], "big")
        if length < 2 or i + length > n:
            return f"byte {i - 2}: segment FF {marker:02X} of length {length} does not fit the file (corrupt or truncated)"
        if marker == 0xDD and length >= 4:
            restart_interval = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF) and length >= 8:
            frame_components, progressive = data[i + 7], marker in (0xC2, 0xC6, 0xCA, 0xCE)
        full_scan = marker == 0xDA and length >= 3 and data[i + 2] == frame_components and not progressive
        i += length
        if marker != 0xDA:
            continue
        expected = 0
        while True:  # the scan's entropy-coded data, up to the marker that ends it
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return "the scan data runs to the end of the file: no end-of-image marker (truncated)"
            follower = data[j + 1]
            if follower in (0x00, 0xFF):
                i = j + (2 if follower == 0x00 else 1)
                continue
            if 0xD0 <= follower <= 0xD7:
                if restart_interval == 0 or follower - 0xD0 != expected:
                    return (f"byte {j}: restart marker RST{follower - 0xD0} out of order (expected "
                            f"{'none' if restart_interval == 0 else f'RST{expected}'}; corrupt scan data)")
                expected, i = (expected + 1) % 8, j + 2
                continue
            if full_scan and follower not in (0xD9, 0xDC):
                return (f"byte {j}: marker FF {follower:02X} inside the scan data (the image's one scan must run to "
                        "the end-of-image marker: corrupt scan data)")
            i = j
            break
    return "no end-of-image marker (truncated)"


def image_problems(path: str | os.PathLike) -> tuple[tuple[int, int] | None, list[str]]:
    """``(width, height)`` of ``path`` as :func:`open_rgb` shows it (None when it cannot be decoded) and what is
    wrong with it: a decoder error, a decoder warning, a failed ``verify()``, a broken JPEG structure, or
    (nearly) uniform pixels (standard deviation below :data:`UNIFORM_STD`)."""
    path = Path(path)
    problems: list[str] = []
    try:
        with Image.open(path) as image:
            image.verify()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rgb = open_rgb(path)
        problems += [f"the decoder warned: {w.message}" for w in caught]
    except Exception as err:  # noqa: BLE001 - any decoder error is the file's problem, reported
        return None, [f"cannot be decoded ({type(err).__name__}: {err})"]
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head == b"\xff\xd8":
        broken = jpeg_structure_problem(path.read_bytes())
        if broken:
            problems.append(f"corrupt JPEG: {broken}")
    std = float(np.asarray(rgb, dtype=np.float32).std())
    if std < UNIFORM_STD:
        problems.append(f"is (nearly) uniform: pixel standard deviation {std:.2f} < {UNIFORM_STD} on 0..255 (a blank "
                        "or failed export?)")
    return rgb.size, problems
