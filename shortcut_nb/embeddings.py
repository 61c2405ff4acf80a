"""Paper §4.2 (Fig. 3) in numbers: 2-D projections of features and within-class neighbourhood purity.

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
* **The lift's interval over samples.** The samples whose neighbourhoods are scored are resampled with
  replacement (within each attribute value, its size kept, as the permutations keep it); on each resample the
  purity is recomputed from the drawn samples' own neighbourhood shares, and the baseline from the same
  samples' shares under each permutation (paired); the neighbour graph is not recomputed.
* **Silhouette** by attribute within a class (and by class over all samples),
  with a shuffled baseline near 0, as a second, distance-based view.
* **Class purity** over all samples, for contrast: how strongly neighbourhoods
  follow the label the model was trained on.

Projections (t-SNE by scikit-learn, or openTSNE if asked for; UMAP; PCA) are
for looking only; every number here is computed in the ``d``-dimensional space.
Pure functions on arrays: no plotting, no cache (the section's study caches projections).
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from .sscore.uncertainty import LEVEL, N_BOOT, bootstrap_means, percentile_interval

Projection = Literal["tsne", "umap", "pca"]
TsneBackend = Literal["sklearn", "opentsne"]
Metric = Literal["euclidean", "cosine"]

PROJECTIONS: tuple[Projection, ...] = ("tsne", "umap", "pca")
TSNE_BACKENDS: tuple[TsneBackend, ...] = ("sklearn", "opentsne")
TSNE_ITER = 750  # openTSNE's default schedule: 250 early-exaggeration + 500 iterations


# --------------------------------------------------------------------------- input checks


def as_features(z, name: str = "z") -> np.ndarray:
    """``z`` as a finite float32 array (N, d); ValueError/TypeError naming ``name`` otherwise."""
    arr = np.asarray(z)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (N, d), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_labels(values, n: int, name: str) -> np.ndarray:
    """``values`` as int64 labels of shape (n,) (integral floats accepted)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_choice(name: str, value, allowed: Sequence) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- projections


def resolve_tsne_backend(backend: TsneBackend = "sklearn") -> TsneBackend:
    """Validate a t-SNE implementation name: ``"sklearn"`` (default, a core dependency) or ``"opentsne"``
    (optional: ``pip install openTSNE``).

    Why scikit-learn: with its OpenMP threads capped (see :func:`project`), it took the same time as openTSNE's
    FFT t-SNE at the same iteration count on 2,400 x 256 features (34 s vs 34 s, 44 s vs 40 s on two busy
    cores), so openTSNE is not worth a dependency here; it stays selectable for larger sets.

    Raises:
        ValueError: an unknown backend name.
        ImportError: ``"opentsne"`` asked for but not installed.
    """
    check_choice("tsne_backend", backend, TSNE_BACKENDS)
    if backend == "opentsne" and importlib.util.find_spec("openTSNE") is None:
        raise ImportError("tsne_backend='opentsne' needs the openTSNE package: pip install openTSNE")
    return backend


def library_version(method: Projection, backend: str) -> str:
    """``"<module>-<version>"`` of the library computing ``method`` (part of a projection's cache key)."""
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
    z = as_features(z)
    check_choice("method", method, PROJECTIONS)
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
            import openTSNE  # optional dependency

            emb = openTSNE.TSNE(n_components=2, perplexity=perp, initialization="pca", random_state=seed,
                                n_iter=tsne_iter - 250, early_exaggeration_iter=250, n_jobs=n_jobs,
                                verbose=False).fit(z)
            return np.asarray(emb, dtype=np.float32)
        with threadpool_limits(limits=n_jobs, user_api="openmp"):
            return TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", max_iter=tsne_iter,
                        random_state=seed).fit_transform(z).astype(np.float32)
    import umap  # optional in spirit: its import compiles numba code, so only when asked for

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a seed forces one thread (determinism)
        warnings.filterwarnings("ignore", message=".*Spectral initialisation failed.*")
        reducer = umap.UMAP(n_components=2, n_neighbors=int(max(2, min(n_neighbors, n - 1))), random_state=seed,
                            n_jobs=1)
        return np.asarray(reducer.fit_transform(z), dtype=np.float32)


# --------------------------------------------------------------------------- neighbourhood numbers


def knn_indices(z, k: int, *, metric: Metric = "euclidean") -> np.ndarray:
    """Indices of each sample's ``k`` nearest neighbours, itself excluded (exact search, scikit-learn).

    Args:
        z: features (N, d).
        k: neighbours per sample; lowered to ``N - 1`` when N is small.
        metric: ``"euclidean"`` (default; what t-SNE's input affinities use) or ``"cosine"``.

    Returns:
        int64 array (N, min(k, N - 1)), nearest first.
    """
    z = as_features(z)
    k = _positive_int("k", k)
    check_choice("metric", metric, ("euclidean", "cosine"))
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


def neighbour_agreement(neighbours: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each sample's share of its neighbours with its own label: float64 (..., N) of ``labels`` (..., N) (one
    labelling, or a stack of them, e.g. permutations (S, N)) on ``neighbours`` (N, k)."""
    return (labels[..., neighbours] == labels[..., None]).mean(-1)


def purity_scores(neighbours: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(balanced, raw)`` neighbourhood purity of ``labels`` (N,) on ``neighbours`` (N, k).

    ``raw``: mean over samples of the share of their neighbours with the same label. ``balanced``: that share
    averaged within each label value first, then over values, so a 95 % majority cannot make a high score by
    itself (chance level: ``raw`` ≈ Σ p_v², ``balanced`` ≈ 1 / (number of values)).
    """
    per_sample = neighbour_agreement(neighbours, labels)
    balanced = float(np.mean([per_sample[labels == v].mean() for v in np.unique(labels)]))
    return balanced, float(per_sample.mean())


def shuffled_labels(labels: np.ndarray, n_shuffles: int, seed: int) -> np.ndarray:
    """(n_shuffles, N) permutations of ``labels`` (N,) (value counts kept), seeded: the purity baseline's."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(labels) for _ in range(n_shuffles)])


def purity_test(neighbours: np.ndarray, labels: np.ndarray, *, n_shuffles: int = 200, seed: int = 0) -> dict:
    """Purity of ``labels`` (N,) on a fixed neighbour graph (N, k) against label permutations (sizes kept).

    Returns:
        ``{"purity", "purity_raw", "baseline", "baseline_std", "baseline_raw", "lift", "z", "p_value"}``:
        ``baseline*`` are the mean (std) over ``n_shuffles`` permutations (:func:`shuffled_labels`),
        ``lift = purity - baseline``, ``z = lift / baseline_std`` (None when the std is 0) and ``p_value = (1 +
        #{shuffled >= observed}) / (1 + n_shuffles)`` (one-sided permutation test).
    """
    n_shuffles = _positive_int("n_shuffles", n_shuffles)
    purity, raw = purity_scores(neighbours, labels)
    shuffled = np.array([purity_scores(neighbours, row) for row in shuffled_labels(labels, n_shuffles, seed)])
    base, base_std = float(shuffled[:, 0].mean()), float(shuffled[:, 0].std())
    return {
        "purity": purity, "purity_raw": raw,
        "baseline": base, "baseline_std": base_std, "baseline_raw": float(shuffled[:, 1].mean()),
        "lift": purity - base, "z": (purity - base) / base_std if base_std > 0 else None,
        "p_value": float((1 + np.sum(shuffled[:, 0] >= purity - 1e-12)) / (1 + n_shuffles)),
    }


def lift_resamples(neighbours: np.ndarray, labels: np.ndarray, *, n_shuffles: int = 200, seed: int = 0,
                   n_boot: int = N_BOOT, boot_seed: int = 0) -> np.ndarray:
    """Bootstrap draws of :func:`purity_test`'s ``lift`` (balanced purity minus its shuffled baseline) over the
    samples, the neighbour graph (N, k) fixed.

    Each resample draws the samples of every value of ``labels`` (N,) with replacement, its count kept (so every
    value stays present, as the permutations keep the counts). The purity is the balanced mean of the drawn
    samples' own neighbour agreement; the baseline, paired, is the mean over the same permutations as
    :func:`purity_test` (``n_shuffles``, ``seed``) of the balanced mean of the same drawn samples' agreement under
    each permutation. A permutation whose value has no drawn sample (a value of one or two samples) leaves that
    resample's baseline, which averages the others.

    Returns:
        float64 (n_boot,) lifts (NaN where no permutation has every value drawn).
    """
    n_shuffles = _positive_int("n_shuffles", n_shuffles)
    n_boot = _positive_int("n_boot", n_boot)
    values = np.unique(labels)
    n_values = len(values)
    observed = neighbour_agreement(neighbours, labels)  # (N,)
    shuffled = shuffled_labels(labels, n_shuffles, seed)  # (S, N)
    agreement = neighbour_agreement(neighbours, shuffled)  # (S, N)
    purity = np.zeros(n_boot)
    hits = np.zeros((n_boot, n_values * n_shuffles))  # per (value, permutation): summed agreement of its samples
    counts = np.zeros((n_boot, n_values * n_shuffles))  # ... and how many drawn samples have that shuffled value
    for stratum, value in enumerate(values):
        rows = labels == value
        member = shuffled[:, rows][None] == values[:, None, None]  # (V, S, n_value): shuffled value of each sample
        hit = agreement[:, rows][None] * member
        columns = np.concatenate([observed[rows][:, None], hit.reshape(-1, rows.sum()).T,
                                  member.reshape(-1, rows.sum()).T], 1)
        sums = bootstrap_means(columns, n_boot=n_boot, seed=[boot_seed, stratum]) * rows.sum()
        purity += sums[:, 0] / rows.sum() / n_values
        hits += sums[:, 1:1 + n_values * n_shuffles]
        counts += sums[:, 1 + n_values * n_shuffles:]
    with np.errstate(invalid="ignore", divide="ignore"):
        balanced = (hits / counts).reshape(n_boot, n_values, n_shuffles).mean(1)  # NaN: a value not drawn
    drawn = np.isfinite(balanced)
    baseline = np.where(drawn.any(1), np.where(drawn, balanced, 0).sum(1) / np.maximum(drawn.sum(1), 1), np.nan)
    return purity - baseline


def _pair(interval: tuple[float, float] | None) -> list[float] | None:
    """An interval as recorded in JSON: ``[low, high]``, or None."""
    return None if interval is None else [interval[0], interval[1]]


def silhouette_test(z: np.ndarray, labels: np.ndarray, *, n_shuffles: int = 10, seed: int = 0,
                    max_samples: int = 3000) -> dict:
    """Silhouette of ``labels`` (N,) on ``z`` (N, d) (Euclidean) and its mean over label permutations.

    Samples are subsampled (seeded, stratified by nothing) to ``max_samples`` to bound the N² distances.

    Returns:
        ``{"silhouette", "baseline", "n"}``; values None when fewer than 2 labels or fewer than 3 samples.
    """
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
                                metric: Metric = "euclidean", silhouette: bool = True, n_boot: int = N_BOOT,
                                level: float = LEVEL) -> dict:
    """How strongly latent neighbourhoods follow the spurious attribute inside each class (and the class overall).

    Args:
        z: features (N, d); y: classes (N,); a: spurious attributes (N,).
        k: neighbours per sample (see :func:`knn_indices`).
        n_shuffles: permutations for the purity baseline (silhouette uses ``min(n_shuffles, 10)``).
        seed: seed of the permutations.
        metric: neighbour metric.
        silhouette: also compute silhouettes (O(N²) per class).
        n_boot, level: resamples and coverage of the lift's interval over samples (:func:`lift_resamples`,
            seeded like the class's permutations).

    Returns:
        ``{"k", "metric", "n_shuffles", "classes": {"0": {...}, "1": {...}}, "evaluable": [classes],
        "attribute": {aggregate over evaluable classes: "purity", "baseline", "baseline_std", "lift",
        "lift_interval" ([low, high] of the mean lift over the classes, each class resampled on its own), "p_value"
        (the largest over classes), "silhouette", "silhouette_baseline"}, "class": {purity test of y
        over all samples + silhouette}, "attribute_all": {purity test of a over all samples, ignoring class}}``.
        A class is evaluable when it has at least 3 samples and both attribute values (ISIC-like training
        malignant images have no patch, so that class is not). Aggregates are None when no class is. Each
        evaluable class also records its own ``lift_interval``.
    """
    z = as_features(z)
    n = len(z)
    y, a = as_labels(y, n, "y"), as_labels(a, n, "a")
    k = _positive_int("k", k)
    n_shuffles = _positive_int("n_shuffles", n_shuffles)
    n_boot = _positive_int("n_boot", n_boot)
    sil_shuffles = min(n_shuffles, 10)
    classes: dict[str, dict] = {}
    lift_draws: list[np.ndarray] = []  # (n_boot,) per evaluable class
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
            lift_draws.append(lift_resamples(neigh, a_c, n_shuffles=n_shuffles, seed=seed + int(c), n_boot=n_boot,
                                             boot_seed=seed + int(c)))
            entry["lift_interval"] = _pair(percentile_interval(lift_draws[-1], level=level))
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
    attribute["lift_interval"] = _pair(percentile_interval(np.mean(lift_draws, 0), level=level)) if lift_draws \
        else None
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
