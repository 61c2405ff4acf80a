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
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence, TypeVar

from torch import nn

from ..config import Profile, ProfileSettings, profile_settings, runs_root
from ..data import ShortcutDataset, read_metadata
from ..data.fingerprint import folder_fingerprint
from ..data.samples import MaskedSamples, draw_masked_samples
from ..data.transforms import normalization
from ..artifacts import file_hash, weights_hash
from ..counterfactuals import Pairs, pairs
from ..models import SplitModel, cached_timm_weights, checkpoint_arch, model_kind
from ..vocab import DATASETS, Arch, DatasetName
from .feature_cache import FeatureSet, extract_features
from .preflight import check_inputs, check_masks
from .runs import DataSpec, RunSpec, get_split, run_spec, train_or_load, weights_note
from .train import predict

T = TypeVar("T")


@dataclass
class RunLog:
    """How many cached runs a notebook trained now and how many it loaded (recorded as ``"runs"``)."""

    trained: int = 0
    loaded: int = 0
    weights: dict[str, str] = field(default_factory=dict)  # model name -> what its backbone started from
    heads: dict[str, str] = field(default_factory=dict)  # a researcher's model -> weights_hash of the head analysed
    hashes: dict[str, str] = field(default_factory=dict)  # run folder (or model) -> weights_hash of the model analysed

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
        folders: real dataset folders by dataset name (any name; ``waterbirds`` and ``isic`` are the paper's); a
            paper dataset not named uses the synthetic benchmark.
        model: the researcher's model (a timm name, ``torchvision:<name>``, a checkpoint file), or None: the
            profile's CNN and ViT. It takes the place of the profile's model of its kind.
        checkpoint: the trained weights of ``model``, analysed as they are (never retrained), or None.
        normalize: the input normalisation the model expects (``((mean), (std))``; None: ImageNet's).
        progress: show progress bars.
        run_log: what :meth:`train_or_load` trained and loaded (and the mask runs, which note it too).
    """

    settings: ProfileSettings
    root: Path
    folders: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    checkpoint: str | None = None
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    progress: bool = True
    run_log: RunLog = field(default_factory=RunLog, compare=False)
    #: datasets left out of an analysis, with the reason (e.g. no masks for s-scores); recorded in :meth:`record`
    skipped: dict[str, str] = field(default_factory=dict, compare=False)
    #: the data folders :meth:`datasets` has checked (each once per notebook)
    checked: set[str] = field(default_factory=set, compare=False)
    #: every dataset :meth:`datasets` chose, in order; recorded with its source in :meth:`record`
    chosen: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def build(cls, profile: Profile | str, *, root: str | os.PathLike | None = None,
              folders: Mapping[str, str | os.PathLike] | None = None, progress: bool = True,
              dry_run: bool = False, model: str | None = None, checkpoint: str | os.PathLike | None = None,
              image_size: int | None = None, normalize: Any = None) -> "Context":
        """The context of ``profile``; ``root`` defaults to ``--runs-root`` / ``$SHORTCUT_NB_RUNS`` / ``runs/``.

        ``dry_run`` caps the profile's sizes and nothing else (:meth:`~shortcut_nb.config.ProfileSettings.as_dry_run`).
        ``folders`` may name any dataset (a folder per name; the paper's two fall back to the synthetic benchmark).
        ``model`` / ``checkpoint``: a researcher's classifier, analysed as it is (one model: one seed, no
        pretraining, no minority sweep). ``image_size`` and ``normalize`` (a name such as ``"imagenet"`` or
        ``"inception"``, or ``{"mean": [...], "std": [...]}``) are the input the model was trained with.
        """
        frozen = MappingProxyType({str(name): str(path) for name, path in (folders or {}).items() if path})
        if model is not None and checkpoint is None and Path(model).is_file():  # a checkpoint naming its arch
            model, checkpoint = checkpoint_arch(model), model
        if checkpoint is not None and model is None:
            raise ValueError("CHECKPOINT needs MODEL: the architecture (a timm name, 'torchvision:<name>') of the weights")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"CHECKPOINT {checkpoint}: file not found")
        settings = profile_settings(profile, dry_run=dry_run)
        if image_size is not None:
            settings = replace(settings, image_size=int(image_size))
        if model is not None:
            kind = model_kind(str(model))
            settings = replace(settings, table2_models=(str(model),),
                               **({"vit": str(model)} if kind == "vit" else {"cnn": str(model)}))
        if checkpoint is not None and image_size is None:
            warnings.warn(f"IMAGE_SIZE is not given: {checkpoint} is analysed at the {settings.profile} profile's "
                          f"{settings.image_size} px; pass the size the model was trained at (IMAGE_SIZE, "
                          "--image-size)", stacklevel=2)
        if checkpoint is not None:  # one trained model: one seed, nothing to pretrain, no synthetic sweep
            settings = replace(settings, seeds=(0,), minority_ratios=())
        if any(name not in DATASETS for name in frozen):
            settings = replace(settings, minority_ratios=())  # the sweep regenerates the synthetic benchmark
        norm = normalization(normalize)
        return cls(settings=settings, root=runs_root(root), folders=frozen, progress=progress,
                   model=str(model) if model is not None else None,
                   checkpoint=str(Path(checkpoint).resolve()) if checkpoint is not None else None,
                   normalize=None if norm.is_imagenet else (tuple(norm.mean), tuple(norm.std)))

    @property
    def user_run(self) -> bool:
        """Whether this is a researcher's own data or model (no paper verdicts, nothing synthetic)."""
        return self.checkpoint is not None or any(name not in DATASETS for name in self.folders)

    def datasets(self, requested: Sequence[str] | None = None, *, needs_masks: bool = False,
                 mask_free_fallback: bool = False) -> tuple[str, ...]:
        """The datasets a notebook analyses: ``requested`` (an empty list means none), else the named folders when
        any, else the paper's two (the synthetic benchmark). A name that is neither the paper's nor a folder's is an
        error naming ``DATA_FOLDERS``.

        ``needs_masks`` (the s-score notebooks): a folder without a ``mask_filename`` column is left out, said at
        once (a warning, before any training) and recorded in :attr:`skipped`; when none is left, an error says so,
        unless the notebook has a ``mask_free_fallback`` for them (notebook 03 ranks their neurons without masks): then
        the s-score sections get no dataset.

        Every data folder among them is checked first (:func:`~.preflight.check_inputs`: all splits, every file,
        groups, duplicates; masks in training for ``needs_masks``): one error lists every problem, before anything
        trains. The synthetic benchmark is not checked (generated here, checked by the tests).
        """
        chosen = tuple(requested) if requested is not None else (tuple(self.folders) or DATASETS)
        unknown = [d for d in chosen if d not in DATASETS and d not in self.folders]
        if unknown:
            raise ValueError(f"datasets {unknown} have no folder: name them in DATA_FOLDERS (--data NAME=PATH); the "
                             f"synthetic benchmark has only {list(DATASETS)}")
        # every problem of every folder the notebook reads, in one error, before anything trains (issue 28)
        user = {name: self.folder(name) for name in chosen if self.folder(name) is not None}
        check_inputs({name: folder for name, folder in user.items() if folder not in self.checked}, root=self.root)
        self.checked.update(user.values())
        self.chosen.extend(name for name in chosen if name not in self.chosen)
        if not needs_masks:
            return chosen
        for name in chosen:
            folder = self.folder(name)
            if folder is not None and not read_metadata(folder)[1].has_masks:
                self.skipped[name] = (f"{folder}/metadata.csv has no mask_filename column (or no mask in it): "
                                      "s-scores need a mask of the spurious region per image")
                warnings.warn(f"{name} is left out of this notebook: {self.skipped[name]}. Notebooks 01 and 02, and "
                              "shortcut_nb.group_report / latent_purity / dfr, need no masks.", stacklevel=2)
        kept = tuple(name for name in chosen if name not in self.skipped)
        if chosen and not kept and not mask_free_fallback:
            raise ValueError(f"no dataset to score: {'; '.join(f'{k}: {v}' for k, v in self.skipped.items())}")
        check_masks({name: user[name] for name in kept if name in user})
        return kept

    def headline(self, datasets: Sequence[str], preferred: str | None) -> str | None:
        """The dataset a notebook's figures and widgets open on: ``preferred`` when analysed, else the first; None
        when every dataset was left out for want of masks (:meth:`datasets`' ``mask_free_fallback``)."""
        if not datasets:
            if self.skipped:
                return None
            raise ValueError("no dataset is analysed (DATASETS is empty)")
        return preferred if preferred in datasets else datasets[0]

    def archs(self, requested: Sequence[Arch] = ("cnn", "vit")) -> tuple[Arch, ...]:
        """The architectures analysed: with a researcher's checkpoint, only its own kind."""
        if self.checkpoint is None:
            return tuple(requested)
        kind = model_kind(str(self.model))
        return tuple(a for a in requested if a == kind)

    def minority_ratios(self, requested: Sequence[float] | None = None) -> tuple[float, ...]:
        """Notebook 01's sweep: ``requested`` (an empty list means none), else the profile's (none in a user run)."""
        return tuple(requested) if requested is not None else tuple(self.settings.minority_ratios)

    def record(self) -> dict:
        """What a notebook records about its inputs: each dataset's source (``synthetic benchmark``, or its folder with
        a content fingerprint), model, checkpoint, weights hashes of the models analysed, seeds, device-independent
        settings (input size, normalisation)."""
        norm = normalization(None if self.normalize is None else tuple(self.normalize))
        folders = {name: {"path": path, "metadata_sha256": file_hash(Path(path) / "metadata.csv"),
                          "fingerprint": folder_fingerprint(path)}
                   for name, path in self.folders.items()}
        sources = {name: ({"source": "folder", **folders[name]} if name in folders else
                          {"source": "synthetic benchmark", "synthetic": True}) for name in self.chosen}
        checkpoint = None if self.checkpoint is None else {"path": self.checkpoint,
                                                           "sha256": file_hash(self.checkpoint)}
        return {"data_folders": folders, "datasets": sources, "skipped": dict(self.skipped), "model": self.model,
                "models": {"cnn": self.settings.cnn, "vit": self.settings.vit}, "checkpoint": checkpoint,
                "head_sha256": dict(self.run_log.heads), "weights": dict(self.run_log.weights),
                "weights_sha256": dict(self.run_log.hashes), "seeds": list(self.settings.seeds),
                "image_size": self.settings.image_size, "normalize": norm.as_record(), "user_run": self.user_run}

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
        if self.normalize is not None:
            overrides.setdefault("normalize", self.normalize)
        model = overrides.get("model") or (self.settings.cnn if arch == "cnn" else self.settings.vit)
        if self.checkpoint is not None and model == self.model:
            overrides.setdefault("checkpoint", self.checkpoint)
        if (self.settings.pretrain == "standin" and overrides["folder"] is not None
                and not {"init", "pretrain", "checkpoint"} & set(overrides)):
            overrides["init"] = self._folder_init(dataset, model)
        spec = run_spec(self.settings, dataset, arch=arch, **overrides)
        self.run_log.weights[spec.model] = weights_note(spec)
        return spec

    def _folder_init(self, dataset: str, model: str) -> str:
        """How a model trained on a dataset folder starts where the profile prescribes the stand-in pretraining: that
        pretraining is made for the synthetic benchmark, so a folder's model starts from ImageNet weights cached here
        (timm), else from random weights; said in a warning."""
        init = "timm" if cached_timm_weights(model) is not None else "none"
        how = ("timm's ImageNet weights (cached here)" if init == "timm" else
               "random weights (no ImageNet weights of it are cached here; pass CHECKPOINT to analyse a trained "
               "model, or use the paper profile with cached timm weights)")
        # one warning per message: Python shows a repeated warning once
        warnings.warn(f"{dataset} ({self.folders[dataset]}) is not the synthetic benchmark: the "
                      f"{self.settings.profile} profile's stand-in pretraining is made for that benchmark, so "
                      f"{model} is trained on it from {how}", stacklevel=3)
        return init

    def train_or_load(self, spec: RunSpec) -> tuple[SplitModel, dict]:
        """The trained model of ``spec`` (see :func:`~.runs.train_or_load`); noted in :attr:`run_log`."""
        model, info = train_or_load(spec, root=self.root, progress_bar=self.progress)
        self.run_log.note(trained=info["trained_now"])
        self.run_log.hashes[Path(info["run_dir"]).name if info.get("run_dir") else spec.model] = weights_hash(model)
        if spec.checkpoint is not None:
            self.run_log.heads[spec.model] = weights_hash(model.head)
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

    def counterfactual_pairs(self, spec: RunSpec | DataSpec, *, seed: int = 0, n: int | None = None,
                             split: str = "val") -> tuple[Pairs, Pairs]:
        """The counterfactual pairs of a run: ``n`` (default: the profile's ``counterfactual_pairs``, at most the
        split's size) images of ``split`` with the spurious attribute flipped and, the same images, with the core
        flipped (:func:`~shortcut_nb.counterfactuals.pairs`). The one draw: the same ``seed`` gives every model of a
        dataset the same pairs.

        Raises:
            ValueError: the folder is not the synthetic benchmark (only it flips the core; see
                :func:`~shortcut_nb.counterfactuals.core_flip_unavailable`).
        """
        data = self.split(spec, split)
        size = min(n or self.settings.counterfactual_pairs, len(data))
        return pairs(data, size, seed, "attribute"), pairs(data, size, seed, "core")

    def features(self, model: nn.Module, dataset: ShortcutDataset, **kwargs: Any) -> FeatureSet:
        """Penultimate features of ``dataset`` under ``model``, from the feature cache of this root."""
        return extract_features(model, dataset, root=self.root, progress_bar=self.progress, **kwargs)
