"""Image and mask transforms: resize to a square and normalise (ImageNet statistics unless a model says otherwise)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: names the resize and normalisation below; part of every cache key over decoded pixels or features
TRANSFORM_ID = "resize-bilinear/imagenet-norm/v1"
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std a model was trained with (inputs are ``(x / 255 - mean) / std``)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"normalization {what} must be three numbers (R, G, B), got {values!r}")
        if any(v <= 0 for v in self.std):
            raise ValueError(f"normalization std must be positive, got {self.std!r}")

    @property
    def is_imagenet(self) -> bool:
        return tuple(self.mean) == IMAGENET_MEAN and tuple(self.std) == IMAGENET_STD

    def as_record(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @property
    def transform_id(self) -> str:
        """:data:`TRANSFORM_ID` for ImageNet's statistics, else one naming these (cache keys over features)."""
        if self.is_imagenet:
            return TRANSFORM_ID
        return f"resize-bilinear/norm-{','.join(map(repr, self.mean))}/{','.join(map(repr, self.std))}/v1"


#: named normalisations: ImageNet's (torchvision, most timm CNNs) and Inception's (0.5; many timm ViTs, CLIP-like)
NORMALIZATIONS: dict[str, Normalization] = {
    "imagenet": Normalization(),
    "inception": Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def normalization(spec: "str | Normalization | dict | Sequence | None") -> Normalization:
    """A :class:`Normalization` from a name (``"imagenet"``, ``"inception"``), ``{"mean": [...], "std": [...]}``,
    a ``(mean, std)`` pair, or None (ImageNet's)."""
    if spec is None:
        return NORMALIZATIONS["imagenet"]
    if isinstance(spec, Normalization):
        return spec
    if isinstance(spec, str):
        if spec not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {spec!r}: use one of {sorted(NORMALIZATIONS)} or "
                             '{"mean": [r, g, b], "std": [r, g, b]}')
        return NORMALIZATIONS[spec]
    if isinstance(spec, dict):
        if set(spec) != {"mean", "std"}:
            raise ValueError(f'a normalization dict needs exactly the keys "mean" and "std", got {sorted(spec)}')
        return Normalization(tuple(float(v) for v in spec["mean"]), tuple(float(v) for v in spec["std"]))
    if len(spec) == 2:
        return Normalization(tuple(float(v) for v in spec[0]), tuple(float(v) for v in spec[1]))
    raise ValueError(f"a normalization is a name, a dict or a (mean, std) pair, got {spec!r}")


def image_to_uint8(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size), resized as :func:`image_to_tensor` resizes (bilinear)."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def normalise_uint8(images: torch.Tensor, norm: Normalization | None = None) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [0, 1], then normalised (ImageNet's statistics unless ``norm`` says
    otherwise; the one place that normalises)."""
    if norm is None or norm.is_imagenet:
        mean, std = _MEAN.to(images.device), _STD.to(images.device)
    else:
        mean = torch.tensor(norm.mean, device=images.device).view(3, 1, 1)
        std = torch.tensor(norm.std, device=images.device).view(3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, size, size), ImageNet-normalised."""
    return normalise_uint8(image_to_uint8(image, size))


def mask_to_tensor(mask: Image.Image, size: int) -> torch.Tensor:
    """Greyscale PIL mask -> bool tensor (size, size); nearest-neighbour so it stays binary."""
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(mask) >= 128)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation: (..., 3, H, W) -> values in [0, 1] for display."""
    mean = _MEAN.to(images.device)
    std = _STD.to(images.device)
    return (images * std + mean).clamp(0, 1)
