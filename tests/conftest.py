"""Shared fixtures: seeds reset for every test, tiny dataset folders, a smoke run of the notebooks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from shortcut_nb.config import seed_everything

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _reset_seeds():
    seed_everything(0)
    yield


@pytest.fixture(scope="session")
def tiny_waterbirds(tmp_path_factory) -> Path:
    from shortcut_nb.data import WaterbirdsLikeSettings, generate_waterbirds_like

    root = tmp_path_factory.mktemp("data") / "wb"
    return generate_waterbirds_like(root, WaterbirdsLikeSettings(image_size=16, n_train=64, n_val=16, n_test=16, seed=3))


@pytest.fixture(scope="session")
def tiny_isic(tmp_path_factory) -> Path:
    from shortcut_nb.data import ISICLikeSettings, generate_isic_like

    root = tmp_path_factory.mktemp("data") / "isic"
    return generate_isic_like(root, ISICLikeSettings(image_size=16, n_train=64, n_val=16, n_test=16, seed=3))
