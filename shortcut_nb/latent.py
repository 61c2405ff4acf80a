"""Paper §4.2 (Fig. 3): the latent space — 2-D projections of penultimate features, and numbers for what they show.

The paper shows t-SNE pictures of ``z = f_enc(x)`` on the training set and reads
them: *within each class the samples cluster by the spurious feature* (ResNet-18),
and *samples sharing the spurious feature blend across classes* (ViT-B/16). A
picture of a projection can mislead (t-SNE invents and hides clusters), so this
module measures the same thing on the features themselves:

* **Within-class attribute purity.** Inside one class, each sample's ``k`` nearest
  neighbours (Euclidean, on ``z``, among samples of the same class) are looked
  up; its purity is the share of them with the sample's own spurious attribute.
  Averaged per attribute value and then over the two values ("balanced"), so the
  95 / 5 % imbalance of a training class does not make a high number by itself.
* **Shuffled-label baseline.** The same purity with the attribute labels permuted
  inside the class (group sizes kept, neighbourhoods kept): what purity looks like
  when neighbourhoods ignore the attribute. It sits near 0.5 for the balanced
  score; the observed value is compared with its permutation distribution
  (``p_value``, ``lift = purity − baseline``).
* **Silhouette** by attribute within a class (and by class over all samples),
  with a shuffled baseline near 0, as a second, distance-based view.
* **Class purity** over all samples, for contrast: how strongly neighbourhoods
  follow the label the model was trained on.

Projections (t-SNE by scikit-learn, or openTSNE if asked for; UMAP; PCA) are
for looking only; every number here is computed in the ``d``-dimensional space.
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from .artifacts import atomic_write_bytes, stable_key
from .claims import claim
from .vocab import GROUP_NAMES
from .pipeline.feature_cache import FeatureSet, extract_features, feature_cache_dir

Projection = Literal["tsne", "umap", "pca"]
ColourBy = Literal["group", "attribute", "class"]
TsneBackend = Literal["sklearn", "opentsne"]
Split = Literal["train", "val", "test"]
Arch = Literal["cnn", "vit"]

PROJECTIONS: tuple[Projection, ...] = ("tsne", "umap", "pca")
COLOUR_BY: tuple[ColourBy, ...] = ("group", "attribute", "class")
SPLITS: tuple[Split, ...] = ("train", "val", "test")
ARCHS: tuple[Arch, ...] = ("cnn", "vit")
PROJECTION_LABELS = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}
TSNE_ITER = 750  # openTSNE's default schedule: 250 early-exaggeration + 500 iterations

# Styling: hue = spurious attribute (brown/ochre: land or no patch; teal: water or patch), shade = class,
# marker = class (o: class 0, ^: class 1). Every group is a distinct (colour, marker) pair.
GROUP_COLOURS = ("#8c510a", "#35978f", "#dfc27d", "#01665e")  # G0, G1, G2, G3 (g = 2y + a)
ATTRIBUTE_COLOURS = ("#bf812d", "#35978f")
CLASS_COLOURS = ("#1b9e77", "#d95f02")
CLASS_MARKERS = ("o", "^")
ATTRIBUTE_MARKERS = ("o", "s")
ATTRIBUTE_NAMES = {"waterbirds": ("land", "water"), "isic": ("no patch", "patch")}
CLASS_NAMES = {"waterbirds": ("landbird", "waterbird"), "isic": ("benign", "malignant")}


# --------------------------------------------------------------------------- input checks


def _features_2d(z, name: str = "z") -> np.ndarray:
    arr = np.asarray(z)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (N, d), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- projections


def resolve_tsne_backend(backend: TsneBackend = "sklearn") -> Literal["sklearn", "opentsne"]:
    """Validate a t-SNE implementation name: ``"sklearn"`` (default, a core dependency) or ``"opentsne"``
    (optional: ``pip install openTSNE``).

    Why scikit-learn: with its OpenMP threads capped (see :func:`project`), it took the same time as openTSNE's
    FFT t-SNE at the same iteration count on 2,400 x 256 features (34 s vs 34 s, 44 s vs 40 s on two busy
    cores), so openTSNE is not worth a dependency here; it stays selectable for larger sets.

    Raises:
        ValueError: an unknown backend name.
        ImportError: ``"opentsne"`` asked for but not installed.
    """
    _check_choice("tsne_backend", backend, ("sklearn", "opentsne"))
    if backend == "opentsne" and importlib.util.find_spec("openTSNE") is None:
        raise ImportError("tsne_backend='opentsne' needs the openTSNE package: pip install openTSNE")
    return backend  # type: ignore[return-value]


def _library_version(method: Projection, backend: str) -> str:
    module = {"umap": "umap", "pca": "sklearn"}.get(method) or ("openTSNE" if backend == "opentsne" else "sklearn")
    return f"{module}-{getattr(importlib.import_module(module), '__version__', '?')}"


def _pca_2d(z: np.ndarray) -> np.ndarray:
    """First two principal components by SVD (zeros where the features have rank < 2)."""
    centred = z.astype(np.float64) - z.mean(0, keepdims=True)
    out = np.zeros((len(z), 2), dtype=np.float64)
    if len(z) > 1 and np.abs(centred).max() > 0:
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        r = min(2, len(s))
        out[:, :r] = u[:, :r] * s[:r]
        # SVD signs are arbitrary; fix them so the same data always gives the same picture
        signs = np.sign(out[np.abs(out).argmax(0), np.arange(2)])
        out *= np.where(signs == 0, 1.0, signs)
    return out.astype(np.float32)


def project(z, *, method: Projection = "tsne", seed: int = 0, perplexity: float = 30.0, n_neighbors: int = 15,
            tsne_backend: TsneBackend = "sklearn", tsne_iter: int = TSNE_ITER, n_jobs: int = 1) -> np.ndarray:
    """Project features to 2-D for display. The same inputs and seed give the same coordinates.

    Args:
        z: features, shape (N, d).
        method: ``"tsne"`` (paper Fig. 3), ``"umap"`` or ``"pca"``.
        seed: random state of the projection.
        perplexity: t-SNE perplexity, lowered to ``(N - 1) / 3`` for small N.
        n_neighbors: UMAP neighbourhood size, lowered to ``N - 1`` for small N.
        tsne_backend: ``"sklearn"`` or ``"opentsne"`` (see :func:`resolve_tsne_backend`).
        tsne_iter: t-SNE iterations in all (250 of them early exaggeration), openTSNE's default schedule.
        n_jobs: threads for t-SNE. 1 by default: on shared, oversubscribed CPUs scikit-learn's OpenMP threads
            busy-wait (a 160-point t-SNE took 40-50 s with 2 threads and 1.5 s with 1). The coordinates do not
            depend on it. UMAP always runs on one thread (fixing its seed requires that).

    Returns:
        float32 array (N, 2). Degenerate inputs (fewer than 5 samples, or fewer than 3 distinct feature
        vectors, e.g. a collapsed model) fall back to PCA, which stays defined where t-SNE/UMAP are not.
    """
    z = _features_2d(z)
    _check_choice("method", method, PROJECTIONS)
    backend = resolve_tsne_backend(tsne_backend)
    tsne_iter = _positive_int("tsne_iter", tsne_iter, minimum=251)
    n_jobs = _positive_int("n_jobs", n_jobs)
    seed = int(seed)
    n = len(z)
    if method == "pca":
        return _pca_2d(z)
    if n < 5 or len(np.unique(z, axis=0)) < 3:
        warnings.warn(f"{n} samples / too few distinct feature vectors for {method}: showing PCA instead")
        return _pca_2d(z)
    if method == "tsne":
        perp = float(max(1.0, min(perplexity, (n - 1) / 3.0)))
        if backend == "opentsne":
            import openTSNE

            emb = openTSNE.TSNE(n_components=2, perplexity=perp, initialization="pca", random_state=seed,
                                n_iter=tsne_iter - 250, early_exaggeration_iter=250, n_jobs=n_jobs,
                                verbose=False).fit(z)
            return np.asarray(emb, dtype=np.float32)
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=n_jobs, user_api="openmp"):
            return TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", max_iter=tsne_iter,
                        random_state=seed).fit_transform(z).astype(np.float32)
    import umap

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a seed forces one thread (determinism)
        warnings.filterwarnings("ignore", message=".*Spectral initialisation failed.*")
        reducer = umap.UMAP(n_components=2, n_neighbors=int(max(2, min(n_neighbors, n - 1))), random_state=seed,
                            n_jobs=1)
        return np.asarray(reducer.fit_transform(z), dtype=np.float32)


def projection_of(features: FeatureSet, *, method: Projection = "tsne", seed: int = 0, perplexity: float = 30.0,
                  n_neighbors: int = 15, tsne_backend: TsneBackend = "sklearn", tsne_iter: int = TSNE_ITER,
                  cache: bool = True) -> tuple[np.ndarray, dict]:
    """:func:`project` for a :class:`~shortcut_nb.features.FeatureSet`, cached next to the features on disk.

    The projection cache key is the feature key plus method, seed, its parameters and the library version,
    so a new model or dataset (new feature key) never reuses an old picture.

    Returns:
        ``(coords (N, 2) float32, info)`` with ``info = {"method", "backend", "seconds" (compute time, kept
        in the cache), "from_cache", "path"}``.
    """
    _check_choice("method", method, PROJECTIONS)
    backend = resolve_tsne_backend(tsne_backend) if method == "tsne" else method
    params = {"tsne": {"perplexity": float(perplexity), "iter": int(tsne_iter)}, "umap": {"n_neighbors": int(n_neighbors)}, "pca": {}}[method]
    feature_file = features.get("path")
    path = None
    if cache and feature_file:
        key = stable_key(features["key"], method, int(seed), params, _library_version(method, backend), length=16)
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


# --------------------------------------------------------------------------- neighbourhood numbers


def knn_indices(z, k: int, *, metric: Literal["euclidean", "cosine"] = "euclidean") -> np.ndarray:
    """Indices of each sample's ``k`` nearest neighbours, itself excluded (exact search, scikit-learn).

    Args:
        z: features (N, d).
        k: neighbours per sample; lowered to ``N - 1`` when N is small.
        metric: ``"euclidean"`` (default; what t-SNE's input affinities use) or ``"cosine"``.

    Returns:
        int64 array (N, min(k, N - 1)), nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    z = _features_2d(z)
    k = _positive_int("k", k)
    _check_choice("metric", metric, ("euclidean", "cosine"))
    n = len(z)
    if n < 2:
        raise ValueError(f"need at least 2 samples for neighbours, got {n}")
    k_eff = min(k, n - 1)
    idx = NearestNeighbors(n_neighbors=k_eff + 1, metric=metric, algorithm="brute").fit(z).kneighbors(
        z, return_distance=False)
    # Drop the sample itself; with duplicate points it may not come first, or may be missing (then drop the last).
    self_hit = idx == np.arange(n)[:, None]
    self_hit[~self_hit.any(1), -1] = True
    return idx[~self_hit].reshape(n, k_eff).astype(np.int64)


def purity_scores(neighbours: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(balanced, raw)`` neighbourhood purity of ``labels``.

    ``raw``: mean over samples of the share of their neighbours with the same label. ``balanced``: that share
    averaged within each label value first, then over values, so a 95 % majority cannot make a high score by
    itself (chance level: ``raw`` ≈ Σ p_v², ``balanced`` ≈ 1 / (number of values)).
    """
    same = labels[neighbours] == labels[:, None]
    per_sample = same.mean(1)
    balanced = float(np.mean([per_sample[labels == v].mean() for v in np.unique(labels)]))
    return balanced, float(per_sample.mean())


def purity_test(neighbours: np.ndarray, labels: np.ndarray, *, n_shuffles: int = 200, seed: int = 0) -> dict:
    """Purity of ``labels`` on a fixed neighbour graph against label permutations (sizes kept).

    Returns:
        ``{"purity", "purity_raw", "baseline", "baseline_std", "baseline_raw", "lift", "z", "p_value"}``:
        ``baseline*`` are the mean (std) over ``n_shuffles`` permutations, ``lift = purity - baseline``,
        ``z = lift / baseline_std`` (None when the std is 0) and ``p_value = (1 + #{shuffled >= observed}) /
        (1 + n_shuffles)`` (one-sided permutation test).
    """
    n_shuffles = _positive_int("n_shuffles", n_shuffles)
    rng = np.random.default_rng(seed)
    purity, raw = purity_scores(neighbours, labels)
    shuffled = np.array([purity_scores(neighbours, rng.permutation(labels)) for _ in range(n_shuffles)])
    base, base_std = float(shuffled[:, 0].mean()), float(shuffled[:, 0].std())
    return {
        "purity": purity, "purity_raw": raw,
        "baseline": base, "baseline_std": base_std, "baseline_raw": float(shuffled[:, 1].mean()),
        "lift": purity - base, "z": (purity - base) / base_std if base_std > 0 else None,
        "p_value": float((1 + np.sum(shuffled[:, 0] >= purity - 1e-12)) / (1 + n_shuffles)),
    }


def silhouette_test(z: np.ndarray, labels: np.ndarray, *, n_shuffles: int = 10, seed: int = 0,
                    max_samples: int = 3000) -> dict:
    """Silhouette of ``labels`` on ``z`` (Euclidean) and its mean over label permutations.

    Samples are subsampled (seeded, stratified by nothing) to ``max_samples`` to bound the N² distances.

    Returns:
        ``{"silhouette", "baseline", "n"}``; values None when fewer than 2 labels or fewer than 3 samples.
    """
    from sklearn.metrics import pairwise_distances, silhouette_score

    rng = np.random.default_rng(seed)
    if len(z) > max_samples:
        keep = np.sort(rng.choice(len(z), max_samples, replace=False))
        z, labels = z[keep], labels[keep]
    n_values = len(np.unique(labels))
    if n_values < 2 or len(z) < 3 or n_values > len(z) - 1:
        return {"silhouette": None, "baseline": None, "n": len(z)}
    dist = pairwise_distances(z, metric="euclidean").astype(np.float32)
    observed = float(silhouette_score(dist, labels, metric="precomputed"))
    shuffled = [float(silhouette_score(dist, rng.permutation(labels), metric="precomputed")) for _ in range(n_shuffles)]
    return {"silhouette": observed, "baseline": float(np.mean(shuffled)), "n": len(z)}


def within_class_neighbourhoods(z, y, a, *, k: int = 10, n_shuffles: int = 200, seed: int = 0,
                                metric: Literal["euclidean", "cosine"] = "euclidean", silhouette: bool = True) -> dict:
    """How strongly latent neighbourhoods follow the spurious attribute inside each class (and the class overall).

    Args:
        z: features (N, d); y: classes (N,); a: spurious attributes (N,).
        k: neighbours per sample (see :func:`knn_indices`).
        n_shuffles: permutations for the purity baseline (silhouette uses ``min(n_shuffles, 10)``).
        seed: seed of the permutations.
        metric: neighbour metric.
        silhouette: also compute silhouettes (O(N²) per class).

    Returns:
        ``{"k", "metric", "n_shuffles", "classes": {"0": {...}, "1": {...}}, "evaluable": [classes],
        "attribute": {aggregate over evaluable classes: "purity", "baseline", "baseline_std", "lift",
        "p_value" (the largest over classes), "silhouette", "silhouette_baseline"}, "class": {purity test of y
        over all samples + silhouette}, "attribute_all": {purity test of a over all samples, ignoring class}}``.
        A class is evaluable when it has at least 3 samples and both attribute values (ISIC-like training
        malignant images have no patch, so that class is not). Aggregates are None when no class is.
    """
    z = _features_2d(z)
    n = len(z)
    y, a = _labels(y, n, "y"), _labels(a, n, "a")
    k = _positive_int("k", k)
    n_shuffles = _positive_int("n_shuffles", n_shuffles)
    sil_shuffles = min(n_shuffles, 10)
    classes: dict[str, dict] = {}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        a_c = a[members]
        counts = {str(int(v)): int((a_c == v).sum()) for v in np.unique(a_c)}
        entry: dict[str, Any] = {"n": len(members), "attribute_counts": counts}
        if len(members) < 3 or len(counts) < 2:
            entry.update({"evaluable": False,
                          "reason": "fewer than 3 samples" if len(members) < 3 else "one attribute value only"})
        else:
            neigh = knn_indices(z[members], k, metric=metric)
            entry.update({"evaluable": True, "k": int(neigh.shape[1]),
                          **purity_test(neigh, a_c, n_shuffles=n_shuffles, seed=seed + int(c))})
            if silhouette:
                sil = silhouette_test(z[members], a_c, n_shuffles=sil_shuffles, seed=seed + int(c))
                entry.update({"silhouette": sil["silhouette"], "silhouette_baseline": sil["baseline"]})
        classes[str(int(c))] = entry
    evaluable = [c for c, e in classes.items() if e["evaluable"]]

    def mean_of(key: str):
        vals = [classes[c].get(key) for c in evaluable]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    attribute = {key: mean_of(key) for key in ("purity", "purity_raw", "baseline", "baseline_std", "lift",
                                               "silhouette", "silhouette_baseline")}
    attribute["p_value"] = max((classes[c]["p_value"] for c in evaluable), default=None)
    result = {"k": k, "metric": metric, "n_shuffles": n_shuffles, "n": n, "classes": classes, "evaluable": evaluable,
              "attribute": attribute}
    if n >= 3:
        neigh_all = knn_indices(z, k, metric=metric)
        result["class"] = purity_test(neigh_all, y, n_shuffles=n_shuffles, seed=seed + 100) if len(np.unique(y)) > 1 \
            else None
        result["attribute_all"] = purity_test(neigh_all, a, n_shuffles=n_shuffles, seed=seed + 200) \
            if len(np.unique(a)) > 1 else None
        if silhouette and result["class"] is not None:
            sil = silhouette_test(z, y, n_shuffles=sil_shuffles, seed=seed + 100)
            result["class"].update({"silhouette": sil["silhouette"], "silhouette_baseline": sil["baseline"]})
    else:
        result["class"] = result["attribute_all"] = None
    return result


# --------------------------------------------------------------------------- data access for notebook and widget


@dataclass(frozen=True)
class LatentView:
    """One picture: which model, data, projection and colouring."""

    dataset: str = "waterbirds"
    arch: str = "cnn"
    split: str = "train"
    projection: Projection = "tsne"
    colour_by: ColourBy = "group"


class LatentSource:
    """Models, splits, features and projections for the latent-space views, each computed at most once.

    Features go through :func:`~shortcut_nb.features.extract_features` (disk cache keyed by weights and data),
    projections through :func:`projection_of` (disk cache next to the features); both are also kept in memory,
    so switching a view back and forth redraws at once. ``log`` lists what each request cost.

    Args:
        get_model: ``(dataset, arch) -> model`` with ``f_enc`` (called once per pair).
        get_split: ``(dataset, split) -> Dataset`` (called once per pair).
        datasets, archs: the choices offered (by name).
        seed: seed of projections.
        cache_dir, root: where features are cached (see :func:`~shortcut_nb.features.feature_cache_dir`).
        tsne_backend: see :func:`resolve_tsne_backend`.
        batch_size, progress_bar: passed to feature extraction.
    """

    def __init__(self, get_model: Callable[[str, str], nn.Module], get_split: Callable[[str, str], Dataset], *,
                 datasets: Sequence[str] = ("waterbirds", "isic"), archs: Sequence[str] = ARCHS, seed: int = 0,
                 cache_dir=None, root=None, tsne_backend: TsneBackend = "sklearn", batch_size: int = 128,
                 progress_bar: bool = True, profile: str | None = None):
        if not callable(get_model) or not callable(get_split):
            raise TypeError("get_model and get_split must be callables: (dataset, arch) -> model, "
                            "(dataset, split) -> Dataset")
        self._get_model, self._get_split = get_model, get_split
        self.datasets, self.archs = tuple(datasets), tuple(archs)
        self.seed = int(seed)
        self.cache_dir = feature_cache_dir(cache_dir, root=root)
        self.tsne_backend = resolve_tsne_backend(tsne_backend)
        self.batch_size, self.progress_bar, self.profile = batch_size, progress_bar, profile
        self._models: dict[tuple[str, str], nn.Module] = {}
        self._splits: dict[tuple[str, str], Dataset] = {}
        self._features: dict[tuple[str, str, str], FeatureSet] = {}
        self._coords: dict[tuple[str, str, str, str], np.ndarray] = {}
        self.log: list[dict] = []

    @classmethod
    def from_profile(cls, profile: str, *, datasets: Sequence[str] = ("waterbirds", "isic"),
                     archs: Sequence[str] = ARCHS, seed: int = 0, root=None, progress_bar: bool = True,
                     folders: Mapping[str, str | os.PathLike] | None = None, **kwargs) -> LatentSource:
        """The profile's trained models (:func:`~shortcut_nb.experiment.train_or_load`, trained on first use)
        and its dataset splits; ``folders`` maps a dataset name to a real dataset folder used instead of the
        synthetic benchmark."""
        folders = dict(folders or {})
        from .pipeline.runs import get_split, run_spec, train_or_load

        def get_model(dataset: str, arch: str):
            spec = run_spec(profile, dataset, arch=arch, seed=seed, folder=folders.get(dataset))
            return train_or_load(spec, root=root, progress_bar=progress_bar)[0]

        def get_data(dataset: str, split: str):
            return get_split(run_spec(profile, dataset, seed=seed, folder=folders.get(dataset)).data, split, root=root)

        return cls(get_model, get_data, datasets=datasets, archs=archs, seed=seed, root=root,
                   progress_bar=progress_bar, profile=profile, **kwargs)

    def check(self, view: LatentView) -> LatentView:
        """``view`` if every field is an offered choice, else ValueError naming the field."""
        if not isinstance(view, LatentView):
            raise TypeError(f"view must be a LatentView, got {type(view).__name__}")
        _check_choice("dataset", view.dataset, self.datasets)
        _check_choice("arch", view.arch, self.archs)
        _check_choice("split", view.split, SPLITS)
        _check_choice("projection", view.projection, PROJECTIONS)
        _check_choice("colour_by", view.colour_by, COLOUR_BY)
        return view

    def model(self, dataset: str, arch: str) -> nn.Module:
        key = (dataset, arch)
        if key not in self._models:
            self._models[key] = self._get_model(dataset, arch)
        return self._models[key]

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
                             "model": getattr(self.model(dataset, arch), "name", arch), "n": len(feats["z"]),
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

    def log_frame(self) -> pd.DataFrame:
        """What each feature extraction and projection cost in this session (``from_cache``: loaded from disk)."""
        return pd.DataFrame(self.log)


# --------------------------------------------------------------------------- plots


def _legend_names(dataset: str) -> tuple[str, ...]:
    return GROUP_NAMES.get(dataset, tuple(f"G{g} (y={g // 2}, a={g % 2})" for g in range(4)))


def scatter_panel(ax, coords: np.ndarray, y: np.ndarray, a: np.ndarray, *, dataset: str = "waterbirds",
                  colour_by: ColourBy = "group", title: str = "", point_size: float | None = None,
                  legend: bool = True) -> None:
    """Draw one projection on ``ax``: one (colour, marker) per group, minorities drawn on top.

    ``colour_by="group"``: four colours (hue = spurious attribute, shade = class) and marker = class;
    ``"attribute"``: colour = attribute, marker = class; ``"class"``: colour = class, marker = attribute.
    """
    _check_choice("colour_by", colour_by, COLOUR_BY)
    coords = np.asarray(coords)
    n = len(coords)
    y, a = _labels(y, n, "y"), _labels(a, n, "a")
    g = 2 * y + a
    names = _legend_names(dataset)
    size = point_size or float(np.clip(3000 / max(n, 1), 4, 30))
    order = sorted(range(4), key=lambda k: -int((g == k).sum()))  # big groups first, minorities on top
    handles = {}
    for k in order:
        members = g == k
        if not members.any():
            continue
        cls, att = k // 2, k % 2
        colour = {"group": GROUP_COLOURS[k], "attribute": ATTRIBUTE_COLOURS[att], "class": CLASS_COLOURS[cls]}[colour_by]
        marker = ATTRIBUTE_MARKERS[att] if colour_by == "class" else CLASS_MARKERS[cls]
        handles[k] = ax.scatter(coords[members, 0], coords[members, 1], s=size, c=colour, marker=marker, alpha=0.75,
                                linewidths=0, label=f"{names[k]} (n={int(members.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if legend and handles:
        ax.legend(handles=[handles[k] for k in sorted(handles)], fontsize=7, markerscale=1.5, loc="best",
                  framealpha=0.8)  # legend in group order G0..G3


def purity_note(result: Mapping | None) -> str:
    """One line: a view's within-class attribute purity next to its shuffled baseline."""
    if not result or result.get("attribute", {}).get("purity") is None:
        return "within-class attribute purity: n/a"
    att = result["attribute"]
    return f"within-class attribute purity {att['purity']:.2f} (shuffled {att['baseline']:.2f})"


def render_view(source: LatentSource, view: LatentView, *, ax=None, result: Mapping | None = None):
    """The picture of one :class:`LatentView` (features and projection from ``source``'s caches).

    Returns:
        The matplotlib Figure drawn on (a new one when ``ax`` is None).
    """
    source.check(view)
    feats = source.features(view.dataset, view.arch, view.split)
    coords = source.coords(view.dataset, view.arch, view.split, view.projection)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
    model = getattr(source.model(view.dataset, view.arch), "name", view.arch)
    title = f"{model} · {view.dataset}-like · {view.split} · {PROJECTION_LABELS[view.projection]}"
    if result is not None:
        title += "\n" + purity_note(result)
    scatter_panel(ax, coords, feats["y"], feats["a"], dataset=view.dataset, colour_by=view.colour_by, title=title)
    return fig if fig is not None else ax.figure


def plot_fig3(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str], split: str = "train",
              projection: Projection = "tsne", colour_by: ColourBy = "group",
              results: Mapping[str, Mapping] | None = None):
    """Paper Fig. 3: one projection per (dataset row, model column), CNN left and ViT right.

    ``results`` (from :func:`neighbourhood_analysis`) adds each panel's within-class attribute purity and its
    shuffled baseline to the title.
    """
    fig, axes = plt.subplots(len(datasets), len(archs), figsize=(5.2 * len(archs), 4.6 * len(datasets)), squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, arch in enumerate(archs):
            res = (results or {}).get(f"{dataset}/{arch}/{split}")
            render_view(source, LatentView(dataset, arch, split, projection, colour_by), ax=axes[i, j],
                        result=res if results is not None else None)
    fig.suptitle(f"{PROJECTION_LABELS[projection]} of penultimate features f_enc(x), {split} split "
                 f"(colour: group; marker: class)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_purity(results: Mapping[str, Mapping], *, split: str = "train"):
    """Bars: within-class attribute purity and class purity per model/dataset, with the shuffled baselines.

    Returns:
        The Figure. Keys without an evaluable class are drawn empty.
    """
    keys = [key for key in results if key.endswith(f"/{split}")]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(keys) + 2), 3.8))
    x = np.arange(len(keys))
    att = [results[key]["attribute"] for key in keys]
    cls = [results[key].get("class") or {} for key in keys]
    nan = float("nan")
    ax.bar(x - 0.2, [r["purity"] if r["purity"] is not None else nan for r in att], 0.38, color="#35978f",
           label="attribute, within class")
    ax.bar(x + 0.2, [r.get("purity", nan) for r in cls], 0.38, color="#bdbdbd", label="class, all samples")
    for offset, rows in ((-0.2, att), (0.2, cls)):
        base = [r.get("baseline") if r.get("baseline") is not None else nan for r in rows]
        err = [2 * (r.get("baseline_std") or 0.0) for r in rows]
        ax.errorbar(x + offset, base, yerr=err, fmt="_", color="black", markersize=18, capsize=3,
                    label="shuffled baseline (± 2 sd)" if offset < 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels([key.rsplit("/", 1)[0] for key in keys], fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(f"balanced kNN purity (k={next(iter(results.values()))['k'] if results else '?'})")
    ax.set_title(f"Do neighbourhoods follow the spurious attribute? ({split} split)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- notebook flow


def default_projections(profile: str) -> tuple[Projection, ...]:
    """Projections the notebook draws statically: t-SNE (the paper's) everywhere, plus UMAP outside ``smoke``.

    UMAP's first call in a process compiles numba code (20-45 s on two busy cores), too much for the smoke
    profile's one-minute budget; the widget still offers it.
    """
    from .config import check_profile

    return ("tsne",) if check_profile(profile) == "smoke" else ("tsne", "umap")


def extract_all(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str],
                splits: Sequence[str]) -> pd.DataFrame:
    """Features of every (dataset, arch, split) through ``source`` (disk cache first); one row per request
    with ``from_cache`` and seconds."""
    start = len(source.log)
    for dataset in datasets:
        for arch in archs:
            for split in splits:
                source.features(dataset, arch, split)
    rows = [r for r in source.log[start:] if r["what"] == "features"]
    return pd.DataFrame(rows, columns=["dataset", "arch", "split", "model", "n", "d", "from_cache", "seconds",
                                       "extract_seconds"])


def neighbourhood_analysis(source: LatentSource, *, datasets: Sequence[str], archs: Sequence[str],
                           splits: Sequence[str] = ("train",), k: int = 10, n_shuffles: int = 200,
                           seed: int = 0) -> dict[str, dict]:
    """:func:`within_class_neighbourhoods` for every (dataset, arch, split), keyed ``"<dataset>/<arch>/<split>"``.

    Each value also carries ``dataset``, ``arch``, ``split`` and ``model``.
    """
    for name, values, allowed in (("splits", splits, SPLITS), ("datasets", datasets, source.datasets),
                                  ("archs", archs, source.archs)):
        for v in values:
            _check_choice(name[:-1], v, allowed)
    results = {}
    for dataset in datasets:
        for arch in archs:
            for split in splits:
                feats = source.features(dataset, arch, split)
                res = within_class_neighbourhoods(feats["z"], feats["y"], feats["a"], k=k, n_shuffles=n_shuffles,
                                                  seed=seed)
                res.update({"dataset": dataset, "arch": arch, "split": split,
                            "model": getattr(source.model(dataset, arch), "name", arch)})
                results[f"{dataset}/{arch}/{split}"] = res
    return results


def neighbourhood_frame(results: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per model/dataset/split: attribute purity within class vs its shuffled baseline, and class purity."""

    def r2(v):
        return None if v is None else round(float(v), 3)

    rows = []
    for r in results.values():
        att, cls = r["attribute"], r.get("class") or {}
        rows.append({
            "dataset": r["dataset"], "model": r["model"], "split": r["split"], "n": r["n"],
            "classes used": ", ".join(CLASS_NAMES.get(r["dataset"], ("0", "1"))[int(c)] for c in r["evaluable"])
            or "none",
            "attr. purity": r2(att["purity"]), "shuffled": r2(att["baseline"]), "lift": r2(att["lift"]),
            "p (perm.)": r2(att["p_value"]),
            "attr. silhouette": r2(att["silhouette"]), "shuffled sil.": r2(att["silhouette_baseline"]),
            "class purity": r2(cls.get("purity")), "class shuffled": r2(cls.get("baseline")),
            "class silhouette": r2(cls.get("silhouette")),
        })
    return pd.DataFrame(rows)


def projection_seconds(source: LatentSource) -> dict[str, dict[str, float]]:
    """Compute time of each projection in ``source.log`` (taken from the cache when it was loaded), keyed
    ``"<dataset>/<arch>/<split>"`` then method, plus ``n``."""
    out: dict[str, dict] = {}
    for row in source.log:
        if row["what"] == "projection":
            entry = out.setdefault(f"{row['dataset']}/{row['arch']}/{row['split']}", {"n": row["n"]})
            entry[row["method"]] = row["seconds"]
            entry[f"{row['method']}_from_cache"] = row["from_cache"]
    return out


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def record_payload(results: Mapping[str, Mapping], source: LatentSource, *, profile: str, seconds: float,
                   claim_split: str = "train") -> dict:
    """The numbers notebook 02 records.

    Top-level ``purity``/``baseline``/``lift``/``p_value`` are the headline: within-class attribute purity of the
    CNN on the Waterbirds-like training set (or the first result present). ``features`` says what was extracted
    now vs loaded from the cache (a second run extracts nothing), ``projection_seconds`` what each projection
    cost to compute.
    """
    head_key = f"waterbirds/cnn/{claim_split}"
    head_key = head_key if head_key in results else next(iter(results))
    head = results[head_key]["attribute"]
    feature_rows = [row for row in source.log if row["what"] == "features"]
    payload = {
        "profile": profile,
        "seconds": seconds,
        "headline": head_key,
        "purity": head["purity"], "baseline": head["baseline"], "lift": head["lift"], "p_value": head["p_value"],
        "claim_split": claim_split,
        "k": next(iter(results.values()))["k"] if results else None,
        "n_shuffles": next(iter(results.values()))["n_shuffles"] if results else None,
        "tsne_backend": source.tsne_backend,
        "neighbourhoods": dict(results),
        "features": {
            "n_requested": len(feature_rows),
            "n_extracted": sum(not r["from_cache"] for r in feature_rows),
            "n_from_cache": sum(bool(r["from_cache"]) for r in feature_rows),
            "seconds": sum(r["seconds"] for r in feature_rows),
            "items": feature_rows,
        },
        "projection_seconds": projection_seconds(source),
        "feature_cache_dir": str(source.cache_dir),
    }
    return _clean(payload)


LIFT_MIN = 0.05  # purity at least 5 points above its shuffled baseline ...
P_MAX = 0.05  # ... and above (almost) every shuffle


def _verdict(r: Mapping) -> bool | None:
    att = r["attribute"]
    if att.get("purity") is None:
        return None
    return att["lift"] >= LIFT_MIN and att["p_value"] <= P_MAX


def takeaways(recorded: Mapping) -> str:
    """A short text stating the result in the run's own numbers."""
    lines = []
    split = recorded.get("claim_split", "train")
    for key, r in recorded["neighbourhoods"].items():
        att, cls = r["attribute"], r.get("class") or {}
        names = CLASS_NAMES.get(r["dataset"], ("class 0", "class 1"))
        if att.get("purity") is None:
            lines.append(f"- {key} ({r['model']}): no class has both attribute values here; nothing to measure.")
            continue
        used = ", ".join(names[int(c)] for c in r["evaluable"])
        cls_txt = f"; class purity {cls['purity']:.2f} (shuffled {cls['baseline']:.2f})" if cls.get("purity") is not None \
            else ""
        lines.append(f"- {key} ({r['model']}): within-class attribute purity {att['purity']:.2f} vs shuffled "
                     f"{att['baseline']:.2f} (lift {att['lift']:+.2f}, p ≤ {att['p_value']:.3f}; classes: {used})"
                     f"{cls_txt}.")
    verdicts = [_verdict(r) for key, r in recorded["neighbourhoods"].items() if r["split"] == split]
    verdicts = [v for v in verdicts if v is not None]
    if verdicts and all(verdicts):
        lines.append(f"- On the {split} split, every model's within-class neighbourhoods follow the spurious attribute "
                     f"(lift ≥ {LIFT_MIN} over the shuffled baseline, p ≤ {P_MAX}): Fig. 3's reading holds in numbers.")
    elif verdicts:
        lines.append(f"- On the {split} split, {sum(verdicts)} of {len(verdicts)} model/dataset pairs show "
                     f"within-class neighbourhoods that follow the spurious attribute (lift ≥ {LIFT_MIN}, p ≤ {P_MAX}).")
    feats = recorded.get("features", {})
    if feats:
        lines.append(f"- Features: {feats['n_extracted']} extracted now, {feats['n_from_cache']} loaded from the cache "
                     f"({feats['seconds']:.1f} s in all).")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


@claim("latent.within_class", "02_latent_space",
       "Within a class, latent neighbourhoods follow the spurious attribute",
       "Fig. 3 (t-SNE pictures only, training set): ResNet-18 and ViT-B/16, both datasets: 'within each class, "
       "the data clusters according to spurious features'")
def _within_class(rec: dict):
    split = rec.get("claim_split", "train")
    rows = {k: r for k, r in rec["neighbourhoods"].items() if r["split"] == split}
    parts, verdicts = [], []
    for key, r in rows.items():
        att = r["attribute"]
        if att.get("purity") is None:
            parts.append(f"{key.rsplit('/', 1)[0]}: n/a")
            continue
        verdicts.append(_verdict(r))
        parts.append(f"{key.rsplit('/', 1)[0]}: {att['purity']:.2f} vs {att['baseline']:.2f} shuffled")
    ours = f"balanced {rec['k']}-NN attribute purity within class ({split}): " + "; ".join(parts)
    return ours, bool(verdicts) and all(verdicts)
