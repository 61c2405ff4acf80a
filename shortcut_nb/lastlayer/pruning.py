"""Prune_h and the neurons a head uses: the Prune_h column and the "Avg. s-score" of a head (Tables 4-6)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

__all__ = ["PruneMode", "prune_h", "used_neurons", "mean_used_sscore"]

PruneMode = Literal["weights", "neurons"]


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
