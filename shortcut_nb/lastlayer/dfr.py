"""Last-layer methods on penultimate features: DFR, group-balanced refits, pruning ratios, weight edits.

Everything here is a pure function of feature arrays ``z = f_enc(x)`` (shape
(N, d)), labels ``y`` and groups ``g = 2*y + a``; nothing loads data.

* :func:`fit_dfr` -- Deep Feature Reweighting (Kirichenko et al., 2023, "Last
  Layer Re-Training is Sufficient for Robustness to Spurious Correlations"),
  the variant that retrains on the validation set (paper §5.2, §6.1, Tables 5-6).
* :func:`refit_last_layer` -- the paper's Table 4 "fine-tune last-layer weights
  with a group-balanced set", optionally on a subset of neurons (after pruning).
* :func:`prune_h`, :func:`used_neurons`, :func:`mean_used_sscore` -- the
  Prune_h column and the "Avg. s-score" of the neurons a head uses.
* :func:`zero_neurons` -- Table 4 rows 1-2: switch neurons off in the head.
* :func:`single_weight_edit` -- our reading of the single-weight edit of
  Hakemi et al. ([9] in the paper).

Heads are returned as ``nn.Linear`` over *raw* (unstandardised) features, so
``head(f_enc(x))`` can replace ``model.head`` directly: the standardisation is
folded into the weights, and a binary logistic model becomes two logits.
"""
from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..metrics import group_accuracies

__all__ = [
    "DFR_C_GRID",
    "DFRResult",
    "fit_dfr",
    "group_balanced_indices",
    "make_logistic_regression",
    "logistic_to_linear",
    "prune_h",
    "used_neurons",
    "mean_used_sscore",
    "refit_last_layer",
    "zero_neurons",
    "WeightEdit",
    "single_weight_edit",
]

#: The C grid of the DFR authors, in their order. The order matters: ties in
#: tuning worst-group accuracy go to the *first* C (the weakest penalty).
DFR_C_GRID: tuple[float, ...] = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)

Penalty = Literal["l1", "l2", "none"]
BinaryLogits = Literal["half", "zero"]
PruneMode = Literal["weights", "neurons"]


# --------------------------------------------------------------------------- inputs


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


# --------------------------------------------------------------------------- sklearn glue


def _new_penalty_api(estimator_cls: type = LogisticRegression) -> bool:
    """True when ``penalty`` is deprecated (sklearn >= 1.8) and ``l1_ratio`` / ``C`` say it all."""
    params = inspect.signature(estimator_cls).parameters
    if "penalty" not in params:
        return True
    return params["penalty"].default == "deprecated"


def make_logistic_regression(
    *,
    C: float,
    penalty: Penalty = "l1",
    solver: str | None = None,
    random_state: int | None = None,
    max_iter: int = 1000,
    estimator_cls: type = LogisticRegression,
) -> LogisticRegression:
    """A ``LogisticRegression`` with the given penalty, in the spelling the installed sklearn wants.

    scikit-learn 1.8 deprecated ``penalty=`` in favour of ``l1_ratio`` (1 = L1,
    0 = L2) and ``C=inf`` (no penalty); older versions only read ``l1_ratio``
    for elastic net and warn otherwise. The signature is read at run time, so
    neither path emits a warning.

    Args:
        C: inverse regularisation strength (> 0).
        penalty: ``"l1"``, ``"l2"`` or ``"none"``.
        solver: sklearn solver; None picks ``"liblinear"`` for L1 and ``"lbfgs"`` otherwise.
        random_state: passed to the solver (liblinear shuffles coordinates).
        max_iter: solver iterations. sklearn's default is 100; 1000 lets larger
            feature sets converge instead of warning (a converged fit is unchanged).
        estimator_cls: the class to build (tests pass stand-ins for old sklearn).

    Returns:
        An unfitted estimator.
    """
    if penalty not in ("l1", "l2", "none"):
        raise ValueError(f"penalty must be 'l1', 'l2' or 'none', got {penalty!r}")
    if not (isinstance(C, (int, float, np.floating)) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    if solver is None:
        solver = "liblinear" if penalty == "l1" else "lbfgs"
    kw: dict = dict(solver=solver, random_state=random_state, max_iter=max_iter)
    if _new_penalty_api(estimator_cls):
        if penalty == "none":
            kw.update(C=np.inf, l1_ratio=0.0)
        else:
            kw.update(C=float(C), l1_ratio=1.0 if penalty == "l1" else 0.0)
    else:
        kw.update(C=float(C), penalty=None if penalty == "none" else penalty)
    return estimator_cls(**kw)


def _random_state(seed: int) -> int:
    # sklearn wants a 32-bit seed; every fit of one run uses the same one
    return int(seed) % (2**32)


# --------------------------------------------------------------------------- balancing


def group_balanced_indices(
    g, *, rng: np.random.Generator, n_groups: int | None = None, subset: np.ndarray | None = None
) -> np.ndarray:
    """Indices of a group-balanced subsample: every group cut to the smallest group's size.

    Each group is subsampled without replacement (a fresh random permutation of
    its members, first ``min_k n_k`` kept). Groups are concatenated in order
    0, 1, ..., as the DFR authors do.

    Args:
        g: groups, shape (N,).
        rng: numpy Generator that draws the permutations.
        n_groups: groups expected (None: ``max(g) + 1``); every one must be present.
        subset: restrict to these indices into ``g`` (e.g. one half of a split).

    Returns:
        int64 array of indices into ``g``, length ``n_groups * min_k n_k``.
    """
    g = np.asarray(g.detach().cpu().numpy() if isinstance(g, torch.Tensor) else g).astype(np.int64)
    pool = np.arange(len(g)) if subset is None else np.asarray(subset, dtype=np.int64)
    n_groups = _n_groups(g, n_groups)
    members = [pool[g[pool] == k] for k in range(n_groups)]
    sizes = [len(m) for m in members]
    if min(sizes) == 0:
        empty = [k for k, s in enumerate(sizes) if s == 0]
        raise ValueError(
            f"group(s) {empty} have no samples (group sizes {sizes}): a group-balanced "
            "subsample needs every group"
        )
    n_min = min(sizes)
    return np.concatenate([rng.permutation(m)[:n_min] for m in members]).astype(np.int64)


def _wga(preds: np.ndarray, y: np.ndarray, g: np.ndarray, n_groups: int) -> float:
    return min(group_accuracies(preds, y, g, n_groups=n_groups, require_all=True).values())


# --------------------------------------------------------------------------- folding into nn.Linear


def logistic_to_linear(
    coef,
    intercept,
    *,
    mean=None,
    scale=None,
    binary_logits: BinaryLogits = "half",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Linear:
    """An ``nn.Linear`` over raw features equivalent to ``scaler`` + a logistic model.

    The model scores ``s = w . ((x - mu) / sigma) + b``; folding gives
    ``w' = w / sigma`` and ``b' = b - sum(w * mu / sigma)``. A binary model
    (``coef`` of shape (1, d)) becomes two logits so ``argmax`` matches
    ``predict`` (class 1 iff ``s > 0``):

    * ``"half"`` (default): logits ``[-s/2, +s/2]``, so ``softmax`` equals the
      logistic probability ``sigmoid(s)`` as well;
    * ``"zero"``: logits ``[0, s]``.

    Args:
        coef: weights on standardised features, shape (1, d) or (K, d).
        intercept: shape (1,) or (K,).
        mean: scaler mean ``mu``, shape (d,), or None (no standardisation).
        scale: scaler scale ``sigma``, shape (d,), or None.
        binary_logits: how a one-row model becomes two logits.
        dtype: parameter dtype.
        device: parameter device (default cpu).

    Returns:
        ``nn.Linear(d, max(K, 2))``.
    """
    w = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    b = np.asarray(intercept, dtype=np.float64).reshape(-1)
    if b.shape[0] != w.shape[0]:
        raise ValueError(f"intercept must have {w.shape[0]} entries to match coef, got {b.shape}")
    d = w.shape[1]
    mu = np.zeros(d) if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
    sigma = np.ones(d) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    if mu.shape != (d,) or sigma.shape != (d,):
        raise ValueError(f"mean and scale must have shape ({d},), got {mu.shape}, {sigma.shape}")
    if np.any(sigma <= 0):
        raise ValueError("scale must be positive (StandardScaler reports 1 for constant features)")
    w_raw = w / sigma
    b_raw = b - w_raw @ mu
    if w.shape[0] == 1:
        if binary_logits == "half":
            w_raw = np.concatenate([-w_raw / 2, w_raw / 2])
            b_raw = np.array([-b_raw[0] / 2, b_raw[0] / 2])
        elif binary_logits == "zero":
            w_raw = np.concatenate([np.zeros_like(w_raw), w_raw])
            b_raw = np.array([0.0, b_raw[0]])
        else:
            raise ValueError(f"binary_logits must be 'half' or 'zero', got {binary_logits!r}")
    lin = nn.Linear(d, w_raw.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w_raw))
        lin.bias.copy_(torch.from_numpy(b_raw))
    return lin.to(device=device or "cpu", dtype=dtype)


# --------------------------------------------------------------------------- DFR


@dataclass
class DFRResult:
    """A fitted DFR head, with everything needed to audit how it was chosen.

    Attributes:
        coef: averaged weights on *standardised* features, shape (1, d) for a
            binary task (sklearn's layout) or (K, d).
        intercept: averaged intercepts, shape (1,) or (K,).
        C: the chosen inverse regularisation strength.
        tuning_wga: ``{C: worst-group accuracy on the selection half}`` in grid
            order (empty when C was given instead of tuned).
        scaler_mean: StandardScaler mean of the whole validation set, shape (d,).
        scaler_scale: StandardScaler scale, shape (d,).
        refit_coefs: the individual refits, shape (n_refits, 1 or K, d).
        refit_intercepts: shape (n_refits, 1 or K).
        refit_idx: per refit, the indices (into the features given) of its
            group-balanced subsample.
        tune_fit_idx: indices of the group-balanced subsample of the tuning-fit half.
        tune_eval_idx: indices of the selection half (all of it, unbalanced).
        seed, solver, random_state: what drew the subsamples and ran the fits.
    """

    coef: np.ndarray
    intercept: np.ndarray
    C: float
    tuning_wga: dict[float, float]
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    refit_coefs: np.ndarray
    refit_intercepts: np.ndarray
    refit_idx: list[np.ndarray] = field(repr=False)
    tune_fit_idx: np.ndarray = field(repr=False)
    tune_eval_idx: np.ndarray = field(repr=False)
    seed: int = 0
    solver: str = "liblinear"
    random_state: int = 0

    def decision_function(self, features) -> np.ndarray:
        """Scores on raw features, shape (N,) for binary, (N, K) otherwise."""
        x = (_features_np(features) - self.scaler_mean) / self.scaler_scale
        s = x @ self.coef.T + self.intercept
        return s[:, 0] if self.coef.shape[0] == 1 else s

    def predict(self, features) -> np.ndarray:
        """Predicted classes on raw features, shape (N,), as sklearn's ``predict`` would."""
        s = self.decision_function(features)
        return (s > 0).astype(np.int64) if s.ndim == 1 else s.argmax(axis=1)

    def to_linear(
        self,
        *,
        binary_logits: BinaryLogits = "half",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> nn.Linear:
        """This head as an ``nn.Linear`` over raw features (see :func:`logistic_to_linear`)."""
        return logistic_to_linear(
            self.coef,
            self.intercept,
            mean=self.scaler_mean,
            scale=self.scaler_scale,
            binary_logits=binary_logits,
            dtype=dtype,
            device=device,
        )

    def prune_h(
        self,
        *,
        mode: PruneMode = "weights",
        tol: float = 0.0,
        of: Literal["average", "refits"] = "average",
    ) -> float:
        """Prune_h of this head (see :func:`prune_h`).

        ``of="average"`` (default): of the averaged head, the one DFR deploys. A
        weight is zero there only if it is zero in every refit, so this is at
        most ``of="refits"``: the mean Prune_h of the individual L1 refits.
        """
        if of == "average":
            return prune_h(self.coef, mode=mode, tol=tol)
        if of == "refits":
            return float(np.mean([prune_h(c, mode=mode, tol=tol) for c in self.refit_coefs]))
        raise ValueError(f"of must be 'average' or 'refits', got {of!r}")


def _tune_c(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    *,
    c_grid: Sequence[float],
    rng: np.random.Generator,
    n_groups: int,
    solver: str,
    random_state: int,
    max_iter: int,
):
    n = len(x)
    perm = rng.permutation(n)
    n_eval = n // 2
    # As in the authors' procedure: after one random permutation, the first
    # floor(n/2) indices are held out to pick C and the rest is the tuning-fit half.
    eval_idx, fit_half = perm[:n_eval], perm[n_eval:]
    fit_idx = group_balanced_indices(g, rng=rng, n_groups=n_groups, subset=fit_half)
    # The authors standardise the tuning fit with a scaler fit on its own
    # training rows (the balanced subsample), and apply it to the held-out half.
    scaler = StandardScaler().fit(x[fit_idx])
    x_fit, x_eval = scaler.transform(x[fit_idx]), scaler.transform(x[eval_idx])
    table: dict[float, float] = {}
    for c in c_grid:
        clf = make_logistic_regression(
            C=c, penalty="l1", solver=solver, random_state=random_state, max_iter=max_iter
        ).fit(x_fit, y[fit_idx])
        table[float(c)] = _wga(clf.predict(x_eval), y[eval_idx], g[eval_idx], n_groups)
    # first C in grid order with the highest WGA (np.argmax semantics)
    best = max(table, key=lambda c: (table[c], -list(table).index(c)))
    return best, table, fit_idx, np.sort(eval_idx)


def fit_dfr(
    features,
    y,
    g,
    *,
    seed: int,
    c_grid: Sequence[float] = DFR_C_GRID,
    n_refits: int = 20,
    solver: str = "liblinear",
    C: float | None = None,
    n_groups: int | None = None,
    max_iter: int = 1000,
) -> DFRResult:
    """Deep Feature Reweighting on validation-set features (Kirichenko et al., 2023).

    Written from the published description of DFR_val^Tr:

    1. **Tuning** (skipped when ``C`` is given). Permute the validation set at
       random and split it in half: the first ``floor(N/2)`` samples are the
       selection half, the remaining ``ceil(N/2)`` the tuning-fit half. Draw a
       group-balanced subsample of the tuning-fit half, standardise with a
       StandardScaler fit on that subsample, fit an L1 logistic regression for
       every C in ``c_grid``, and pick the C with the highest worst-group
       accuracy on the (whole, unbalanced) selection half; ties go to the
       earliest C in ``c_grid``.
    2. **Final model.** Fit a StandardScaler on all validation features. Fit
       ``n_refits`` L1 logistic regressions with the chosen C, each on a fresh
       group-balanced subsample of the whole validation set, and average their
       coefficients and intercepts.

    Group-balanced = every group subsampled without replacement to the size of
    the smallest group. One ``seed`` draws the split and every subsample (in that
    order) and seeds the solver. Unlike the authors' ``max_iter=100``, the
    default is 1000 iterations so fits converge without warnings.

    Args:
        features: validation penultimate features, shape (N, d).
        y: classes, shape (N,), values 0..K-1.
        g: groups, shape (N,), values 0..n_groups-1, all present (and present in
            both halves when tuning).
        seed: controls every random choice.
        c_grid: candidate C values, tried in this order.
        n_refits: refits averaged in the final model.
        solver: sklearn solver that supports L1 (``"liblinear"``, the authors'
            choice, binary only in sklearn >= 1.8; ``"saga"`` for K > 2).
        C: skip tuning and use this C.
        n_groups: number of groups (None: ``max(g) + 1``).
        max_iter: solver iterations.

    Returns:
        A :class:`DFRResult`.
    """
    x = _features_np(features)
    n = len(x)
    y = _labels_np(y, "y", n)
    g = _labels_np(g, "g", n)
    _check_classes(y)
    n_groups = _n_groups(g, n_groups)
    if not isinstance(n_refits, (int, np.integer)) or n_refits < 1:
        raise ValueError(f"n_refits must be a positive int, got {n_refits!r}")
    rng = _rng(seed)
    rs = _random_state(seed)

    if C is None:
        grid = [float(c) for c in c_grid]
        if len(grid) == 0 or any(not (c > 0) for c in grid):
            raise ValueError(f"c_grid must be a non-empty list of positive numbers, got {c_grid!r}")
        if len(set(grid)) != len(grid):
            raise ValueError(f"c_grid has duplicates: {c_grid!r}")
        chosen, table, tune_fit_idx, tune_eval_idx = _tune_c(
            x, y, g, c_grid=grid, rng=rng, n_groups=n_groups, solver=solver,
            random_state=rs, max_iter=max_iter,
        )
    else:
        if not C > 0:
            raise ValueError(f"C must be positive, got {C!r}")
        chosen, table = float(C), {}
        tune_fit_idx = tune_eval_idx = np.zeros(0, dtype=np.int64)

    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    coefs, intercepts, idxs = [], [], []
    for _ in range(n_refits):
        idx = group_balanced_indices(g, rng=rng, n_groups=n_groups)
        clf = make_logistic_regression(
            C=chosen, penalty="l1", solver=solver, random_state=rs, max_iter=max_iter
        ).fit(xs[idx], y[idx])
        coefs.append(clf.coef_.copy())
        intercepts.append(clf.intercept_.copy())
        idxs.append(idx)
    refit_coefs, refit_intercepts = np.stack(coefs), np.stack(intercepts)
    return DFRResult(
        coef=refit_coefs.mean(axis=0),
        intercept=refit_intercepts.mean(axis=0),
        C=chosen,
        tuning_wga=table,
        scaler_mean=scaler.mean_.copy(),
        scaler_scale=scaler.scale_.copy(),
        refit_coefs=refit_coefs,
        refit_intercepts=refit_intercepts,
        refit_idx=idxs,
        tune_fit_idx=tune_fit_idx,
        tune_eval_idx=tune_eval_idx,
        seed=int(seed),
        solver=solver,
        random_state=rs,
    )


# --------------------------------------------------------------------------- Prune_h and used neurons


def _weight_np(weight) -> np.ndarray:
    if isinstance(weight, nn.Linear):
        weight = weight.weight
    if isinstance(weight, torch.Tensor):
        weight = weight.detach().cpu().numpy()
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weight must be a non-empty (classes, d) matrix, got shape {w.shape}")
    return w


def prune_h(weight, tol: float = 0.0, *, mode: PruneMode = "weights") -> float:
    """Prune_h: the fraction of the classification layer that is zero.

    Args:
        weight: head weights, shape (classes, d) (or (d,), or an ``nn.Linear``).
        tol: a weight counts as zero when ``|w| <= tol`` (0: exactly zero).
        mode: ``"weights"`` (default, what we report as Prune_h): fraction of
            the ``classes x d`` weights that are zero. ``"neurons"``: fraction of
            the d penultimate neurons whose weights are zero for *every* class,
            i.e. neurons the head ignores. For a binary DFR head (one row, or
            its two-logit fold ``±w/2``) both agree.

    Returns:
        A fraction in [0, 1].
    """
    w = _weight_np(weight)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    zero = np.abs(w) <= tol
    if mode == "weights":
        return float(zero.mean())
    if mode == "neurons":
        return float(zero.all(axis=0).mean())
    raise ValueError(f"mode must be 'weights' or 'neurons', got {mode!r}")


def used_neurons(weight, tol: float = 0.0) -> np.ndarray:
    """Boolean mask (d,) of the neurons the head uses (some class weight with ``|w| > tol``)."""
    w = _weight_np(weight)
    return (np.abs(w) > tol).any(axis=0)


def mean_used_sscore(weight, s_scores, tol: float = 0.0) -> float:
    """Mean s-score over the neurons the head uses (the paper's "Avg. s-score" of a head).

    Args:
        weight: head weights, shape (classes, d) (or an ``nn.Linear``).
        s_scores: s-score per neuron, shape (d,).
        tol: zero tolerance, as in :func:`used_neurons`.

    Returns:
        The mean; a dense head averages over all d neurons.
    """
    mask = used_neurons(weight, tol)
    s = s_scores.detach().cpu().numpy() if isinstance(s_scores, torch.Tensor) else np.asarray(s_scores)
    s = s.astype(np.float64).reshape(-1)
    if s.shape != mask.shape:
        raise ValueError(f"s_scores must have shape {mask.shape} to match the head, got {s.shape}")
    if not mask.any():
        raise ValueError("the head uses no neuron (all weights zero): mean s-score undefined")
    return float(s[mask].mean())


# --------------------------------------------------------------------------- refit / zero


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


# --------------------------------------------------------------------------- single-weight edit


@dataclass(frozen=True)
class WeightEdit:
    """One edited classifier weight: ``weight[class_index, neuron] *= scale``.

    Accuracies are on the set given to :func:`single_weight_edit`.
    """

    class_index: int
    neuron: int
    scale: float
    old_value: float
    new_value: float
    wga_before: float
    wga_after: float
    avg_before: float
    avg_after: float


def _preds_and_accs(logits: torch.Tensor, y: torch.Tensor, g: torch.Tensor, n_groups: int):
    preds = logits.argmax(dim=1)
    accs = group_accuracies(preds, y, g, n_groups=n_groups, require_all=True)
    return min(accs.values()), float((preds == y).double().mean())


@torch.no_grad()
def single_weight_edit(
    head: nn.Linear,
    features,
    y,
    g,
    *,
    scales: Sequence[float] = (0.0,),
    n_groups: int | None = None,
    min_gain: float = 0.0,
    chunk: int = 4096,
) -> tuple[nn.Linear, WeightEdit | None]:
    """Edit the one classifier weight that most helps the worst group (our reading of [9]).

    The paper (§5.2) summarises Hakemi et al. as "searching for a single weight
    of the classification layer that most activates for the minority group and
    editing only that weight". This is our simple, exhaustive version of that
    idea, not the authors' code: for every class k, penultimate neuron i and
    factor s in ``scales``, consider ``W[k, i] <- s * W[k, i]`` and measure the
    worst-group accuracy on the given labelled set (a validation set with
    groups). The edit with the highest worst-group accuracy wins (ties: higher
    plain accuracy, then the first in (class, neuron, scale) order). It is
    applied only if it raises worst-group accuracy by more than ``min_gain``;
    otherwise the head comes back unchanged with ``None``. Hence the edit never
    lowers worst-group accuracy on this set (it may on others).

    All candidates are scored at once from the base logits: changing ``W[k, i]``
    only adds ``(s - 1) W[k, i] z_i`` to logit k. The winner is re-checked with
    the edited head itself before it is returned.

    Args:
        head: classifier ``nn.Linear(d, K)``; left untouched.
        features: penultimate features, shape (N, d).
        y: classes, shape (N,).
        g: groups, shape (N,).
        scales: factors to try (0.0 = remove the weight).
        n_groups: number of groups (None: ``max(g) + 1``); all must be present.
        min_gain: required improvement in worst-group accuracy.
        chunk: neurons scored per step (bounds memory at N x chunk).

    Returns:
        ``(edited_head, edit)``; ``edit`` is None when no edit helps.
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    if len(scales) == 0:
        raise ValueError("scales must hold at least one factor")
    dev = head.weight.device
    x = torch.as_tensor(_features_np(features), device=dev)  # float64 for scoring
    n, d = x.shape
    if d != head.in_features:
        raise ValueError(f"features have d={d} but head.in_features={head.in_features}")
    yt = torch.as_tensor(_labels_np(y, "y", n), device=dev)
    gt = torch.as_tensor(_labels_np(g, "g", n), device=dev)
    n_groups = _n_groups(gt.cpu().numpy(), n_groups)
    k_classes = head.out_features
    if k_classes < 2:
        raise ValueError("head must have at least 2 outputs")
    if yt.max() >= k_classes:
        raise ValueError(f"y has class {int(yt.max())} but the head has {k_classes} outputs")

    # base predictions with the head in its own dtype: what the user's model does
    base_logits = head(x.to(head.weight.dtype))
    wga0, avg0 = _preds_and_accs(base_logits, yt, gt, n_groups)

    W = head.weight.double()
    logits = x @ W.T + head.bias.double()  # (N, K)
    group_onehot = torch.nn.functional.one_hot(gt, n_groups).double()  # (N, G)
    group_n = group_onehot.sum(0)  # (G,)
    if (group_n == 0).any():
        empty = torch.nonzero(group_n == 0).flatten().tolist()
        raise ValueError(f"group(s) {empty} have no samples in the edit set")

    cands = []  # (wga, avg, k, i, s)
    for k in range(k_classes):
        others = logits.clone()
        others[:, k] = -torch.inf
        other_max, other_arg = others.max(dim=1)  # first maximal index among j != k
        for s in scales:
            for start in range(0, d, chunk):
                sl = slice(start, min(start + chunk, d))
                new_k = logits[:, k : k + 1] + (float(s) - 1.0) * W[k, sl] * x[:, sl]  # (N, c)
                # argmax picks the first index on ties
                win_k = (new_k > other_max[:, None]) | (
                    (new_k == other_max[:, None]) & (k < other_arg)[:, None]
                )
                pred = torch.where(win_k, torch.full_like(win_k, k, dtype=torch.long), other_arg[:, None])
                correct = (pred == yt[:, None]).double()  # (N, c)
                gacc = (group_onehot.T @ correct) / group_n[:, None]  # (G, c)
                wga = gacc.min(dim=0).values.tolist()
                avg = correct.mean(dim=0).tolist()
                for j, i in enumerate(range(sl.start, sl.stop)):
                    cands.append((wga[j], avg[j], k, i, float(s)))
    order = sorted(range(len(cands)), key=lambda c: (-cands[c][0], -cands[c][1], c))
    for c in order[:20]:  # re-check the best few exactly; float ties can flip a prediction
        wga_c, _, k, i, s = cands[c]
        if wga_c <= wga0 + min_gain:
            break
        edited = copy.deepcopy(head)
        old = float(edited.weight[k, i])
        edited.weight[k, i] = edited.weight[k, i] * s
        wga1, avg1 = _preds_and_accs(edited(x.to(head.weight.dtype)), yt, gt, n_groups)
        if wga1 > wga0 + min_gain:
            return edited, WeightEdit(
                class_index=k, neuron=i, scale=s, old_value=old,
                new_value=float(edited.weight[k, i]), wga_before=wga0, wga_after=wga1,
                avg_before=avg0, avg_after=avg1,
            )
    return copy.deepcopy(head), None
