"""Image and mask transforms: resize to a square and normalise with ImageNet statistics."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: names the resize and normalisation below; part of every cache key over decoded pixels or features
TRANSFORM_ID = "resize-bilinear/imagenet-norm/v1"
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def image_to_uint8(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size), resized as :func:`image_to_tensor` resizes (bilinear)."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def normalise_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [0, 1], then ImageNet-normalised (the one place that normalises)."""
    mean, std = _MEAN.to(images.device), _STD.to(images.device)
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
