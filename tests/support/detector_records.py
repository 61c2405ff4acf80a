"""Recorded detector entries (``detectors.<dataset>`` of notebooks 03 and 06) made by the real code on tiny inputs."""
from __future__ import annotations

from pathlib import Path

import torch

from shortcut_nb.config import seed_everything
from shortcut_nb.counterfactuals import DatasetDetectors, evaluate_detectors, pairs
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model


def detector_entry(folder: Path, *, seeds: tuple[int, ...] = (0,), n: int = 8, dataset: str = "isic") -> dict:
    """One dataset's recorded entry: an untrained resnet_mini per seed on ``n`` validation pairs of ``folder`` (16 px),
    an s-score stand-in scorer (the neurons' mean activation rank), the own seed (the first) randomised."""
    val = load_dataset(folder, split="val", image_size=16)
    attribute, core = pairs(val, n, 0), pairs(val, n, 0, flip="core")
    evaluations = {}
    for seed in seeds:
        seed_everything(seed)
        model = build_model("resnet_mini", image_size=16).eval()
        scorer = {"sscore": lambda m: torch.linspace(0, 1, m.head.in_features)}
        evaluations[seed] = evaluate_detectors(model, attribute, core, scorer, n_boot=30, seed=seed,
                                               randomise=("last_block", "all") if seed == seeds[0] else ())
    return DatasetDetectors(dataset=dataset, model_name="resnet_mini", reason=None, evaluations=evaluations,
                            own_seed=seeds[0], alpha=0.5, area=0.06).record()


def unavailable_entry(dataset: str = "mine") -> dict:
    """A dataset without a ground truth, as recorded."""
    return DatasetDetectors(dataset=dataset, model_name="resnet_mini", reason="not the synthetic benchmark",
                            evaluations={}, own_seed=0, alpha=0.5, area=0.1).record()
