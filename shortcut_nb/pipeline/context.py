"""The one small typed context a notebook builds once: profile settings, runs root, data folders, progress.

Studies take a :class:`Context` instead of a profile string, a root, a folder and a progress flag
threaded through every signature; the context's verbs are the pipeline's (runs, splits, features),
with the notebook's choices filled in::

    ctx = Context.build("cpu", folders={"waterbirds": "/data/waterbird_complete95_forest2water2"})
    spec = ctx.run_spec("waterbirds", arch="cnn", seed=0)
    model, info = ctx.train_or_load(spec)
    test = ctx.split(spec, "test")
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from torch import nn

from ..config import Profile, ProfileSettings, profile_settings, runs_root
from ..data import ShortcutDataset
from ..models import SplitModel
from ..vocab import Arch, DatasetName
from .feature_cache import FeatureSet, extract_features
from .runs import DataSpec, RunSpec, get_split, run_spec, train_or_load


@dataclass(frozen=True)
class Context:
    """Where and how a notebook's studies run.

    Attributes:
        settings: the profile's settings (models, image size, recipe, seeds, sizes).
        root: the runs root (artifacts: data, checkpoints, features, masks).
        folders: real dataset folders by dataset name; a dataset not named uses the synthetic benchmark.
        progress: show progress bars.
    """

    settings: ProfileSettings
    root: Path
    folders: Mapping[str, str] = field(default_factory=dict)
    progress: bool = True

    @classmethod
    def build(cls, profile: Profile | str, *, root: str | os.PathLike | None = None,
              folders: Mapping[str, str | os.PathLike] | None = None, progress: bool = True) -> "Context":
        """The context of ``profile``; ``root`` defaults to ``--runs-root`` / ``$SHORTCUT_NB_RUNS`` / ``runs/``."""
        unknown = sorted(set(folders or {}) - {"waterbirds", "isic"})
        if unknown:
            raise ValueError(f"folders names datasets 'waterbirds' and 'isic', got {unknown}")
        frozen = MappingProxyType({name: str(path) for name, path in (folders or {}).items() if path})
        return cls(settings=profile_settings(profile), root=runs_root(root), folders=frozen, progress=progress)

    @property
    def profile(self) -> Profile:
        return self.settings.profile

    def folder(self, dataset: str) -> str | None:
        """The real folder used for ``dataset``, or None for the synthetic benchmark."""
        return self.folders.get(dataset)

    def run_spec(self, dataset: DatasetName, *, arch: Arch = "cnn", **overrides: Any) -> RunSpec:
        """The run the profile prescribes for ``dataset`` and ``arch`` (see :func:`~.runs.run_spec`)."""
        overrides.setdefault("folder", self.folder(dataset))
        return run_spec(self.profile, dataset, arch=arch, **overrides)

    def train_or_load(self, spec: RunSpec) -> tuple[SplitModel, dict]:
        """The trained model of ``spec`` (see :func:`~.runs.train_or_load`)."""
        return train_or_load(spec, root=self.root, progress_bar=self.progress)

    def split(self, spec: RunSpec | DataSpec, split: str) -> ShortcutDataset:
        """One split of the run's (or data spec's) dataset folder."""
        return get_split(spec.data if isinstance(spec, RunSpec) else spec, split, root=self.root)

    def features(self, model: nn.Module, dataset: ShortcutDataset, **kwargs: Any) -> FeatureSet:
        """Penultimate features of ``dataset`` under ``model``, from the feature cache of this root."""
        return extract_features(model, dataset, root=self.root, progress_bar=self.progress, **kwargs)
