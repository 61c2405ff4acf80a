"""Image and mask transforms: resize to a square and normalise with ImageNet statistics."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, size, size), ImageNet-normalised."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return (tensor - _MEAN) / _STD


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
