"""Profiles, devices and seeds: the knobs every section shares.

A *profile* sizes a whole run: ``smoke`` (CI, CPU, about a minute per
notebook, numbers only sanity-checked), ``cpu`` (a laptop, minutes, the
paper's qualitative findings visible on the synthetic benchmark) and
``paper`` (a GPU, the paper's models and hyper-parameters).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .vocab import DatasetName

Profile = Literal["smoke", "cpu", "paper"]
PROFILES: tuple[Profile, ...] = ("smoke", "cpu", "paper")


def get_device() -> torch.device:
    """The one place that picks a device: cuda when present, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (cpu for a model without parameters): functions follow their model."""
    return next(iter(model.parameters()), torch.empty(0)).device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def check_profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile  # type: ignore[return-value]


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Root folder of all artifacts (checkpoints, data, features, figures).

    ``root`` wins, then the ``SHORTCUT_NB_RUNS`` environment variable, then
    ``runs/`` in the current directory's repository (or the cwd).
    """
    if root is not None:
        return Path(root)
    env = os.environ.get("SHORTCUT_NB_RUNS")
    if env:
        return Path(env)
    here = Path.cwd()
    for parent in (here, *here.parents):
        if (parent / "pyproject.toml").exists() and (parent / "shortcut_nb").is_dir():
            return parent / "runs"
    return here / "runs"


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning recipe. Defaults are the paper's (§3.2)."""

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    batch_size: int = 32
    optimizer: Literal["sgd"] = "sgd"
    augment: bool = False
    amp: bool = True  # mixed precision, used on cuda only

    def with_batch_size_for(self, dataset: DatasetName) -> "TrainSettings":
        """The paper uses batch 32 for Waterbirds and 64 for ISIC."""
        return replace(self, batch_size=64 if dataset == "isic" else 32)


@dataclass(frozen=True)
class ProfileSettings:
    """Everything a profile decides, typed, in one place."""

    profile: Profile
    image_size: int
    cnn: str
    vit: str
    seeds: tuple[int, ...]
    train: TrainSettings
    pretrain: Literal["standin", "timm", "none"]
    pretrain_epochs: int
    pretrain_images: int
    # per-split image counts of the synthetic benchmark (train follows paper Table 1 proportions)
    n_train: int
    n_val: int
    n_test: int
    minority_ratios: tuple[float, ...] = (0.5, 0.25, 0.05, 0.0)
    sscore_samples: int = 50
    #: counterfactual pairs (validation images, each with its attribute and its core flipped) whose forward passes
    #: give the ground truth the neuron detectors are scored against (notebooks 03 and 06; at most the split's size)
    counterfactual_pairs: int = 200
    #: the models of notebook 01's Table 2 (the other notebooks analyse ``cnn`` and ``vit``)
    table2_models: tuple[str, ...] = ()
    #: a dry run: the profile's own code path (models, image size, optimiser, initialisation, data format)
    #: with only the sizes capped; see :meth:`as_dry_run`
    dry_run: bool = False
    mask_steps: int | None = None  # None: the section's recipe decides
    #: the ViT's fine-tuning recipe where it differs from the CNN's ``train`` (None: ``train``)
    vit_train: TrainSettings | None = None
    #: the ViT stand-in's own pretraining epochs (None: ``pretrain_epochs``, as the CNN's)
    vit_pretrain_epochs: int | None = None
    #: > 0: the ViT stand-in also learns from the CNN stand-in's predictions, at this weight (as DeiT was distilled
    #: from a convnet; see :class:`~shortcut_nb.pipeline.pretrain.PretrainSettings`)
    vit_distill_weight: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dry_run(self) -> "ProfileSettings":
        """This profile with only the sizes capped: a few dozen images per split, one epoch, one seed, two
        s-score samples, two mask steps, eight counterfactual pairs. Everything else (architectures, image size, optimiser settings, batch
        size, initialisation) is the profile's own, so a dry run executes the code a full run executes."""
        vit_train = None if self.vit_train is None else replace(self.vit_train, epochs=1)
        return replace(self, seeds=(0,), train=replace(self.train, epochs=1), vit_train=vit_train,
                       pretrain_epochs=min(self.pretrain_epochs, 1),
                       vit_pretrain_epochs=None if self.vit_pretrain_epochs is None else min(self.vit_pretrain_epochs, 1),
                       pretrain_images=min(self.pretrain_images, 64), n_train=DRY_RUN_SIZES[0],
                       n_val=DRY_RUN_SIZES[1], n_test=DRY_RUN_SIZES[2], sscore_samples=2, mask_steps=2,
                       counterfactual_pairs=min(self.counterfactual_pairs, DRY_RUN_PAIRS), dry_run=True)


# images per split of a dry run ("a few dozen"): val and test hold every group, a quarter each
DRY_RUN_SIZES = (16, 16, 16)
# counterfactual pairs of a dry run: the detectors' forward passes are most of their cost (ViT-B/16 on a CPU); the
# draw is group-balanced, so four pairs hold every group (the group gap needs a class seen with both attribute values)
DRY_RUN_PAIRS = 4


PROFILE_SETTINGS: dict[Profile, ProfileSettings] = {
    "smoke": ProfileSettings(
        profile="smoke",
        image_size=32,
        cnn="resnet_mini",
        vit="vit_mini",
        seeds=(0,),
        train=TrainSettings(epochs=1, lr=1e-2, batch_size=32),
        pretrain="none",
        pretrain_epochs=0,
        pretrain_images=0,
        n_train=160,
        n_val=48,
        n_test=64,
        minority_ratios=(0.5, 0.0),
        sscore_samples=8,
        counterfactual_pairs=32,
        table2_models=("resnet_mini", "vit_mini"),
    ),
    "cpu": ProfileSettings(
        profile="cpu",
        image_size=64,
        cnn="resnet_mini",
        vit="vit_mini",
        seeds=(0, 1, 2, 3, 4),  # the paper's five: every claim's interval is over them (issue 24)
        train=TrainSettings(epochs=3, lr=1e-2, batch_size=32),
        pretrain="standin",
        pretrain_epochs=16,
        pretrain_images=6000,
        # Issue 16 (held-out shape accuracy of the stand-ins, 600 images; the CNN's 16 epochs: 0.80): the ViT's
        # 16 epochs alone 0.50, 24,000 images x 4 epochs 0.44 (it underfits, more images do not help), 16 epochs
        # distilled from the CNN at weight 0.5 0.59, 40 epochs distilled 0.80.
        vit_pretrain_epochs=40,
        vit_distill_weight=0.5,
        # The paper's lr (1e-3) for the ViT: fine-tuned from that pretraining at the CNN's 1e-2, the ViT forgot it
        # (seed 0, AVG / WGA Waterbirds-like 0.62 / 0.04, ISIC-like 0.50 / 0.00: one class); at 3e-3 0.83 / 0.55
        # and 0.69 / 0.01; at 1e-3 0.90 / 0.76 and 0.70 / 0.04. Longer did not lift that ISIC-like set (seed 0, 1
        # thread): 6 epochs 0.70 / 0.03 (Waterbirds-like 0.90 / 0.77), 10 epochs 0.73 / 0.04, 6 at 3e-4 0.66 / 0.06:
        # its test set is group-balanced, so AVG is the groups' mean, and with MwP near 0.1 (the CNN's 0.10 there)
        # it stays near 0.75. With the ISIC-like knobs moved to the paper's accuracies (pipeline.runs), 3 epochs
        # reach 0.85 / 0.83 / 0.80 (seeds 0 / 1 / 2).
        vit_train=TrainSettings(epochs=3, lr=1e-3, batch_size=32),
        n_train=2000,
        n_val=400,
        n_test=800,
        sscore_samples=50,
        counterfactual_pairs=200,
        table2_models=("resnet_mini", "vit_mini"),
    ),
    "paper": ProfileSettings(
        profile="paper",
        image_size=224,
        cnn="resnet18",
        vit="vit_base_patch16_224",
        seeds=(0, 1, 2, 3, 4),
        train=TrainSettings(),
        pretrain="timm",
        pretrain_epochs=0,
        pretrain_images=0,
        n_train=4795,
        n_val=1199,
        n_test=5794,
        sscore_samples=50,
        counterfactual_pairs=300,
        table2_models=("resnet18", "resnet50", "resnext50_32x4d", "vit_base_patch16_224", "deit_base_patch16_224"),
    ),
}


def profile_settings(profile: str | ProfileSettings, *, dry_run: bool = False) -> ProfileSettings:
    """The settings of ``profile`` (a name, or settings already resolved), capped for a dry run if asked."""
    settings = profile if isinstance(profile, ProfileSettings) else PROFILE_SETTINGS[check_profile(profile)]
    return settings.as_dry_run() if dry_run and not settings.dry_run else settings
