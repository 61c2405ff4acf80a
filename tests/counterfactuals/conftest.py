"""Fixtures of the counterfactual tests: tiny synthetic folders and a model whose neurons are known.

The planted model reads an ISIC-like image through two hand-set 1×1 convolution channels: ``blue`` responds
only to the (blue) colour patch — the spurious region — and ``dark`` only to a malignant lesion's dark
blotches — the core. Neuron ``k`` of its penultimate vector mixes them, ``z_k = w_k·blue + (1 - w_k)·dark``
(``w`` from 1 down to 0), so neuron 0 is purely spurious, the last purely core, and the true spurious share
falls with ``k``. Its head leans on the patch for "benign", as a shortcut model does.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from shortcut_nb.data import ISICLikeSettings, WaterbirdsLikeSettings, generate_isic_like, generate_waterbirds_like
from shortcut_nb.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from shortcut_nb.models import SplitModel

K = 24  # planted penultimate neurons
WIDTH = 8  # conv channels: 0 blue, 1 dark, the rest silent

WATERBIRDS = WaterbirdsLikeSettings(image_size=32, n_train=24, n_val=8, n_test=16, seed=3)
ISIC = ISICLikeSettings(image_size=32, n_train=40, n_val=16, n_test=160, patch_hues=(0.6,), patch_area=0.08, seed=4)


@pytest.fixture(scope="session")
def waterbirds_folder(tmp_path_factory) -> Path:
    return generate_waterbirds_like(tmp_path_factory.mktemp("cf") / "wb", WATERBIRDS)


@pytest.fixture(scope="session")
def isic_folder(tmp_path_factory) -> Path:
    return generate_isic_like(tmp_path_factory.mktemp("cf") / "isic", ISIC)


def planted_model(k: int = K) -> SplitModel:
    """The model of the module docstring (inputs ImageNet-normalised, as the datasets' items)."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    conv = nn.Conv2d(3, WIDTH, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        # raw pixel p = x * std + mean; blue: 4 (B - R - 0.2); dark: 4 (0.155 - (R + G + B) / 3)
        conv.weight[0, :, 0, 0] = 4 * torch.tensor([-std[0], 0.0, std[2]])
        conv.bias[0] = 4 * (mean[2] - mean[0] - 0.2)
        conv.weight[1, :, 0, 0] = -4 * std / 3
        conv.bias[1] = 4 * (0.155 - mean.sum() / 3)
    mix = nn.Linear(WIDTH, k, bias=False)
    w = torch.linspace(1, 0, k)
    with torch.no_grad():
        mix.weight.zero_()
        mix.weight[:, 0] = w * 10  # the blotches move their channel ~100x less than the patch moves its one
        mix.weight[:, 1] = (1 - w) * 1000
    encoder = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), mix)
    head = nn.Linear(k, 2)
    with torch.no_grad():
        head.weight[1] = (1 - 2 * w) * 3  # malignant: the core; benign: the patch
        head.weight[0] = -head.weight[1]
        head.bias[:] = torch.tensor([0.0, 0.5])  # no patch and no blotch: malignant (the patch means benign)
    return SplitModel(encoder, head, name="planted", kind="cnn").eval()


@pytest.fixture()
def planted() -> SplitModel:
    return planted_model()
