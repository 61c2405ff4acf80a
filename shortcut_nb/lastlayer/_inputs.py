"""Checked inputs shared by the last-layer modules: features (N, d), integer labels, classes, groups, seeds."""
from __future__ import annotations

import numpy as np
import torch


def _features_np(x, name: str = "features") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains nan or inf")
    return arr


def _labels_np(x, name: str, n: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got min {arr.min()}")
    return arr


def _check_classes(y: np.ndarray) -> int:
    """Classes must be 0..K-1, all present: a head's logit k is class k."""
    classes = np.unique(y)
    k = int(y.max()) + 1 if y.size else 0
    if len(classes) < 2 or len(classes) != k:
        raise ValueError(
            f"y must contain every class 0..K-1 with K >= 2, got classes {classes.tolist()}"
        )
    return k


def _n_groups(g: np.ndarray, n_groups: int | None) -> int:
    if n_groups is None:
        return int(g.max()) + 1
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive int or None, got {n_groups!r}")
    if g.size and g.max() >= n_groups:
        raise ValueError(f"g has value {g.max()} but n_groups={n_groups}")
    return int(n_groups)


def _rng(seed) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return np.random.default_rng(int(seed))


def _random_state(seed: int) -> int:
    # sklearn wants a 32-bit seed; every fit of one run uses the same one
    return int(seed) % (2**32)
