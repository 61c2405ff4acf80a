"""Table 4's last-layer operations: refit the head on a group-balanced set (optionally on a subset of neurons)
and switch neurons off in the head."""
from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from ._inputs import _check_classes, _features_np, _labels_np, _random_state, _rng
from .dfr import group_balanced_indices
from .logistic import BinaryLogits, Penalty, logistic_to_linear, make_logistic_regression

__all__ = ["refit_last_layer", "zero_neurons"]


def _neuron_index(neurons, d: int, name: str) -> np.ndarray:
    """Neuron ids from a bool mask (d,) or a list/array/tensor of ints."""
    if isinstance(neurons, torch.Tensor):
        neurons = neurons.detach().cpu().numpy()
    arr = np.asarray(neurons)
    if arr.dtype == np.bool_:
        if arr.shape != (d,):
            raise ValueError(f"{name} as a bool mask must have shape ({d},), got {arr.shape}")
        return np.flatnonzero(arr)
    arr = arr.reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be a bool mask or integer neuron ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= d):
        raise ValueError(f"{name} must lie in [0, {d - 1}], got [{arr.min()}, {arr.max()}]")
    return arr


def refit_last_layer(
    features,
    y,
    g,
    *,
    seed: int,
    balanced: bool = True,
    C: float = 1.0,
    penalty: Penalty = "l2",
    neuron_mask=None,
    standardize: bool = True,
    solver: str | None = None,
    n_groups: int | None = None,
    max_iter: int = 1000,
    binary_logits: BinaryLogits = "half",
) -> nn.Linear:
    """Retrain the last layer on a group-balanced set (the paper's Table 4, rows 3-4).

    Our reading of "fine-tune last-layer weights with a group balanced set": a
    logistic regression on (standardised) features of one group-balanced
    subsample (every group cut to the smallest group's size, drawn with
    ``seed``), returned as an ``nn.Linear`` over raw features.

    Args:
        features: penultimate features, shape (N, d) (array or tensor).
        y: classes, shape (N,), 0..K-1.
        g: groups, shape (N,).
        seed: draws the subsample and seeds the solver.
        balanced: subsample to group balance (False: use every sample).
        C: inverse regularisation strength.
        penalty: ``"l2"`` (default), ``"l1"`` or ``"none"``.
        neuron_mask: neurons the head may use (bool (d,) or ids); the others get
            weight 0 -- refit a pruned model. None: all.
        standardize: fit a StandardScaler on the (kept) features and fold it in.
        solver: sklearn solver (None: liblinear for L1, lbfgs otherwise).
        n_groups: number of groups (None: ``max(g) + 1``).
        max_iter: solver iterations.
        binary_logits: see :func:`logistic_to_linear`.

    Returns:
        ``nn.Linear(d, max(K, 2))`` on the features' device (cpu for numpy), float32.
    """
    device = features.device if isinstance(features, torch.Tensor) else torch.device("cpu")
    x = _features_np(features)
    n, d = x.shape
    y = _labels_np(y, "y", n)
    g = _labels_np(g, "g", n)
    _check_classes(y)
    rng = _rng(seed)
    if balanced:
        idx = group_balanced_indices(g, rng=rng, n_groups=n_groups)
    else:
        idx = np.arange(n)
    keep = np.arange(d) if neuron_mask is None else np.unique(_neuron_index(neuron_mask, d, "neuron_mask"))
    if keep.size == 0:
        raise ValueError("neuron_mask keeps no neuron")
    xk = x[np.ix_(idx, keep)]
    if standardize:
        scaler = StandardScaler().fit(xk)
        mean, scale = scaler.mean_, scaler.scale_
        xk = scaler.transform(xk)
    else:
        mean, scale = np.zeros(len(keep)), np.ones(len(keep))
    if len(np.unique(y[idx])) < 2:
        raise ValueError("the (balanced) refit set holds a single class")
    clf = make_logistic_regression(
        C=C, penalty=penalty, solver=solver, random_state=_random_state(seed), max_iter=max_iter
    ).fit(xk, y[idx])
    coef = np.zeros((clf.coef_.shape[0], d))
    coef[:, keep] = clf.coef_
    full_mean, full_scale = np.zeros(d), np.ones(d)
    full_mean[keep], full_scale[keep] = mean, scale
    return logistic_to_linear(
        coef, clf.intercept_, mean=full_mean, scale=full_scale, binary_logits=binary_logits, device=device
    )


def zero_neurons(head: nn.Linear, neurons) -> nn.Linear:
    """A copy of ``head`` with the input columns of ``neurons`` set to zero (Table 4, rows 1-2).

    Args:
        head: the classifier, ``nn.Linear(d, classes)``; left untouched.
        neurons: bool mask (d,) or neuron ids to switch off.

    Returns:
        A new ``nn.Linear`` on the head's device, bias unchanged.
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    idx = _neuron_index(neurons, head.in_features, "neurons")
    out = copy.deepcopy(head)
    with torch.no_grad():
        out.weight[:, torch.as_tensor(idx, dtype=torch.long, device=out.weight.device)] = 0.0
    return out
