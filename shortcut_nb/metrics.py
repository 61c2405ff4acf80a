"""Group metrics: per-group accuracy, average, worst-group accuracy, gap.

The paper (§3.3) reports two numbers per model: the average accuracy (AVG) and
the worst-group accuracy (WGA, the lowest accuracy over the four groups
``g = 2*y + a``), and their difference GAP = AVG - WGA.

"Average accuracy" means two different things in the literature, and both are
offered here under different names:

* ``avg`` -- the plain accuracy over all test samples (the paper's definition,
  "the proportion of correct classifications out of all predictions").
* ``avg_weighted`` -- the mean of the per-group test accuracies weighted by the
  *training* group proportions. This is what group_DRO and DFR report as
  "average accuracy" on Waterbirds, whose test set is not distributed like the
  training set. It needs the training group counts.

``gap`` is always ``avg - wga`` (plain average).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[int] | Sequence[float]

__all__ = [
    "group_accuracies",
    "wga_interval",
    "wga_change_interval",
    "group_accuracy_interval",
    "worst_group",
    "summarize",
    "mean_std",
    "aggregate_seeds",
]


def _as_1d_int(x: ArrayLike, name: str) -> np.ndarray:
    """A 1-D integer numpy array from a tensor, array or list; clear errors otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.bool_):
            arr = arr.astype(np.int64)
        elif np.issubdtype(arr.dtype, np.floating) and np.all(np.equal(np.mod(arr, 1), 0)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_inputs(preds: ArrayLike, y: ArrayLike, g: ArrayLike, n_groups: int):
    p, yy, gg = _as_1d_int(preds, "preds"), _as_1d_int(y, "y"), _as_1d_int(g, "g")
    if not (len(p) == len(yy) == len(gg)):
        raise ValueError(
            f"preds, y and g must have the same length, got {len(p)}, {len(yy)}, {len(gg)}"
        )
    if not isinstance(n_groups, (int, np.integer)) or isinstance(n_groups, bool) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive int, got {n_groups!r}")
    if len(gg) and (gg.min() < 0 or gg.max() >= n_groups):
        raise ValueError(
            f"g must lie in [0, {n_groups - 1}] (n_groups={n_groups}), "
            f"got values in [{gg.min()}, {gg.max()}]"
        )
    return p, yy, gg


def group_accuracies(
    preds: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    n_groups: int = 4,
    require_all: bool = True,
) -> dict[int, float]:
    """Accuracy within each group.

    Args:
        preds: predicted classes, shape (N,) (tensor, array or list of ints).
        y: true classes, shape (N,).
        g: group of each sample, shape (N,), values in ``[0, n_groups)``.
        n_groups: number of groups (4 for Waterbirds / ISIC, ``g = 2*y + a``).
        require_all: if True (default), a group with no samples raises a
            ``ValueError`` naming it; if False its accuracy is ``nan``.

    Returns:
        ``{group: accuracy}`` for every group ``0 .. n_groups-1``, in order.
    """
    p, yy, gg = _check_inputs(preds, y, g, n_groups)
    correct = p == yy
    out: dict[int, float] = {}
    for k in range(n_groups):
        sel = gg == k
        n_k = int(sel.sum())
        if n_k == 0:
            if require_all:
                raise ValueError(
                    f"group {k} has no samples (n_groups={n_groups}); pass require_all=False "
                    "to get nan for empty groups"
                )
            out[k] = float("nan")
        else:
            out[k] = float(correct[sel].mean())
    return out


def summarize(
    preds: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    train_group_counts: Sequence[int] | np.ndarray | Mapping[int, int] | None = None,
    n_groups: int | None = None,
    require_all: bool = True,
) -> dict[str, Any]:
    """The paper's metrics for one set of predictions.

    Args:
        preds: predicted classes, shape (N,).
        y: true classes, shape (N,).
        g: groups, shape (N,).
        train_group_counts: number of *training* samples per group (length
            ``n_groups``, or a ``{group: count}`` mapping). Only needed for
            ``avg_weighted``.
        n_groups: number of groups (None: ``max(g) + 1``, at least the length of a sequence
            ``train_group_counts``, or 4, the paper's ``2*y + a``, without one).
        require_all: passed to :func:`group_accuracies`; with False, empty groups
            are ``nan`` and ignored by ``wga`` (and get weight 0 in ``avg_weighted``
            only if their training count is 0, else ``avg_weighted`` is ``nan``).

    Returns:
        A dict with

        * ``groups`` -- list of the per-group accuracies, group 0 first;
        * ``avg`` -- plain accuracy over all N samples (the paper's AVG);
        * ``avg_weighted`` -- sum over groups of (training proportion of the
          group) x (test accuracy of the group): the "average accuracy" of
          group_DRO / DFR; ``None`` when ``train_group_counts`` is not given;
        * ``wga`` -- worst-group accuracy, the minimum of ``groups``;
        * ``gap`` -- ``avg - wga`` (uses the plain average);
        * ``n`` -- number of samples.
    """
    if n_groups is None:
        n_groups = int(_as_1d_int(g, "g").max(initial=-1)) + 1
        if train_group_counts is not None and not isinstance(train_group_counts, Mapping):
            n_groups = max(n_groups, len(train_group_counts))
        else:
            n_groups = max(n_groups, 4)
    accs = group_accuracies(preds, y, g, n_groups=n_groups, require_all=require_all)
    p, yy, _ = _check_inputs(preds, y, g, n_groups)
    if len(p) == 0:
        raise ValueError("preds is empty: cannot summarize zero predictions")
    groups = [accs[k] for k in range(n_groups)]
    finite = [a for a in groups if not math.isnan(a)]
    wga = float(min(finite))
    avg = float((p == yy).mean())

    avg_weighted: float | None = None
    if train_group_counts is not None:
        if isinstance(train_group_counts, Mapping):
            counts = np.array([train_group_counts.get(k, 0) for k in range(n_groups)], dtype=float)
        else:
            counts = np.asarray(train_group_counts, dtype=float)
        if counts.shape != (n_groups,):
            raise ValueError(
                f"train_group_counts must have {n_groups} entries, got shape {counts.shape}"
            )
        if np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError(
                f"train_group_counts must be non-negative with a positive sum, got {counts.tolist()}"
            )
        weights = counts / counts.sum()
        # a group absent from training carries weight 0, whatever its test accuracy
        terms = [w * a for w, a in zip(weights, groups) if w > 0]
        avg_weighted = float(sum(terms))
    return {
        "groups": groups,
        "avg": avg,
        "avg_weighted": avg_weighted,
        "wga": wga,
        "gap": avg - wga,
        "n": int(len(p)),
    }


#: One test set's ``(preds, y, g)``: a sequence of models' (N,) predictions on it, and its (N,) classes and groups.
ScoredTest = tuple[Sequence[ArrayLike], ArrayLike, ArrayLike]


def _group_accuracy_resamples(tests: Sequence[tuple[Sequence[np.ndarray], np.ndarray]], n_groups: int, n_boot: int,
                              seed: int) -> np.ndarray:
    """(n_boot, S, n_groups) per-group accuracies of S models' 0/1 ``correct`` arrays over bootstrap resamples.

    ``tests`` lists ``(correct, g)``: the (N_t,) 0/1 arrays of the models scored on one test set and its (N_t,)
    groups; S counts the models of every test set, in order. Each resample draws every present group's samples
    with replacement within the group (its size kept): the models of one test set on the same draw (paired), the
    test sets one after another from the same generator (independent). A group absent from a test set is nan.
    """
    rng = np.random.default_rng(seed)
    present = [[(k, np.flatnonzero(g == k)) for k in range(n_groups) if (g == k).any()] for _, g in tests]
    out = np.full((n_boot, sum(len(correct) for correct, _ in tests), n_groups), np.nan)
    for b in range(n_boot):
        s = 0
        for (correct, _), groups in zip(tests, present):
            picks = [(k, idx[rng.integers(0, len(idx), len(idx))]) for k, idx in groups]
            for c in correct:
                for k, p in picks:
                    out[b, s, k] = c[p].sum() / len(p)  # the mean, bit for bit, without np.mean's overhead
                s += 1
    return out


def worst_group(accuracies: np.ndarray) -> np.ndarray:
    """The worst-group accuracy of per-group accuracies (..., n_groups) → (...), ignoring absent (nan) groups."""
    return np.nanmin(accuracies, axis=-1)


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    return (1 - level) / 2


def group_accuracy_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    *tests: ScoredTest,
    n_groups: int,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval over test samples of a statistic of several models' per-group accuracies.

    Each test is ``(preds, y, g)``: the predictions of one or more models on the same samples, scored on the same
    resamples (a paired bootstrap: what two models share cancels in their difference); different tests (e.g.
    two datasets' own test sets) are resampled independently. Every resample draws each present group's samples
    with replacement within the group (its size kept), as :func:`wga_interval`.

    Args:
        statistic: maps the resampled per-group accuracies (n_boot, S, n_groups) (nan for a group absent from a
            test) to the statistic's (n_boot,) values; S counts the models of every test, in order.
            :func:`worst_group` gives a model's WGA, e.g. ``lambda a: worst_group(a[:, 1]) - worst_group(a[:, 0])``.
        tests: ``(preds, y, g)`` each: a sequence of (N_t,) predictions, and the (N_t,) classes and groups.
        n_groups, level, n_boot, seed: as :func:`wga_interval`.

    Returns:
        ``(low, high)``.
    """
    if not tests:
        raise ValueError("group_accuracy_interval needs at least one (preds, y, g) test")
    tail = _check_level(level)
    resample_tests = []
    for i, (preds, y, g) in enumerate(tests):
        if not len(preds):
            raise ValueError(f"test {i}: preds must list at least one model's predictions")
        checked = [_check_inputs(p, y, g, n_groups) for p in preds]
        if not len(checked[0][0]):
            raise ValueError(f"test {i}: no samples to resample (preds, y and g are empty)")
        resample_tests.append(([(p == yy).astype(np.float64) for p, yy, _ in checked], checked[0][2]))
    boot = np.asarray(statistic(_group_accuracy_resamples(resample_tests, n_groups, n_boot, seed)), dtype=np.float64)
    if boot.shape != (n_boot,):
        raise ValueError(f"statistic must return one value per resample, shape ({n_boot},), got {boot.shape}")
    low, high = np.quantile(boot, [tail, 1 - tail])
    return float(low), float(high)


def wga_interval(
    preds: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    n_groups: int,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of the worst-group accuracy over the test samples.

    Each resample draws every present group's samples with replacement within the group (its size kept), so the
    interval says how far WGA moves with which test images were drawn, for one trained model (the spread over
    seeds is a separate, training-side uncertainty).

    Args:
        preds, y, g: (N,) predictions, classes and groups; groups absent from ``g`` are ignored.
        n_groups: number of groups.
        level: the interval's coverage.
        n_boot: resamples.
        seed: the resampling seed.

    Returns:
        ``(low, high)``.
    """
    return group_accuracy_interval(lambda a: worst_group(a[:, 0]), ([preds], y, g), n_groups=n_groups, level=level,
                                   n_boot=n_boot, seed=seed)


def wga_change_interval(
    preds_before: ArrayLike,
    preds_after: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    *,
    n_groups: int,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A paired percentile bootstrap interval of ΔWGA = WGA(after) − WGA(before) of two models' predictions on the
    same test samples: both are scored on the same resamples (as :func:`wga_interval` draws them).

    Args:
        preds_before, preds_after, y, g: (N,) predictions of each model, classes and groups.
        n_groups, level, n_boot, seed: as :func:`wga_interval`.

    Returns:
        ``(low, high)``.
    """
    return group_accuracy_interval(lambda a: worst_group(a[:, 1]) - worst_group(a[:, 0]),
                                   ([preds_before, preds_after], y, g), n_groups=n_groups, level=level,
                                   n_boot=n_boot, seed=seed)


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1) of a list of numbers.

    A single value has std 0 (not nan), so one-seed runs print ``x ± 0.00``.

    Args:
        values: numbers, shape (n,), n >= 1.

    Returns:
        ``(mean, std)``.
    """
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError("values is empty: need at least one number for mean_std")
    if arr.size == 1:
        return float(arr[0]), 0.0
    return float(arr.mean()), float(arr.std(ddof=1))


def aggregate_seeds(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and sample std (ddof=1) over seeds of :func:`summarize` outputs.

    Args:
        summaries: one :func:`summarize` dict per seed (all with the same number
            of groups).

    Returns:
        ``{"avg": {"mean", "std"}, "avg_weighted": {...} or None, "wga": {...},
        "gap": {...}, "groups": {"mean": [..], "std": [..]}, "n_seeds": n}``.
        ``avg_weighted`` is None unless every summary has it.
    """
    if len(summaries) == 0:
        raise ValueError("summaries is empty: need at least one summary to aggregate")
    for i, s in enumerate(summaries):
        missing = {"groups", "avg", "wga", "gap"} - set(s)
        if missing:
            raise ValueError(f"summaries[{i}] lacks keys {sorted(missing)}; pass summarize() outputs")
    n_groups = len(summaries[0]["groups"])
    if any(len(s["groups"]) != n_groups for s in summaries):
        raise ValueError("all summaries must have the same number of groups")

    def _ms(vals: list[float]) -> dict[str, float]:
        m, sd = mean_std(vals)
        return {"mean": m, "std": sd}

    out: dict[str, Any] = {k: _ms([s[k] for s in summaries]) for k in ("avg", "wga", "gap")}
    if all(s.get("avg_weighted") is not None for s in summaries):
        out["avg_weighted"] = _ms([s["avg_weighted"] for s in summaries])
    else:
        out["avg_weighted"] = None
    per_group = [_ms([s["groups"][k] for s in summaries]) for k in range(n_groups)]
    out["groups"] = {"mean": [d["mean"] for d in per_group], "std": [d["std"] for d in per_group]}
    out["n_seeds"] = len(summaries)
    return out
