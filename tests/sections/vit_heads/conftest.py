"""Notebook 06's toy models, samples and studies, shared by this section's tests (built once per module)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb.config import seed_everything
from shortcut_nb.data.samples import MaskedSamples
from shortcut_nb.models import build_model
from shortcut_nb.sections.vit_heads.attention_study import attention_study
from shortcut_nb.sections.vit_heads.neuron_study import score_models

SIZE = 16  # vit_mini: 8x8 grid of 2x2 patches


def toy_masks(n: int) -> torch.Tensor:
    """ISIC-like: a square spurious patch in a corner that moves per image; image 3 has none."""
    m = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(n):
        r, c = (i % 2) * 10, (i // 2 % 2) * 10
        m[i, r:r + 6, c:c + 6] = True
    if n > 3:
        m[3] = False
    return m


@pytest.fixture(scope="module")
def toy():
    """``(cnn, vit, images (5, 3, 16, 16), masks (5, 16, 16))``; image 3's mask is empty."""
    seed_everything(0)
    cnn = build_model("resnet_mini", image_size=SIZE).eval()
    vit = build_model("vit_mini", image_size=SIZE).eval()
    images = torch.randn(5, 3, SIZE, SIZE)
    return cnn, vit, images, toy_masks(5)


@pytest.fixture(scope="module")
def samples(toy) -> MaskedSamples:
    """The four toy images with a non-empty mask, with made-up dataset indices."""
    _, _, images, masks = toy
    keep = masks.flatten(1).any(1)
    return MaskedSamples(images=images[keep], masks=masks[keep], indices=np.array([10, 11, 12, 14]))


@pytest.fixture(scope="module")
def study(toy, samples):
    cnn, vit, _, _ = toy
    return score_models({"cnn": cnn, "vit": vit}, samples, alpha=0.4, dataset="isic")


@pytest.fixture(scope="module")
def astudy(toy):
    _, vit, images, masks = toy
    return attention_study(vit, images, masks, dataset="isic", n_examples=2, indices=list(range(100, 105)))
