"""Drawing primitives for the synthetic benchmark: shapes, textures, lesions, colour patches.

Everything takes an explicit ``numpy.random.Generator`` so one seed fixes every pixel.
Images are float arrays (H, W, 3) in [0, 1]; masks are bool arrays (H, W).
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("triangle", "square", "pentagon", "hexagon", "star", "circle", "cross", "crescent", "ring", "arrow")
TEXTURES = ("blobs", "waves", "vstripes", "dstripes", "checker", "dots", "noise", "grid")


def _polygon(n: int, cx: float, cy: float, r: float, rot: float, *, star: bool = False) -> list[tuple[float, float]]:
    pts = []
    count = 2 * n if star else n
    for k in range(count):
        radius = r * (0.45 if (star and k % 2) else 1.0)
        ang = rot + 2 * math.pi * k / count
        pts.append((cx + radius * math.cos(ang), cy + radius * math.sin(ang)))
    return pts


def shape_mask(kind: str, size: int, *, cx: float, cy: float, radius: float, rotation: float, supersample: int = 4) -> np.ndarray:
    """Binary mask (size, size) of a filled shape centred at (cx, cy) (pixels), anti-aliased then thresholded."""
    s = supersample
    canvas = Image.new("L", (size * s, size * s), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = cx * s, cy * s, radius * s
    if kind == "triangle":
        draw.polygon(_polygon(3, cx, cy, r, rotation), fill=255)
    elif kind == "square":
        draw.polygon(_polygon(4, cx, cy, r, rotation), fill=255)
    elif kind == "pentagon":
        draw.polygon(_polygon(5, cx, cy, r, rotation), fill=255)
    elif kind == "hexagon":
        draw.polygon(_polygon(6, cx, cy, r, rotation), fill=255)
    elif kind == "star":
        draw.polygon(_polygon(5, cx, cy, r, rotation, star=True), fill=255)
    elif kind == "circle":
        draw.ellipse([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=255)
    elif kind == "cross":
        w = r * 0.35
        for ang in (rotation, rotation + math.pi / 2):
            dx, dy = math.cos(ang), math.sin(ang)
            px, py = -dy * w, dx * w
            draw.polygon([(cx - dx * r + px, cy - dy * r + py), (cx + dx * r + px, cy + dy * r + py),
                          (cx + dx * r - px, cy + dy * r - py), (cx - dx * r - px, cy - dy * r - py)], fill=255)
    elif kind == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = cx + 0.45 * r * math.cos(rotation), cy + 0.45 * r * math.sin(rotation)
        draw.ellipse([ox - 0.8 * r, oy - 0.8 * r, ox + 0.8 * r, oy + 0.8 * r], fill=0)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    elif kind == "arrow":
        head = _polygon(3, cx + 0.3 * r * math.cos(rotation), cy + 0.3 * r * math.sin(rotation), 0.7 * r, rotation)
        draw.polygon(head, fill=255)
        dx, dy = math.cos(rotation), math.sin(rotation)
        px, py = -dy * r * 0.2, dx * r * 0.2
        draw.polygon([(cx - dx * r + px, cy - dy * r + py), (cx + px, cy + py), (cx - px, cy - py),
                      (cx - dx * r - px, cy - dy * r - py)], fill=255)
    else:
        raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")
    small = canvas.resize((size, size), Image.BILINEAR)
    return np.asarray(small) >= 128


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def texture(kind: str, size: int, rng: np.random.Generator, colors: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A (size, size, 3) texture mixing two colours with a pattern of the given kind."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    freq = rng.uniform(3, 7)
    phase = rng.uniform(0, 2 * math.pi)
    if kind == "blobs":
        t = _smooth_noise(rng, size, int(rng.integers(3, 6)))
    elif kind == "waves":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * yy + phase + 0.6 * np.sin(2 * math.pi * 2 * xx + phase))
    elif kind == "vstripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * xx + phase)
    elif kind == "dstripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx + yy) + phase)
    elif kind == "checker":
        t = ((np.floor(xx * freq + phase) + np.floor(yy * freq)) % 2).astype(np.float32)
    elif kind == "dots":
        t = ((np.sin(2 * math.pi * freq * xx + phase) * np.sin(2 * math.pi * freq * yy + phase)) > 0.5).astype(np.float32)
    elif kind == "noise":
        t = rng.random((size, size)).astype(np.float32)
    elif kind == "grid":
        t = ((np.abs(np.sin(math.pi * freq * xx + phase)) < 0.2) | (np.abs(np.sin(math.pi * freq * yy)) < 0.2)).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {kind!r}; expected one of {TEXTURES}")
    c0, c1 = colors
    return (1 - t)[..., None] * c0 + t[..., None] * c1


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), dtype=np.float32)


def random_palette(rng: np.random.Generator, hue: float | None = None, hue_jitter: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    h = rng.random() if hue is None else hue + rng.uniform(-hue_jitter, hue_jitter)
    return (hsv(h, rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)), hsv(h + rng.uniform(-0.08, 0.08), rng.uniform(0.2, 0.9), rng.uniform(0.4, 1.0)))


def composite(background: np.ndarray, foreground_color: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              shading: float = 0.15) -> np.ndarray:
    """Paint a flat-ish coloured object onto a background where mask is True."""
    size = mask.shape[0]
    shade = 1 - shading + shading * _smooth_noise(rng, size, 3)
    fg = foreground_color[None, None, :] * shade[..., None]
    return np.where(mask[..., None], fg, background)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def lesion_layers(size: int, rng: np.random.Generator, *, malignant: bool, irregularity: float,
                  skin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layers :func:`lesion` composes: skin (H, W, 3), lesion colours (H, W, 3), lesion mask (H, W).

    Draws from ``rng`` exactly as :func:`lesion` does. A lesion drawn for the other class from the same
    generator state has the same centre and base radius (the first draws), so a counterfactual can swap the
    lesion and keep the skin of the original (:func:`~shortcut_nb.data.synthetic.render_lesion_item`).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size * rng.uniform(0.4, 0.6), size * rng.uniform(0.4, 0.6)
    r0 = size * rng.uniform(0.16, 0.24)
    ang = np.arctan2(yy - cy, xx - cx)
    dist = np.hypot(yy - cy, xx - cx)
    wobble = 0.05 * np.sin(2 * ang + rng.uniform(0, 6.28))
    if malignant:
        k = irregularity
        wobble = wobble + k * (0.22 * np.sin(3 * ang + rng.uniform(0, 6.28)) + 0.12 * np.sin(7 * ang + rng.uniform(0, 6.28)))
        stretch = 1 + k * rng.uniform(0.1, 0.4)
        dist = np.hypot((yy - cy) * stretch, (xx - cx))
    mask = dist < r0 * (1 + wobble)
    base = skin * (0.9 + 0.1 * _smooth_noise(rng, size, 8))[..., None]
    brown = hsv(0.07 + rng.uniform(-0.02, 0.02), rng.uniform(0.5, 0.8), rng.uniform(0.3, 0.5))
    lesion_rgb = np.broadcast_to(brown, (size, size, 3)).copy()
    if malignant:
        dark = hsv(0.02, 0.6, 0.15)
        blotch = _smooth_noise(rng, size, 5)
        mix = np.clip(irregularity * 1.6 * (blotch - 0.35), 0, 1)
        lesion_rgb = (1 - mix)[..., None] * lesion_rgb + mix[..., None] * dark
    return base, lesion_rgb, mask


def lesion(size: int, rng: np.random.Generator, *, malignant: bool, irregularity: float, skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A skin image with one lesion. Benign: round, even brown. Malignant: irregular border, multi-tone.

    ``irregularity`` in [0, 1] scales how different malignant lesions look (the core cue's strength).
    Returns (image (H, W, 3), lesion mask (H, W)).
    """
    base, lesion_rgb, mask = lesion_layers(size, rng, malignant=malignant, irregularity=irregularity, skin=skin)
    image = np.where(mask[..., None], lesion_rgb, base)
    return image, mask


#: The hues a colour patch is drawn in (green, cyan, blue, violet), one picked per patch.
PATCH_HUES = (0.33, 0.55, 0.62, 0.8)


def colour_patch(size: int, rng: np.random.Generator, *, area: float, salience: float,
                 hues: tuple[float, ...] = PATCH_HUES) -> tuple[np.ndarray, np.ndarray]:
    """A round colour sticker near a corner (like ISIC's colour patches).

    Returns (rgb (H, W, 3), mask (H, W)); ``area`` is the patch's fraction of the image,
    ``salience`` in [0, 1] its colour saturation/contrast, ``hues`` the hues it is drawn from (±0.03).
    """
    r = size * math.sqrt(area / math.pi)
    corner = rng.integers(0, 4)
    margin = r + size * 0.03
    cx = margin + rng.uniform(0, size * 0.08) if corner % 2 == 0 else size - margin - rng.uniform(0, size * 0.08)
    cy = margin + rng.uniform(0, size * 0.08) if corner < 2 else size - margin - rng.uniform(0, size * 0.08)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = np.hypot(yy - cy, xx - cx) < r
    hue = rng.choice(list(hues)) + rng.uniform(-0.03, 0.03)
    rgb = np.broadcast_to(hsv(hue, 0.25 + 0.7 * salience, 0.55 + 0.4 * salience), (size, size, 3)).copy()
    return rgb, mask
