"""Notebook 02's study: models, splits, features and projections through the caches, and the neighbourhood numbers.

:class:`LatentSource` is the section's one contact with the run cache and the feature cache; its
dependencies (``get_model``, ``get_split``) are passed in, and :meth:`LatentSource.from_context` builds
them from the notebook's :class:`~shortcut_nb.pipeline.context.Context`. Everything it computes is kept
in memory too, so a view seen before redraws at once; ``log`` lists what each request cost.
"""
from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from ...data.groups import GroupScheme
from ...artifacts import atomic_write_bytes, stable_key
from ...config import check_profile
from ...embeddings import (PROJECTIONS, TSNE_ITER, Projection, TsneBackend, check_choice, library_version, project,
                           resolve_tsne_backend, within_class_neighbourhoods)
from ...pipeline.context import Context
from ...pipeline.feature_cache import FeatureSet, extract_features, feature_cache_dir
from ...pipeline.runs import RunSpec
from ...vocab import ARCHS, DATASETS, SPLITS, Split

ColourBy = Literal["group", "attribute", "class"]
COLOUR_BY: tuple[ColourBy, ...] = ("group", "attribute", "class")
Results = dict[str, dict]  # "<dataset>/<arch>/<split>" -> within_class_neighbourhoods(...) + dataset, arch, split, model


@dataclass(frozen=True)
class LatentView:
    """One picture: which model, data, projection and colouring."""

    dataset: str = "waterbirds"
    arch: str = "cnn"
    split: Split = "train"
    projection: Projection = "tsne"
    colour_by: ColourBy = "group"


@dataclass(frozen=True)
class Picture:
    """What one view draws: its 2-D coordinates (N, 2), classes ``y`` (N,), attributes ``a`` (N,), model name."""

    view: LatentView
    coords: np.ndarray
    y: np.ndarray
    a: np.ndarray
    model: str
    groups: GroupScheme | None = None  # the data's classes and attribute values (None: the paper's 2 × 2)


def result_key(dataset: str, arch: str, split: str) -> str:
    """The key of one model/dataset/split in :func:`neighbourhood_analysis` results."""
    return f"{dataset}/{arch}/{split}"


def projection_of(features: FeatureSet, *, method: Projection = "tsne", seed: int = 0, perplexity: float = 30.0,
                  n_neighbors: int = 15, tsne_backend: TsneBackend = "sklearn", tsne_iter: int = TSNE_ITER,
                  cache: bool = True) -> tuple[np.ndarray, dict]:
    """:func:`~shortcut_nb.embeddings.project` of a :class:`~shortcut_nb.pipeline.feature_cache.FeatureSet`,
    cached next to the features on disk.

    The projection cache key is the feature key plus method, seed, its parameters and the library version,
    so a new model or dataset (new feature key) never reuses an old picture.

    Returns:
        ``(coords (N, 2) float32, info)`` with ``info = {"method", "backend", "seconds" (compute time, kept
        in the cache), "from_cache", "path"}``.
    """
    check_choice("method", method, PROJECTIONS)
    backend = resolve_tsne_backend(tsne_backend) if method == "tsne" else method
    params = {"tsne": {"perplexity": float(perplexity), "iter": int(tsne_iter)},
              "umap": {"n_neighbors": int(n_neighbors)}, "pca": {}}[method]
    feature_file = features.get("path")
    path = None
    if cache and feature_file:
        key = stable_key(features["key"], method, int(seed), params, library_version(method, backend), length=16)
        path = Path(feature_file).with_name(f"{features['key']}.{method}-{key}.npz")
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    coords, seconds = data["coords"], float(data["seconds"])
                if coords.shape == (len(features["z"]), 2):
                    return coords, {"method": method, "backend": backend, "seconds": seconds, "from_cache": True,
                                    "path": str(path)}
            except Exception as err:  # noqa: BLE001 - unreadable entry: recompute
                warnings.warn(f"ignoring unreadable projection cache {path} ({err})")
    tic = time.perf_counter()
    coords = project(features["z"], method=method, seed=seed, perplexity=perplexity, n_neighbors=n_neighbors,
                     tsne_backend=tsne_backend, tsne_iter=tsne_iter)
    seconds = time.perf_counter() - tic
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, coords=coords, seconds=np.float64(seconds))
        atomic_write_bytes(path, buffer.getvalue())
    return coords, {"method": method, "backend": backend, "seconds": seconds, "from_cache": False,
                    "path": None if path is None else str(path)}


class LatentSource:
    """Models, splits, features and projections for the latent-space views, each computed at most once.

    Features go through :func:`~shortcut_nb.pipeline.feature_cache.extract_features` (disk cache keyed by
    weights and data), projections through :func:`projection_of` (disk cache next to the features); both are
    also kept in memory, so switching a view back and forth redraws at once. ``log`` lists what each request cost.

    Args:
        get_model: ``(dataset, arch) -> model`` with ``f_enc`` (called once per pair).
        get_split: ``(dataset, split) -> Dataset`` (called once per pair).
        datasets, archs: the choices offered (by name).
        seed: seed of projections.
        cache_dir: where features are cached (see :func:`~shortcut_nb.pipeline.feature_cache.feature_cache_dir`).
        tsne_backend: see :func:`~shortcut_nb.embeddings.resolve_tsne_backend`.
        batch_size, progress_bar: passed to feature extraction.
    """

    def __init__(self, get_model: Callable[[str, str], nn.Module], get_split: Callable[[str, str], Dataset], *,
                 datasets: Sequence[str] = DATASETS, archs: Sequence[str] = ARCHS, seed: int = 0, cache_dir=None,
                 tsne_backend: TsneBackend = "sklearn", batch_size: int = 128, progress_bar: bool = True):
        if not callable(get_model) or not callable(get_split):
            raise TypeError("get_model and get_split must be callables: (dataset, arch) -> model, "
                            "(dataset, split) -> Dataset")
        self._get_model, self._get_split = get_model, get_split
        self.datasets, self.archs = tuple(datasets), tuple(archs)
        self.seed = int(seed)
        self.cache_dir = feature_cache_dir(cache_dir)
        self.tsne_backend = resolve_tsne_backend(tsne_backend)
        self.batch_size, self.progress_bar = batch_size, progress_bar
        self._models: dict[tuple[str, str], nn.Module] = {}
        self._splits: dict[tuple[str, str], Dataset] = {}
        self._features: dict[tuple[str, str, str], FeatureSet] = {}
        self._coords: dict[tuple[str, str, str, str], np.ndarray] = {}
        self.log: list[dict] = []

    @classmethod
    def from_context(cls, ctx: Context, *, datasets: Sequence[str] = DATASETS, archs: Sequence[str] = ARCHS,
                     seed: int = 0, **kwargs) -> LatentSource:
        """The context's trained models (``ctx.train_or_load``, trained on first use) and dataset splits (the
        context's real data folders where it names one, else the synthetic benchmark); features cached under
        ``<ctx.root>/features``."""

        def get_model(dataset: str, arch: str) -> nn.Module:
            return ctx.train_or_load(model_spec(ctx, dataset, arch, seed))[0]

        def get_data(dataset: str, split: str) -> Dataset:
            return ctx.split(ctx.run_spec(dataset, seed=seed), split)

        kwargs.setdefault("progress_bar", ctx.progress)
        return cls(get_model, get_data, datasets=datasets, archs=archs, seed=seed,
                   cache_dir=feature_cache_dir(root=ctx.root), **kwargs)

    def check(self, view: LatentView) -> LatentView:
        """``view`` if every field is an offered choice, else ValueError naming the field."""
        if not isinstance(view, LatentView):
            raise TypeError(f"view must be a LatentView, got {type(view).__name__}")
        check_choice("dataset", view.dataset, self.datasets)
        check_choice("arch", view.arch, self.archs)
        check_choice("split", view.split, SPLITS)
        check_choice("projection", view.projection, PROJECTIONS)
        check_choice("colour_by", view.colour_by, COLOUR_BY)
        return view

    def model(self, dataset: str, arch: str) -> nn.Module:
        key = (dataset, arch)
        if key not in self._models:
            self._models[key] = self._get_model(dataset, arch)
        return self._models[key]

    def model_name(self, dataset: str, arch: str) -> str:
        """The model's name (its ``name`` attribute, else the arch)."""
        return getattr(self.model(dataset, arch), "name", arch)

    def split(self, dataset: str, split: str) -> Dataset:
        key = (dataset, split)
        if key not in self._splits:
            self._splits[key] = self._get_split(dataset, split)
        return self._splits[key]

    def features(self, dataset: str, arch: str, split: str) -> FeatureSet:
        key = (dataset, arch, split)
        if key not in self._features:
            feats = extract_features(self.model(dataset, arch), self.split(dataset, split), batch_size=self.batch_size,
                                     cache_dir=self.cache_dir, progress_bar=self.progress_bar)
            self.log.append({"what": "features", "dataset": dataset, "arch": arch, "split": split,
                             "model": self.model_name(dataset, arch), "n": len(feats["z"]),
                             "d": int(feats["z"].shape[1]), "from_cache": feats["from_cache"],
                             "seconds": feats["seconds"], "extract_seconds": feats["extract_seconds"]})
            self._features[key] = feats
        return self._features[key]

    def coords(self, dataset: str, arch: str, split: str, projection: Projection) -> np.ndarray:
        key = (dataset, arch, split, projection)
        if key not in self._coords:
            coords, info = projection_of(self.features(dataset, arch, split), method=projection, seed=self.seed,
                                         tsne_backend=self.tsne_backend)
            self.log.append({"what": "projection", "dataset": dataset, "arch": arch, "split": split,
                             "method": projection, "backend": info["backend"], "n": len(coords),
                             "from_cache": info["from_cache"], "seconds": info["seconds"]})
            self._coords[key] = coords
        return self._coords[key]

    def picture(self, view: LatentView) -> Picture:
        """What ``view`` draws (features and projection from the caches)."""
        self.check(view)
        feats = self.features(view.dataset, view.arch, view.split)
        coords = self.coords(view.dataset, view.arch, view.split, view.projection)
        return Picture(view, coords, feats["y"], feats["a"], self.model_name(view.dataset, view.arch),
                       self.groups(view.dataset, view.split))

    def groups(self, dataset: str, split: str) -> GroupScheme | None:
        """The dataset's :class:`~shortcut_nb.data.groups.GroupScheme` (None for a dataset that carries none)."""
        return getattr(self.split(dataset, split), "groups", None)


# --------------------------------------------------------------------------- notebook flow


def model_spec(ctx: Context, dataset: str, arch: str, seed: int) -> RunSpec:
    """The trained run whose features a view shows."""
    return ctx.run_spec(dataset, arch=arch, seed=seed)


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[RunSpec]:
    """What notebook 02 trains with these parameters (its ``parameters`` cell), for ``sweep plan``: its own seed's
    models, then every other profile seed's (:func:`seed_neighbourhoods` measures each)."""
    seed = int(parameters.get("SEED", 0))
    return [model_spec(ctx, ds, arch, s) for s in ctx.seeds(seed) for ds in ctx.datasets(parameters.get("DATASETS"))
            for arch in ctx.archs(parameters.get("ARCHS", ARCHS))]


def default_projections(profile: str) -> tuple[Projection, ...]:
    """Projections the notebook draws statically: t-SNE (the paper's) everywhere, plus UMAP outside ``smoke``.

    UMAP's first call in a process compiles numba code (20-45 s on two busy cores), too much for the smoke
    profile's one-minute budget; the widget still offers it.
    """
    return ("tsne",) if check_profile(profile) == "smoke" else ("tsne", "umap")


def extract_all(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str],
                splits: Sequence[str]) -> list[dict]:
    """Features of every (dataset, arch, split) through ``source`` (disk cache first); the log row of each new
    request (``from_cache``, seconds)."""
    start = len(source.log)
    for dataset in datasets:
        for arch in archs:
            for split in splits:
                source.features(dataset, arch, split)
    return [r for r in source.log[start:] if r["what"] == "features"]


def fig3_pictures(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str], split: str = "train",
                  projection: Projection = "tsne", colour_by: ColourBy = "group") -> list[list[Picture]]:
    """Paper Fig. 3's panels: one :class:`Picture` per (dataset row, model column)."""
    return [[source.picture(LatentView(dataset, arch, split, projection, colour_by)) for arch in archs]
            for dataset in datasets]


def neighbourhood_analysis(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str],
                           splits: Sequence[str] = ("train",), k: int = 10, n_shuffles: int = 200,
                           seed: int = 0) -> Results:
    """:func:`~shortcut_nb.embeddings.within_class_neighbourhoods` for every (dataset, arch, split), keyed
    ``"<dataset>/<arch>/<split>"``.

    Each value also carries ``dataset``, ``arch``, ``split`` and ``model``.
    """
    for name, values, allowed in (("splits", splits, SPLITS), ("datasets", datasets, source.datasets),
                                  ("archs", archs, source.archs)):
        for v in values:
            check_choice(name[:-1], v, allowed)
    results: Results = {}
    for dataset in datasets:
        for arch in archs:
            for split in splits:
                feats = source.features(dataset, arch, split)
                res = within_class_neighbourhoods(feats["z"], feats["y"], feats["a"], k=k, n_shuffles=n_shuffles,
                                                  seed=seed)
                groups = source.groups(dataset, split)
                res.update({"dataset": dataset, "arch": arch, "split": split,
                            "model": source.model_name(dataset, arch),
                            "class_names": list(groups.classes) if groups is not None else None})
                results[result_key(dataset, arch, split)] = res
    return results


#: What is recorded of each seed's neighbourhood result (``neighbourhoods_per_seed``): the claim's numbers.
SEED_KEYS = ("seed", "purity", "baseline", "lift", "p_value", "lift_interval")


def seed_neighbourhoods(ctx: Context, results: Results, *, datasets: Sequence[str], archs: Sequence[str],
                        split: str = "train", k: int = 10, n_shuffles: int = 200, seed: int = 0,
                        seeds: Sequence[int] | None = None, **source_kwargs) -> dict[str, list[dict]]:
    """The within-class attribute purity of every seed's models on ``split`` (the claim's), to decide the claim
    over seeds: ``{"<dataset>/<arch>/<split>": [{"seed", "purity", "baseline", "lift", "p_value", "lift_interval"},
    ...]}`` (``lift_interval``: the seed's own bootstrap over samples, which decides a one-seed claim).

    ``seeds``: None: the profile's (:meth:`Context.seeds`, ``seed`` first). ``results`` (the notebook's own, for
    ``seed``) are reused; another seed's models come from the run cache (notebook 01 trains them) and its features
    from the feature cache when present. Each seed's shuffles are seeded with that seed.
    """
    out: dict[str, list[dict]] = {}
    for s in ctx.seeds(seed, seeds):
        keys = [result_key(dataset, arch, split) for dataset in datasets for arch in archs]
        if s == int(seed) and all(key in results for key in keys):
            mine = results
        else:
            source = LatentSource.from_context(ctx, datasets=datasets, archs=archs, seed=s, **source_kwargs)
            mine = neighbourhood_analysis(source, datasets=datasets, archs=archs, splits=(split,), k=k,
                                          n_shuffles=n_shuffles, seed=s)
        for dataset in datasets:
            for arch in archs:
                key = result_key(dataset, arch, split)
                att = mine[key]["attribute"]
                out.setdefault(key, []).append({"seed": int(s), **{name: att.get(name) for name in SEED_KEYS[1:]}})
    return out


def view_results(results: Mapping[str, Mapping] | None, view: LatentView) -> Mapping | None:
    """``view``'s numbers in ``results`` (None when not measured, or when no results are given)."""
    return None if results is None else results.get(result_key(view.dataset, view.arch, view.split))
