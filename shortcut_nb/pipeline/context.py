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
from typing import Any, Callable, Mapping, Sequence, TypeVar

from torch import nn

from ..config import Profile, ProfileSettings, profile_settings, runs_root
from ..data import ShortcutDataset
from ..data.samples import MaskedSamples, draw_masked_samples
from ..models import SplitModel
from ..vocab import Arch, DatasetName
from .feature_cache import FeatureSet, extract_features
from .runs import DataSpec, RunSpec, get_split, run_spec, train_or_load, weights_note
from .train import predict

T = TypeVar("T")


@dataclass
class RunLog:
    """How many cached runs a notebook trained now and how many it loaded (recorded as ``"runs"``)."""

    trained: int = 0
    loaded: int = 0
    weights: dict[str, str] = field(default_factory=dict)  # model name -> what its backbone started from

    def note(self, *, trained: bool) -> None:
        if trained:
            self.trained += 1
        else:
            self.loaded += 1

    def as_record(self) -> dict[str, int]:
        return {"trained": self.trained, "loaded": self.loaded}

    def weights_record(self) -> str | dict[str, str]:
        """What the notebook's models started from: one phrase when all agree (``"random (dry run)"``), else per model."""
        notes = set(self.weights.values())
        return notes.pop() if len(notes) == 1 else dict(self.weights)


@dataclass(frozen=True)
class Context:
    """Where and how a notebook's studies run.

    Attributes:
        settings: the profile's settings (models, image size, recipe, seeds, sizes).
        root: the runs root (artifacts: data, checkpoints, features, masks).
        folders: real dataset folders by dataset name; a dataset not named uses the synthetic benchmark.
        progress: show progress bars.
        run_log: what :meth:`train_or_load` trained and loaded (and the mask runs, which note it too).
    """

    settings: ProfileSettings
    root: Path
    folders: Mapping[str, str] = field(default_factory=dict)
    progress: bool = True
    run_log: RunLog = field(default_factory=RunLog, compare=False)

    @classmethod
    def build(cls, profile: Profile | str, *, root: str | os.PathLike | None = None,
              folders: Mapping[str, str | os.PathLike] | None = None, progress: bool = True,
              dry_run: bool = False) -> "Context":
        """The context of ``profile``; ``root`` defaults to ``--runs-root`` / ``$SHORTCUT_NB_RUNS`` / ``runs/``.

        ``dry_run`` caps the profile's sizes and nothing else (:meth:`~shortcut_nb.config.ProfileSettings.as_dry_run`).
        """
        unknown = sorted(set(folders or {}) - {"waterbirds", "isic"})
        if unknown:
            raise ValueError(f"folders names datasets 'waterbirds' and 'isic', got {unknown}")
        frozen = MappingProxyType({name: str(path) for name, path in (folders or {}).items() if path})
        return cls(settings=profile_settings(profile, dry_run=dry_run), root=runs_root(root), folders=frozen,
                   progress=progress)

    @property
    def profile(self) -> Profile:
        return self.settings.profile

    def seeds(self, first: int = 0, seeds: Sequence[int] | None = None) -> tuple[int, ...]:
        """The seeds a notebook analyses: ``first`` (its own), then ``seeds`` (None: the profile's), each once."""
        return tuple(dict.fromkeys([int(first), *(int(s) for s in (self.settings.seeds if seeds is None else seeds))]))

    def by_seed(self, datasets: Sequence[str], build: Callable[[str, int], T], seeds: Sequence[int] | None = None, *,
                own: Mapping[str, T] | None = None, own_seed: int = 0) -> dict[str, dict[int, T]]:
        """``{dataset: {seed: build(dataset, seed)}}`` over :meth:`seeds` (``own_seed`` first); ``own`` (the
        notebook's results for ``own_seed``) are reused, not built again."""
        return {ds: {seed: (own[ds] if own is not None and seed == int(own_seed) and ds in own else build(ds, seed))
                     for seed in self.seeds(own_seed, seeds)} for ds in datasets}

    def folder(self, dataset: str) -> str | None:
        """The real folder used for ``dataset``, or None for the synthetic benchmark."""
        return self.folders.get(dataset)

    def run_spec(self, dataset: DatasetName, *, arch: Arch = "cnn", **overrides: Any) -> RunSpec:
        """The run the profile prescribes for ``dataset`` and ``arch`` (see :func:`~.runs.run_spec`)."""
        overrides.setdefault("folder", self.folder(dataset))
        spec = run_spec(self.settings, dataset, arch=arch, **overrides)
        self.run_log.weights[spec.model] = weights_note(spec)
        return spec

    def train_or_load(self, spec: RunSpec) -> tuple[SplitModel, dict]:
        """The trained model of ``spec`` (see :func:`~.runs.train_or_load`); noted in :attr:`run_log`."""
        model, info = train_or_load(spec, root=self.root, progress_bar=self.progress)
        self.run_log.note(trained=info["trained_now"])
        return model, info

    def split(self, spec: RunSpec | DataSpec, split: str) -> ShortcutDataset:
        """One split of the run's (or data spec's) dataset folder."""
        return get_split(spec.data if isinstance(spec, RunSpec) else spec, split, root=self.root)

    def evaluate(self, model: nn.Module, spec: RunSpec | DataSpec, split: str = "test") -> dict:
        """Predictions of ``model`` on one split (see :func:`~.train.predict`)."""
        return predict(model, self.split(spec, split))

    def masked_samples(self, spec: RunSpec | DataSpec, *, seed: int, n: int | None = None) -> MaskedSamples:
        """The s-score samples of a run: ``n`` (default: the profile's) training images with a non-empty mask.

        The one draw every notebook makes (:func:`~shortcut_nb.data.samples.draw_masked_samples`): the same
        ``seed`` scores every model of a dataset on the same images.
        """
        return draw_masked_samples(self.split(spec, "train"), n or self.settings.sscore_samples, seed)

    def features(self, model: nn.Module, dataset: ShortcutDataset, **kwargs: Any) -> FeatureSet:
        """Penultimate features of ``dataset`` under ``model``, from the feature cache of this root."""
        return extract_features(model, dataset, root=self.root, progress_bar=self.progress, **kwargs)
