"""The embedded default: synthetic Waterbirds-like and ISIC-like benchmarks with ground-truth masks.

Both generators *write the real folder layouts* (PNG images, PNG masks,
``metadata.csv``), so the default path runs the same loaders as real data.

- Waterbirds-like: core = the foreground object's shape (class 0 and class 1
  draw from two disjoint shape sets), spurious = the background family
  (``place`` 0 land-like textures, 1 water-like textures); mask = background.
  Train follows paper Table 1 (77 % class 0; within each class a
  ``minority_ratio`` share on the other background); val and test are group-
  balanced, and in them the two groups of a class share the same foreground
  objects on different backgrounds (paper Table 3).
- ISIC-like: core = lesion appearance (benign round and even, malignant
  irregular and blotchy), spurious = a colour patch in about 47 % of benign
  training images and in no malignant one; val/test add MwP by inserting
  patches cut from benign images into malignant ones (paper §3.1), with the
  inserted region as mask.

Generation is deterministic from ``seed``. ``render_items.json`` records what re-renders each image (the
generator state before it, its object, the state a patch is drawn from): :func:`render_bird_item` and
:func:`render_lesion_item` give counterfactuals, one factor changed (:mod:`shortcut_nb.counterfactuals`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image

from ..artifacts import temp_path
from ..locks import artifact_lock
from ..vocab import DatasetName
from . import render
from .isic import insert_patches

WATERBIRDS_TRAIN_CLASS0 = 3703 / 4795  # paper Table 1: landbirds share of the training set
ISIC_TRAIN_MALIGNANT = 1571 / 13411  # paper Table 1
ISIC_TRAIN_PATCH_IN_BENIGN = 5526 / 11840  # paper Table 1: BwP share of benign


@dataclass(frozen=True)
class WaterbirdsLikeSettings:
    """Knobs of the Waterbirds-like generator.

    Attributes:
        image_size: side of the written PNGs.
        n_train, n_val, n_test: images per split (val/test group-balanced).
        minority_ratio: share of each class on the *other* background in train (paper: 5 %).
        object_scale: foreground size relative to the default (core-cue salience).
        background_salience: 0..1, saturation of the background families (spurious-cue salience).
        class_shapes: the two disjoint shape sets that define class 0 and class 1.
        seed: the one seed of every random choice.
        file_format: ``"png"`` or ``"jpeg"`` (real Waterbirds and ISIC folders hold JPEGs).
        size_jitter: 0 writes every image at ``image_size``; j > 0 writes each at its own width and height,
            drawn in ``image_size * [1 - j, 1 + j]``, as real folders of varied sizes are (masks alike).
    """

    image_size: int = 64
    n_train: int = 2400
    n_val: int = 400
    n_test: int = 800
    minority_ratio: float = 0.05
    object_scale: float = 1.0
    background_salience: float = 1.0
    class_shapes: tuple[tuple[str, ...], tuple[str, ...]] = (("triangle", "square", "cross"), ("circle", "ring", "crescent"))
    file_format: FileFormat = "png"
    size_jitter: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class ISICLikeSettings:
    """Knobs of the ISIC-like generator.

    Attributes:
        lesion_irregularity: 0..1, how different malignant lesions look (core-cue strength).
        patch_area: the colour patch's share of the image (real ISIC: about 5 %).
        patch_salience: 0..1, the patch colour's saturation/contrast (spurious-cue salience).
        patch_hues: the hues patches are drawn in. Fewer hues make one patch feature serve every patch: with
            four, the cpu ResNet's most spurious neurons each cover some hues (s 0.84 on green patches, 0.45
            on the rest), which caps their s-score over all patches.
        patch_share_benign: share of benign training images with a patch (paper: 47 %).
        malignant_share: share of malignant images in train (paper: 12 %).
        file_format, size_jitter: as for :class:`WaterbirdsLikeSettings`.
    """

    image_size: int = 64
    n_train: int = 2400
    n_val: int = 400
    n_test: int = 800
    lesion_irregularity: float = 1.0
    patch_area: float = 0.05
    patch_salience: float = 1.0
    patch_hues: tuple[float, ...] = render.PATCH_HUES
    patch_share_benign: float = ISIC_TRAIN_PATCH_IN_BENIGN
    malignant_share: float = ISIC_TRAIN_MALIGNANT
    file_format: FileFormat = "png"
    size_jitter: float = 0.0
    seed: int = 0


LAND_TEXTURES = ("blobs", "vstripes", "dots")
WATER_TEXTURES = ("waves", "dstripes", "noise")
LAND_HUES = (0.25, 0.09)  # green, brown
WATER_HUE = 0.58  # blue


FileFormat = Literal["png", "jpeg"]
JPEG_QUALITY = 90
#: per-item render records beside ``generator.json`` (see the module docstring)
RENDER_ITEMS = "render_items.json"
# Knobs added after folders were first keyed: at their defaults they stay out of the key, so those folders are reused.
_KEYED_ONLY_WHEN_SET = {"file_format": "png", "size_jitter": 0.0, "patch_hues": render.PATCH_HUES}


def settings_key(settings) -> str:
    fields = {k: v for k, v in asdict(settings).items() if _KEYED_ONLY_WHEN_SET.get(k, object()) != v}
    payload = json.dumps({"type": type(settings).__name__, **fields}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, optimize=False, compress_level=1)


class _Writer:
    """Writes an image and its mask as the settings ask: PNG or JPEG, at ``image_size`` or a drawn size of its own.

    Sizes come from their own random stream, so the rendered content is that of a PNG folder of the same seed.
    """

    def __init__(self, settings):
        self.format = settings.file_format
        if self.format not in ("png", "jpeg"):
            raise ValueError(f"file_format must be 'png' or 'jpeg', got {self.format!r}")
        if not 0.0 <= settings.size_jitter < 1.0:
            raise ValueError(f"size_jitter must be in [0, 1), got {settings.size_jitter}")
        self.size, self.jitter = settings.image_size, settings.size_jitter
        self.rng = np.random.default_rng([settings.seed, 1])

    def image_name(self, stem: str) -> str:
        return f"{stem}.jpg" if self.format == "jpeg" else f"{stem}.png"

    def write(self, tmp: Path, image_rel: str, image: np.ndarray, mask_rel: str, mask: np.ndarray) -> None:
        if self.jitter:
            w, h = (int(round(self.size * f)) for f in self.rng.uniform(1 - self.jitter, 1 + self.jitter, 2))
            image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
            mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST))
        if self.format == "jpeg":
            (tmp / image_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp / image_rel, quality=JPEG_QUALITY)
        else:
            _save_png(image, tmp / image_rel)
        _save_png(mask, tmp / mask_rel)  # masks stay lossless


def _waterbirds_counts(s: WaterbirdsLikeSettings) -> dict[int, list[int]]:
    """Images per group and split: {split: [G0, G1, G2, G3]}."""
    n0 = round(s.n_train * WATERBIRDS_TRAIN_CLASS0)
    n1 = s.n_train - n0
    m0 = round(n0 * s.minority_ratio)
    m1 = round(n1 * s.minority_ratio)
    train = [n0 - m0, m0, m1, n1 - m1]
    # val/test are group-balanced; a class's two groups are rendered as pairs of the same object
    val = [max(s.n_val // 4, 1)] * 4
    test = [max(s.n_test // 4, 1)] * 4
    return {0: train, 1: val, 2: test}


def _bird_object(rng: np.random.Generator, y: int, s: WaterbirdsLikeSettings) -> dict:
    shapes = s.class_shapes[y]
    size = s.image_size
    return {
        "shape": shapes[int(rng.integers(len(shapes)))],
        "cx": size * rng.uniform(0.35, 0.65),
        "cy": size * rng.uniform(0.35, 0.65),
        "radius": size * s.object_scale * rng.uniform(0.2, 0.28),
        "rotation": rng.uniform(0, 2 * np.pi),
        "color": render.hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.35, 1.0)),
        "shade_seed": int(rng.integers(2**31)),  # the object's shading is part of the object, shared by a pair
    }


def _place_background(rng: np.random.Generator, place: int, s: WaterbirdsLikeSettings) -> tuple[np.ndarray, str]:
    if place == 0:
        kind = LAND_TEXTURES[int(rng.integers(len(LAND_TEXTURES)))]
        hue = LAND_HUES[int(rng.integers(len(LAND_HUES)))]
    else:
        kind = WATER_TEXTURES[int(rng.integers(len(WATER_TEXTURES)))]
        hue = WATER_HUE
    sat = s.background_salience
    c0 = render.hsv(hue + rng.uniform(-0.04, 0.04), sat * rng.uniform(0.4, 0.8), rng.uniform(0.35, 0.6))
    c1 = render.hsv(hue + rng.uniform(-0.04, 0.04), sat * rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.9))
    name = ("land" if place == 0 else "water") + "/" + kind
    return render.texture(kind, s.image_size, rng, (c0, c1)), name


def _render_bird(rng: np.random.Generator, obj: dict, place: int, s: WaterbirdsLikeSettings):
    background, place_name = _place_background(rng, place, s)
    fg = render.shape_mask(obj["shape"], s.image_size, cx=obj["cx"], cy=obj["cy"], radius=obj["radius"], rotation=obj["rotation"])
    image = render.composite(background, obj["color"], fg, np.random.default_rng(obj["shade_seed"]))
    return render.to_uint8(image), (~fg).astype(np.uint8) * 255, place_name


def _atomic_folder(root: Path):
    """Write into a sibling temp folder, then rename: a killed run leaves no half-written dataset."""
    tmp = temp_path(root)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _finish(tmp: Path, root: Path, rows: list[dict], settings, columns: list[str], items: dict[str, dict]) -> Path:
    pd.DataFrame(rows, columns=columns).to_csv(tmp / "metadata.csv", index=False)
    (tmp / "generator.json").write_text(json.dumps({"generator": type(settings).__name__, **asdict(settings)}, indent=1))
    (tmp / RENDER_ITEMS).write_text(json.dumps(items))
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root


def generate_waterbirds_like(root: str | os.PathLike, settings: WaterbirdsLikeSettings = WaterbirdsLikeSettings()) -> Path:
    """Write a Waterbirds-like dataset folder (group_DRO's ``metadata.csv`` columns plus ``mask_filename``)."""
    root = Path(root)
    s = settings
    if not 0.0 <= s.minority_ratio <= 0.5:
        raise ValueError(f"minority_ratio must be in [0, 0.5], got {s.minority_ratio}")
    writer = _Writer(s)
    tmp = _atomic_folder(root)
    rng = np.random.default_rng(s.seed)
    rows: list[dict] = []
    items: dict[str, dict] = {}
    counts = _waterbirds_counts(s)
    for split, per_group in counts.items():
        if split == 0:
            jobs = [(y, place, _bird_object(rng, y, s)) for y in (0, 1) for place in (0, 1) for _ in range(per_group[2 * y + place])]
            order = rng.permutation(len(jobs))
            jobs = [jobs[i] for i in order]
        else:
            # the two groups of a class share the same foreground objects (paper Table 3)
            jobs = []
            for y in (0, 1):
                for _ in range(per_group[2 * y]):
                    obj = _bird_object(rng, y, s)
                    jobs += [(y, 0, obj), (y, 1, obj)]
        for y, place, obj in jobs:
            idx = len(rows)
            state = rng.bit_generator.state
            image, mask, place_name = _render_bird(rng, obj, place, s)
            img_rel = writer.image_name(f"images/{split}/{idx:06d}")
            items[img_rel] = {"state": state, "object": {**obj, "color": [float(c) for c in obj["color"]]}}
            mask_rel = f"masks/{split}/{idx:06d}.png"
            writer.write(tmp, img_rel, image, mask_rel, mask)
            rows.append({"img_id": idx + 1, "img_filename": img_rel, "y": y, "split": split, "place": place,
                         "place_filename": place_name, "mask_filename": mask_rel, "shape": obj["shape"]})
    columns = ["img_id", "img_filename", "y", "split", "place", "place_filename", "mask_filename", "shape"]
    return _finish(tmp, root, rows, s, columns, items)


def _skin(rng: np.random.Generator) -> np.ndarray:
    return render.hsv(0.06 + rng.uniform(-0.02, 0.02), rng.uniform(0.2, 0.45), rng.uniform(0.7, 0.95))


def _inserted_items(meta: pd.DataFrame, items: dict[str, dict]) -> dict[str, dict]:
    """Records of the MwP rows :func:`insert_patches` added: the rendered image each was pasted into (``base``)."""
    rendered = {(int(split), Path(f).stem): f for f, split in zip(meta["img_filename"], meta["split"]) if f in items}
    out = {}
    sources = meta["inserted_from"] if "inserted_from" in meta.columns else [None] * len(meta)
    for f, split, source in zip(meta["img_filename"], meta["split"], sources):
        if isinstance(source, str):
            out[f] = {"base": rendered[(int(split), Path(f).stem.removesuffix("_patch"))]}
    return out


def generate_isic_like(root: str | os.PathLike, settings: ISICLikeSettings = ISICLikeSettings()) -> Path:
    """Write an ISIC-like dataset folder (``y``, ``patch``, ``split``, ``mask_filename``).

    Val and test get MwP through :func:`shortcut_nb.data.isic.insert_patches`, the same
    function that builds the paper's artificial test set from real ISIC folders.
    """
    root = Path(root)
    s = settings
    writer = _Writer(s)
    tmp = _atomic_folder(root)
    rng = np.random.default_rng(s.seed)
    rows: list[dict] = []
    items: dict[str, dict] = {}
    n_mal_train = round(s.n_train * s.malignant_share)
    n_ben_train = s.n_train - n_mal_train
    n_bwp_train = round(n_ben_train * s.patch_share_benign)
    plans = {
        0: [(0, 1)] * n_bwp_train + [(0, 0)] * (n_ben_train - n_bwp_train) + [(1, 0)] * n_mal_train,
        1: [(0, 0)] * (s.n_val // 4) + [(0, 1)] * (s.n_val // 4) + [(1, 0)] * (s.n_val // 4),
        2: [(0, 0)] * (s.n_test // 4) + [(0, 1)] * (s.n_test // 4) + [(1, 0)] * (s.n_test // 4),
    }
    size = s.image_size
    for split, plan in plans.items():
        plan = [plan[i] for i in rng.permutation(len(plan))]
        for y, patch in plan:
            idx = len(rows)
            item = {"state": rng.bit_generator.state}
            skin = _skin(rng)
            image, _ = render.lesion(size, rng, malignant=bool(y), irregularity=s.lesion_irregularity, skin=skin)
            item["patch_state"] = rng.bit_generator.state  # where a patch is drawn from, present or not
            patch_mask = np.zeros((size, size), dtype=bool)
            if patch:
                rgb, patch_mask = render.colour_patch(size, rng, area=s.patch_area, salience=s.patch_salience,
                                                           hues=s.patch_hues)
                image = np.where(patch_mask[..., None], rgb, image)
            img_rel = writer.image_name(f"images/{split}/{idx:06d}")
            mask_rel = f"masks/{split}/{idx:06d}.png"
            writer.write(tmp, img_rel, render.to_uint8(image), mask_rel, patch_mask.astype(np.uint8) * 255)
            items[img_rel] = item
            rows.append({"img_filename": img_rel, "y": y, "patch": patch, "split": split, "mask_filename": mask_rel})
    columns = ["img_filename", "y", "patch", "split", "mask_filename"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp / "metadata.csv", index=False)
    for split in (1, 2):
        insert_patches(tmp, split=split, seed=s.seed + split)
    meta = pd.read_csv(tmp / "metadata.csv")
    items.update(_inserted_items(meta, items))
    return _finish(tmp, root, meta.to_dict("records"), s, list(meta.columns), items)




def synthetic_settings(name: DatasetName, *, image_size: int, n_train: int, n_val: int, n_test: int, seed: int,
                       **knobs) -> WaterbirdsLikeSettings | ISICLikeSettings:
    cls = WaterbirdsLikeSettings if name == "waterbirds" else ISICLikeSettings
    return cls(image_size=image_size, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, **knobs)


def ensure_synthetic(name: DatasetName, settings: WaterbirdsLikeSettings | ISICLikeSettings, *, root: str | os.PathLike) -> Path:
    """The folder for these settings under ``root/data``, generated once and reused (keyed by settings)."""
    if name not in ("waterbirds", "isic"):
        raise ValueError(f"dataset name must be 'waterbirds' or 'isic', got {name!r}")
    folder = Path(root) / "data" / f"{name}_like-{settings_key(settings)}"
    done = (folder / "generator.json", folder / "metadata.csv")  # written whole, renamed into place
    if all(path.is_file() for path in done):  # read without the lock: a read-only runs root serves it
        return folder
    with artifact_lock(folder):  # two processes asking at once (a notebook, a sweep job): one writes, one waits
        if all(path.is_file() for path in done):
            return folder
        generate = generate_waterbirds_like if name == "waterbirds" else generate_isic_like
        return generate(folder, settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- re-rendering recorded items


def render_record(root: str | os.PathLike) -> tuple[WaterbirdsLikeSettings | ISICLikeSettings, dict[str, dict]] | None:
    """A synthetic folder's settings and per-item render records (keyed by ``img_filename``), or None when the
    folder was not written by these generators.

    Raises:
        FileNotFoundError: a synthetic folder written before items were recorded (no ``render_items.json``).
    """
    root = Path(root)
    path = root / "generator.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    cls = {c.__name__: c for c in (WaterbirdsLikeSettings, ISICLikeSettings)}.get(record.get("generator"))
    if cls is None:
        return None
    values = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
    values.update({k: tuple(tuple(v) if isinstance(v, list) else v for v in values[k])
                   for k in ("class_shapes", "patch_hues") if k in values})  # JSON lists back to tuples
    items_path = root / RENDER_ITEMS
    if not items_path.is_file():
        raise FileNotFoundError(f"{items_path} not found: {root} was generated before the generator recorded how to "
                                "re-render each image; delete the folder and generate it again (ensure_synthetic or "
                                "generate_*_like write the same images, now with the record)")
    return cls(**values), json.loads(items_path.read_text())


def _rng_at(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def render_bird_item(settings: WaterbirdsLikeSettings, item: dict, *, place: int,
                     shape: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-render a recorded Waterbirds-like item with its background drawn for ``place`` and its object of
    ``shape`` (None: its own), everything else as recorded.

    Returns:
        uint8 image (S, S, 3) at ``settings.image_size`` (before any size jitter or JPEG) and the bool
        foreground mask (S, S); the spurious mask is its complement.
    """
    obj = {**item["object"], "color": np.asarray(item["object"]["color"], dtype=np.float32)}
    if shape is not None:
        obj["shape"] = shape
    image, background, _ = _render_bird(_rng_at(item["state"]), obj, int(place), settings)
    return image, background == 0


def render_lesion_item(settings: ISICLikeSettings, item: dict, *, y: int, patch: bool,
                       lesion_y: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-render a recorded ISIC-like item of class ``y``: its skin, the lesion drawn for class ``lesion_y``
    (None: ``y``; same centre and base radius) and, when ``patch``, the colour patch recorded for it (drawn
    from the item's patch state whether or not the item had one).

    Returns:
        uint8 image (S, S, 3) (before any size jitter or JPEG), bool lesion mask (S, S), bool patch mask (S, S).
    """
    s = settings

    def layers(malignant: int):
        rng = _rng_at(item["state"])
        return render.lesion_layers(s.image_size, rng, malignant=bool(malignant), irregularity=s.lesion_irregularity,
                                    skin=_skin(rng))

    base, lesion_rgb, lesion_mask = layers(y)
    if lesion_y is not None and lesion_y != y:
        _, lesion_rgb, lesion_mask = layers(lesion_y)  # the other class's lesion on this item's skin
    image = np.where(lesion_mask[..., None], lesion_rgb, base)
    patch_mask = np.zeros((s.image_size, s.image_size), dtype=bool)
    if patch:
        rgb, patch_mask = render.colour_patch(s.image_size, _rng_at(item["patch_state"]), area=s.patch_area,
                                              salience=s.patch_salience, hues=s.patch_hues)
        image = np.where(patch_mask[..., None], rgb, image)
    return render.to_uint8(image), lesion_mask, patch_mask


def as_written(settings: WaterbirdsLikeSettings | ISICLikeSettings, image: np.ndarray,
               size_wh: tuple[int, int]) -> np.ndarray:
    """A rendered uint8 image (S, S, 3) as the generator writes it at ``size_wh``: resized when the settings
    jitter sizes, JPEG-encoded and decoded when they write JPEG. Returns uint8 (h, w, 3)."""
    pil = Image.fromarray(image)
    if settings.size_jitter:
        pil = pil.resize(tuple(size_wh), Image.BILINEAR)
    if settings.file_format == "jpeg":
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            pil = decoded.convert("RGB")
    return np.asarray(pil)
