"""Small inputs for notebook 03's tests: a tiny CNN, masked samples, features with a class and an attribute signal."""
from __future__ import annotations

import numpy as np
import torch

from shortcut_nb.config import seed_everything
from shortcut_nb.data.samples import MaskedSamples
from shortcut_nb.models import build_model
from shortcut_nb.sections.cnn_neurons.study import NeuronStudy, build_study
from shortcut_nb.sscore.grid import alpha_grid

SIZE = 16


def features(n_per_group: int, d: int, seed: int) -> dict:
    """FeatureSet-like ``{"z", "y", "g"}`` whose first neurons follow the class, the next the attribute; 4 groups."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), n_per_group)
    y, a = g // 2, g % 2
    z = rng.normal(size=(len(g), d)).astype(np.float32)
    z[:, :4] += 1.5 * y[:, None]
    z[:, 4:8] += 2.0 * a[:, None]
    return {"z": z, "y": y.astype(np.int64), "g": g.astype(np.int64)}


def tiny_model():
    seed_everything(0)
    return build_model("resnet_mini", image_size=SIZE).eval()


def tiny_samples() -> MaskedSamples:
    """Six random images; the left half is spurious, except on sample 3 (a small patch)."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(6, 3, SIZE, SIZE, generator=gen)
    masks = torch.zeros(6, SIZE, SIZE, dtype=torch.bool)
    masks[:, :, : SIZE // 2] = True
    masks[3] = False
    masks[3, 2:6, 2:6] = True
    return MaskedSamples(images=images, masks=masks, indices=np.arange(6) * 3)


def tiny_study(model=None, samples: MaskedSamples | None = None) -> NeuronStudy:
    model = tiny_model() if model is None else model
    d = model.head.in_features
    return build_study(dataset="isic", model=model, samples=tiny_samples() if samples is None else samples,
                       test=features(12, d, 1), val=features(10, d, 2), train_group_counts=[50, 40, 10, 0],
                       alphas=alpha_grid(0.33))
