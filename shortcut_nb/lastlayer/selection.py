"""Which neurons a head relies on, read against their s-scores (beyond the paper, §5.2 / Fig. 5).

* :func:`influence_weighted_sscore` -- mean s-score with each neuron weighted by how much it moves the
  decision score (the paper's "Avg. s-score" counts every used neuron alike).
* :func:`selection_test` -- does the set of neurons a head keeps differ in s-score from a random set of the
  same size (the paper's "same s-score distribution", as a test)?
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["decision_weights", "influence_weighted_sscore", "selection_test", "check_scores"]


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def check_scores(scores, d: int | None = None) -> np.ndarray:
    """``scores`` as a finite float64 array (d,) (one s-score per neuron), or a ValueError naming it."""
    s = _np(scores)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array of s-scores (d,), got shape {np.shape(scores)}")
    if d is not None and s.size != d:
        raise ValueError(f"scores must have one s-score per neuron (d={d}), got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain nan or inf")
    return s


def decision_weights(weight) -> np.ndarray:
    """Per neuron, how strongly its weights separate the classes: ``sum_k |W[k] - mean_k W|`` (|w| for one row).

    Logits are shift-invariant across classes, so only the centred rows matter; for
    a two-logit head this is ``|W[1] - W[0]|``, the weight in the decision score.
    """
    W = _np(weight)
    if W.ndim == 1:
        W = W[None, :]
    if W.shape[0] == 1:
        return np.abs(W[0])
    return np.abs(W - W.mean(axis=0, keepdims=True)).sum(axis=0)


def influence_weighted_sscore(weight, scores, feature_std) -> float | None:
    """Mean s-score with each neuron weighted by its influence on the decision score (beyond the paper).

    The influence of neuron i is ``u_i = |w_i| * std(z_i)`` with ``w`` the decision
    weights (:func:`decision_weights`) over raw features, i.e. how much the score
    moves when ``z_i`` moves by one standard deviation. The paper's "Avg. s-score"
    counts a neuron with a tiny weight as much as the most important one; this
    does not.

    Args:
        weight: head weights over raw features, (K, d) or (d,).
        scores: s-scores (d,).
        feature_std: per-neuron standard deviation of the features (d,), e.g. on the validation set.

    Returns:
        ``sum u_i s_i / sum u_i``, or None when every influence is zero.
    """
    u = decision_weights(weight)
    s = check_scores(scores, u.size)
    sd = _np(feature_std).reshape(-1)
    if sd.shape != u.shape or np.any(sd < 0):
        raise ValueError(f"feature_std must be non-negative with shape {u.shape}, got {sd.shape}")
    u = u * sd
    total = u.sum()
    return float((u * s).sum() / total) if total > 0 else None


def selection_test(scores, kept, *, draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Is the kept set's mean s-score different from that of a random neuron set of the same size?

    Null hypothesis: the head picked its ``k`` neurons without regard to their
    s-scores. ``draws`` random ``k``-subsets (without replacement) give the null
    distribution of the subset mean; ``p`` is the two-sided Monte-Carlo p-value
    of ``|mean_kept - mean_all|`` (with the +1 correction, so never 0).

    Args:
        scores: s-scores (d,).
        kept: bool mask (d,) of the neurons the head uses.
        draws: random subsets.
        seed: seed of the draws.
        level: central mass of the reported band ``[lo, hi]``.

    Returns:
        ``{"k", "d", "mean_all", "mean_kept", "delta", "lo", "hi", "p"}``; with ``k == 0`` the kept-set
        entries are None, with ``k == d`` the band collapses to the mean and ``p == 1``.
    """
    s = check_scores(scores)
    kept = np.asarray(kept)
    if kept.dtype != np.bool_ or kept.shape != s.shape:
        raise ValueError(f"kept must be a bool mask of shape {s.shape}, got {kept.dtype} {kept.shape}")
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d, k, mean_all = s.size, int(kept.sum()), float(s.mean())
    out = {"k": k, "d": d, "mean_all": mean_all}
    if k == 0:
        return {**out, "mean_kept": None, "delta": None, "lo": None, "hi": None, "p": None}
    mean_kept = float(s[kept].mean())
    if k == d:
        return {**out, "mean_kept": mean_kept, "delta": 0.0, "lo": mean_all, "hi": mean_all, "p": 1.0}
    rng = np.random.default_rng(seed)
    # argsort of uniform keys = a random permutation per row; the first k columns are a random k-subset
    idx = np.argsort(rng.random((draws, d)), axis=1)[:, :k]
    means = s[idx].mean(axis=1)
    delta = mean_kept - mean_all
    extreme = np.abs(means - mean_all) >= abs(delta) - 1e-12
    tail = (1 - level) / 2
    return {**out, "mean_kept": mean_kept, "delta": float(delta), "lo": float(np.quantile(means, tail)),
            "hi": float(np.quantile(means, 1 - tail)), "p": float((1 + extreme.sum()) / (1 + draws))}
