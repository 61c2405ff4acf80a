"""A researcher's own dataset folder, written with PIL as a person would (not by the package's generator):
3 classes (shapes) × 3 attribute values (the colour of a small square), masks of that square on some rows, and a
``metadata.json`` naming them. In training the colour follows the class on ``majority`` of the images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
COLOURS = ("red square", "green square", "blue square")
RGB = ((220, 30, 30), (30, 200, 30), (30, 30, 220))


def _draw(shape: int, colour: int, size: int, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    grey = int(rng.integers(90, 160))
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    c, r = size // 2 + int(rng.integers(-size // 10, size // 10 + 1)), size // 4
    box = (c - r, c - r, c + r, c + r)
    if shape == 0:
        draw.ellipse(box, fill=(240, 240, 240))
    elif shape == 1:
        draw.rectangle(box, fill=(240, 240, 240))
    else:
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=(240, 240, 240))
    side = size // 5
    x0 = int(rng.integers(0, size - side)) if rng.random() < 0.5 else 0
    patch = (x0, 0, x0 + side - 1, side - 1)
    draw.rectangle(patch, fill=RGB[colour])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle(patch, fill=255)
    return image, mask


def write_user_folder(root: Path, *, per_split: tuple[int, int, int] = (90, 36, 36), size: int = 64,
                      majority: float = 0.8, seed: int = 0, mask_every: int = 2) -> Path:
    """Write the folder; val and test are group-balanced (every one of the 9 groups present)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    rows = []
    for split, n in enumerate(per_split):
        for i in range(n):
            y = i % 3
            if split == 0:
                a = y if rng.random() < majority else int(rng.choice([v for v in range(3) if v != y]))
            else:
                a = (i // 3) % 3
            image, mask = _draw(y, a, size, rng)
            image.putpixel((size - 1, size - 1), (len(rows) % 256, len(rows) // 256, 0))  # no two images alike
            name = f"images/{split}_{i:04d}.jpg"
            image.save(root / name, quality=95)
            mask_name = None
            if len(rows) % mask_every == 0:
                mask_name = f"masks/{split}_{i:04d}.png"
                mask.save(root / mask_name)
            rows.append({"img_filename": name, "y": y, "a": a, "split": split, "mask_filename": mask_name})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    (root / "metadata.json").write_text(json.dumps({"classes": list(CLASSES), "attribute": "corner square",
                                                    "values": list(COLOURS)}))
    return root
