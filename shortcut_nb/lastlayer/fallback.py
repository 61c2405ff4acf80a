"""DFR on a small validation set: balance over the groups present, fall back to a fixed C when C cannot be tuned."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..vocab import N_GROUPS
from .dfr import DFR_C_GRID, DFRResult, MissingGroupError, fit_dfr

__all__ = ["fit_dfr_checked"]


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def fit_dfr_checked(
    features,
    y,
    g,
    *,
    seed: int,
    c_grid: Sequence[float] = DFR_C_GRID,
    n_refits: int = 20,
    C: float | None = None,
    fallback_C: float = 1.0,
    n_groups: int | None = None,
) -> tuple[DFRResult, list[str]]:
    """:func:`~shortcut_nb.lastlayer.dfr.fit_dfr` that degrades with a note instead of failing on a small validation set.

    * A group absent from the whole validation set: balancing is done over the
      groups present (their ids renumbered 0..k-1 for the fit) -- a real ISIC
      validation set may have no malignant image with a patch.
    * Tuning (``C is None``) needs every group in both random halves (a
      balanced subsample of one half, worst-group accuracy on the other). With 12
      images per group (smoke) a half can miss one; then C is not tuned and
      ``fallback_C`` is used.

    Args:
        features: validation features (N, d).
        y: classes (N,).
        g: groups (N,), ``2 * y + a``.
        seed: DFR's seed (split, subsamples, solver).
        c_grid: tuning grid, tried in order.
        n_refits: refits averaged into the head.
        C: fixed C (no tuning), or None to tune.
        fallback_C: C used when tuning is impossible.
        n_groups: groups expected (None: ``max(g) + 1``, at least the paper's 4).

    Returns:
        ``(result, notes)``: the DFR head and the notes (empty when nothing degraded).
    """
    if not (isinstance(fallback_C, (int, float)) and fallback_C > 0):
        raise ValueError(f"fallback_C must be a positive number, got {fallback_C!r}")
    g = _np(g, np.int64).reshape(-1)
    notes: list[str] = []
    present = np.unique(g)
    n_groups = max(int(g.max(initial=-1)) + 1, N_GROUPS) if n_groups is None else n_groups
    g_fit = g
    if len(present) < n_groups:
        missing = sorted(set(range(n_groups)) - set(present.tolist()))
        g_fit = np.searchsorted(present, g).astype(np.int64)
        notes.append(f"validation set has no sample of group(s) {missing}: balanced over the "
                     f"{len(present)} groups present")
    result = None
    if C is None:
        try:
            result = fit_dfr(features, y, g_fit, seed=seed, c_grid=c_grid, n_refits=n_refits)
        except MissingGroupError as err:  # the usual case: a random half lacks a small group
            notes.append(f"C not tuned (group(s) {err.groups} have no samples in the {err.where}, group sizes there "
                         f"{err.sizes}: tuning needs every group in both random halves); used the fixed "
                         f"C={fallback_C:g} instead")
            C = fallback_C
        except ValueError as err:
            notes.append(f"C not tuned ({err}); used the fixed C={fallback_C:g} instead")
            C = fallback_C
    if result is None:
        result = fit_dfr(features, y, g_fit, seed=seed, n_refits=n_refits, C=float(C))
    return result, notes
