"""Deep Feature Reweighting (Kirichenko et al., 2023, "Last Layer Re-Training is Sufficient for Robustness to
Spurious Correlations"), the variant that retrains on the validation set (paper §5.2, §6.1, Tables 5-6).

A pure function of feature arrays ``z = f_enc(x)`` (shape (N, d)), labels ``y`` and
groups ``g = 2*y + a``: the group-balanced subsample, the tuning of C on two random
halves, and :func:`fit_dfr`, whose :class:`DFRResult` folds into an ``nn.Linear``
over raw features (:func:`~shortcut_nb.lastlayer.logistic.logistic_to_linear`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..metrics import group_accuracies
from ._inputs import _check_classes, _features_np, _labels_np, _n_groups, _random_state, _rng
from .logistic import BinaryLogits, logistic_to_linear, make_logistic_regression
from .pruning import PruneMode, prune_h

__all__ = ["DFR_C_GRID", "DFRResult", "MissingGroupError", "fit_dfr", "group_balanced_indices"]

#: The C grid of the DFR authors, in their order. The order matters: ties in
#: tuning worst-group accuracy go to the *first* C (the weakest penalty).
DFR_C_GRID: tuple[float, ...] = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)


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
        raise _missing_in_g(sizes, where="g" if subset is None else "the given subset of g",
                            who="a group-balanced subsample")
    n_min = min(sizes)
    return np.concatenate([rng.permutation(m)[:n_min] for m in members]).astype(np.int64)


class MissingGroupError(ValueError):
    """A group DFR needs has no sample in some input.

    Attributes:
        groups: the empty groups' ids.
        where: the input they are missing from (``"g"``, ``"selection half"``, ...).
        sizes: group sizes of that input, shape (n_groups,).
    """

    def __init__(self, message: str, *, groups: list[int], where: str, sizes: list[int]):
        super().__init__(message)
        self.groups, self.where, self.sizes = groups, where, sizes


def _missing_in_g(sizes: list[int], *, where: str, who: str = "DFR") -> MissingGroupError:
    """The error for groups absent from the data ``who`` balances (``sizes``: its group sizes, (n_groups,))."""
    empty = [k for k, n in enumerate(sizes) if n == 0]
    remedy = "drop the empty group(s) by renumbering g over the groups present as 0..k-1"
    if who == "DFR":
        remedy += " (shortcut_nb.lastlayer.fit_dfr_checked does this)"
    if empty == list(range(len(sizes) - len(empty), len(sizes))):  # only the top ids are empty
        remedy += f", or pass n_groups={len(sizes) - len(empty)} if the data has only {len(sizes) - len(empty)} groups"
    return MissingGroupError(
        f"group(s) {empty} have no samples in {where} (group sizes {sizes}, n_groups={len(sizes)}): {who} balances "
        "every group to the smallest one's size, so it needs every group present in the data it balances. Add "
        f"samples of group(s) {empty}, or {remedy}.", groups=empty, where=where, sizes=sizes)


def _missing_in_half(sizes: list[int], whole: list[int], *, half: str) -> MissingGroupError:
    """The error for groups absent from one random half when tuning C (``sizes``: that half's group sizes)."""
    empty = [k for k, n in enumerate(sizes) if n == 0]
    return MissingGroupError(
        f"group(s) {empty} have no samples in the {half} of the validation set (group sizes there {sizes}, in the "
        f"whole set {whole}): tuning C splits the validation set into two random halves, fits on a group-balanced "
        "subsample of one (the tuning-fit half) and picks C by worst-group accuracy on the other (the selection "
        "half), so every group must be present in both. Pass C= to skip tuning (shortcut_nb.lastlayer."
        f"fit_dfr_checked falls back to a fixed C), or add samples of group(s) {empty}.",
        groups=empty, where=half, sizes=sizes)


def _group_sizes(g: np.ndarray, n_groups: int) -> list[int]:
    return np.bincount(g, minlength=n_groups)[:n_groups].tolist()


def _wga(preds: np.ndarray, y: np.ndarray, g: np.ndarray, n_groups: int) -> float:
    return min(group_accuracies(preds, y, g, n_groups=n_groups, require_all=True).values())


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
    # tuning needs every group in both halves: a balanced subsample of one, worst-group accuracy on the other
    for half, idx in (("tuning-fit half", fit_half), ("selection half", eval_idx)):
        sizes = _group_sizes(g[idx], n_groups)
        if min(sizes) == 0:
            raise _missing_in_half(sizes, _group_sizes(g, n_groups), half=half)
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
    solver: str | None = None,
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
            both halves when tuning); a missing group raises :class:`MissingGroupError`
            (a ValueError) naming it (:func:`~shortcut_nb.lastlayer.fallback.fit_dfr_checked`
            degrades instead).
        seed: controls every random choice.
        c_grid: candidate C values, tried in this order.
        n_refits: refits averaged in the final model.
        solver: sklearn solver that supports L1 (None: ``"liblinear"``, the authors'
            choice, for two classes; ``"saga"`` for K > 2, which liblinear does not fit).
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
    n_classes = _check_classes(y)
    if solver is None:
        solver = "liblinear" if n_classes == 2 else "saga"
    n_groups = _n_groups(g, n_groups)
    sizes = _group_sizes(g, n_groups)
    if min(sizes) == 0:
        raise _missing_in_g(sizes, where="g, the groups of the validation set given to fit_dfr")
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
