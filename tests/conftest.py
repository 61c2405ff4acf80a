"""Shared fixtures: seeds reset for every test, tiny dataset folders, a smoke run of the notebooks."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from shortcut_nb.config import seed_everything
from shortcut_nb.report.runner import TIMEOUTS, run_all

torch.set_num_threads(1)

os.environ.setdefault("MPLBACKEND", "Agg")
# Test models are tiny: one thread is as fast and stays fast when the machine is shared.
os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the notebook kernels the tests start


@pytest.fixture(autouse=True)
def _reset_seeds():
    """Every test starts from seed 0 and leaves no open matplotlib figure behind."""
    seed_everything(0)
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


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


@pytest.fixture(scope="session")
def smoke_runs_root(tmp_path_factory) -> Path:
    """One runs root for all smoke notebook runs of the session (runner and browser): each model trains once."""
    return tmp_path_factory.mktemp("smoke_runs")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, smoke_runs_root):
    """One runner call over all notebooks (later notebooks reuse the models earlier ones trained)."""
    out = tmp_path_factory.mktemp("smoke_out")
    results = run_all(profile="smoke", out=out, runs_root=str(smoke_runs_root), timeout=TIMEOUTS["smoke"])
    return out, {r.name: r for r in results}
