"""The paper's Table 4 on cached features: zero the spurious neurons' weights, then refit the last layer.

Pure over a head, the neurons' s-scores and FeatureSet-like mappings (``z`` (n, d) float32, ``y`` and
``g`` (n,) int64, e.g. :class:`shortcut_nb.pipeline.feature_cache.FeatureSet`); accuracies come from
:func:`shortcut_nb.lastlayer.head_metrics` on the features, which equals running the model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..bands import select_neurons
from ..lastlayer import head_metrics, head_predictions, refit_last_layer, used_neurons, zero_neurons
from ..metrics import group_accuracy_interval, wga_change_interval, worst_group
from ..vocab import N_GROUPS

Row = Literal["baseline", "pruned", "refit", "refit_pruned"]
#: The four heads of Table 4, in the paper's order.
ROWS: tuple[Row, ...] = ("baseline", "pruned", "refit", "refit_pruned")
#: Pruning threshold of Table 4 ("Pruning (s-score > 0.7)").
DEFAULT_TAU = 0.7


def head_summary(head: nn.Linear, features: Mapping[str, Any], *, train_group_counts: Sequence[int] | None = None,
                 n_zeroed: int = 0) -> dict:
    """:func:`~shortcut_nb.lastlayer.head_metrics` of ``head`` on ``features`` plus ``n_zeroed`` and ``n_used``.

    ``n_used`` counts the neurons with a non-zero class weight (:func:`~shortcut_nb.lastlayer.used_neurons`).
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    out = head_metrics(head.weight, head.bias, features["z"], features["y"], features["g"],
                       train_group_counts=train_group_counts)
    out.update(n_zeroed=int(n_zeroed), n_used=int(used_neurons(head.weight).sum()))
    return out


def refit_gain(accuracies: np.ndarray) -> np.ndarray:
    """The refits' gain over pruning, min(WGA(refit), WGA(refit_pruned)) − WGA(pruned), of per-group accuracies
    (..., 3, n_groups) of the heads (pruned, refit, refit_pruned) → (...)."""
    wga = worst_group(accuracies)
    return np.minimum(wga[..., 1], wga[..., 2]) - wga[..., 0]


def prune_and_refit(head: nn.Linear, scores: np.ndarray | Sequence[float], *, tau: float,
                    test: Mapping[str, Any], val: Mapping[str, Any], seed: int = 0,
                    train_group_counts: Sequence[int] | None = None, n_groups: int | None = None,
                    memo: dict | None = None) -> dict[str, Any]:
    """The four rows of the paper's Table 4 on cached features.

    * ``baseline``: the trained head.
    * ``pruned``: the head with the columns of the neurons with ``s > tau`` zeroed (no retraining).
    * ``refit``: a logistic-regression head refit on a group-balanced subsample of ``val`` (all neurons).
    * ``refit_pruned``: the same refit restricted to the neurons that survive pruning.

    Args:
        head: the trained classifier ``nn.Linear(d, 2)``; not modified.
        scores: (d,) s-scores.
        tau: pruning threshold (strict: ``s > tau``), in [0, 1].
        test: features where accuracies are measured (``z`` (n, d), ``y``, ``g`` (n,)).
        val: features of the refit set (same keys).
        seed: seed of the group-balanced subsample and the solver.
        train_group_counts: for the train-weighted average.
        n_groups: groups the balanced subsample must hold (a group missing from ``val`` fails the refit); None:
            the length of ``train_group_counts``, else 4 (the paper's).
        memo: optional dict reused across calls with the same head and features (refits and the pruning's
            bootstrap, keyed by the neuron set, seed and ``n_groups``).

    Returns:
        ``{row: summary | None}`` for the four rows, plus ``"pruned_neurons"`` (ids, highest s first),
        ``"pruned_change"`` (the 95 % paired bootstrap interval over ``test``'s images of WGA(pruned) −
        WGA(baseline), :func:`~shortcut_nb.metrics.wga_change_interval` seeded with ``seed``; None when nothing
        is pruned), ``"refit_change"`` (the same paired bootstrap of the refits' gain over pruning,
        min(WGA(refit), WGA(refit_pruned)) − WGA(pruned), :func:`refit_gain`; None when a refit could not be
        made) and ``"errors"`` (``{row: reason}``). A summary is :func:`head_summary`'s dict; a refit that
        cannot be made (a group missing from ``val``, every neuron pruned) is None, with the reason in
        ``errors``.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape != (head.in_features,):
        raise ValueError(f"scores must have shape ({head.in_features},) (one per neuron), got {s.shape}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating)) or not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be a number in [0, 1], got {tau!r}")
    memo = {} if memo is None else memo
    if n_groups is None:
        n_groups = len(train_group_counts) if train_group_counts is not None else N_GROUPS
    pruned = select_neurons(torch.from_numpy(s), float(tau)).numpy()
    keep = np.setdiff1d(np.arange(len(s)), pruned)
    out: dict[str, Any] = {"errors": {}}

    def summary(h: nn.Linear, n_zeroed: int) -> dict:
        return head_summary(h, test, train_group_counts=train_group_counts, n_zeroed=n_zeroed)

    def refit_head(neurons: np.ndarray) -> nn.Linear | ValueError:
        key = ("refit", tuple(neurons.tolist()), int(seed), int(n_groups))
        if key not in memo:
            try:
                memo[key] = refit_last_layer(val["z"], val["y"], val["g"], seed=int(seed), neuron_mask=neurons,
                                             n_groups=n_groups)
            except ValueError as err:
                memo[key] = err
        return memo[key]

    def refit(neurons: np.ndarray, n_zeroed: int, row: str) -> dict | None:
        h = refit_head(neurons)
        if isinstance(h, Exception):
            out["errors"][row] = str(h)
            return None
        return summary(h, n_zeroed)

    out["baseline"] = summary(head, 0)
    out["pruned"] = summary(zero_neurons(head, pruned), len(pruned)) if len(pruned) else dict(out["baseline"])
    out["pruned_change"] = None
    if len(pruned):
        key = ("pruned_change", tuple(sorted(pruned.tolist())), int(seed), int(n_groups))
        if key not in memo:  # a widget redraw with the same neuron set reuses the bootstrap (about 0.2 s)
            after = zero_neurons(head, pruned)
            memo[key] = list(wga_change_interval(
                head_predictions(head.weight, head.bias, test["z"]), head_predictions(after.weight, after.bias, test["z"]),
                test["y"], test["g"], n_groups=n_groups, seed=int(seed)))
        out["pruned_change"] = list(memo[key])
    out["refit"] = refit(np.arange(len(s)), 0, "refit")
    if keep.size:
        out["refit_pruned"] = refit(keep, len(pruned), "refit_pruned")
    else:
        out["refit_pruned"] = None
        out["errors"]["refit_pruned"] = f"every neuron has s > {tau}: nothing left to refit"
    out["refit_change"] = None
    if out["refit"] is not None and out["refit_pruned"] is not None:
        key = ("refit_change", tuple(sorted(pruned.tolist())), int(seed), int(n_groups))
        if key not in memo:  # memoised as the pruning's bootstrap is
            heads = (zero_neurons(head, pruned) if len(pruned) else head, refit_head(np.arange(len(s))),
                     refit_head(keep))
            memo[key] = list(group_accuracy_interval(
                refit_gain, ([head_predictions(h.weight, h.bias, test["z"]) for h in heads], test["y"], test["g"]),
                n_groups=n_groups, seed=int(seed)))
        out["refit_change"] = list(memo[key])
    out["pruned_neurons"] = pruned.tolist()
    return out
