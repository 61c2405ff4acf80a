"""A linear head read on cached features: the one head metric every notebook reports."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..metrics import summarize


def _float64(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (a tensor or array), got {type(x).__name__}") from err


def head_predictions(weight, bias, features) -> np.ndarray:
    """(N,) the class the linear head ``z ↦ z Wᵀ + b`` predicts from ``features`` (N, d), in float64 (as
    :func:`head_metrics` scores it); ``weight`` (K, d), ``bias`` (K,) or None (zeros)."""
    W, z = _float64(weight, "weight"), _float64(features, "features")
    b = np.zeros(W.shape[0]) if bias is None else _float64(bias, "bias").reshape(-1)
    if W.ndim != 2 or W.shape[0] < 2 or b.shape != (W.shape[0],) or z.ndim != 2 or z.shape[1] != W.shape[1]:
        raise ValueError(f"weight (K>=2, d), bias (K,) and features (N, d) must agree, got {W.shape}, {b.shape}, "
                         f"{z.shape}")
    return (z @ W.T + b).argmax(axis=1)


def head_metrics(weight, bias, features, y, g, *, train_group_counts: Sequence[int] | None = None,
                 n_groups: int | None = None) -> dict:
    """Per-group accuracy, AVG, WGA and GAP of the linear head ``z ↦ z Wᵀ + b`` on features, in float64.

    Args:
        weight: (K, d) class weights, K >= 2 (tensor or array).
        bias: (K,) biases (None: zeros).
        features: (N, d) penultimate features.
        y: (N,) classes.
        g: (N,) groups.
        train_group_counts: training samples per group, for ``avg_weighted``.
        n_groups: groups (None: from ``train_group_counts`` or ``g``, see :func:`~shortcut_nb.metrics.summarize`).

    Returns:
        :func:`~shortcut_nb.metrics.summarize`'s dict plus ``pred_class1``, the share of class-1
        predictions (a degenerate head predicts one class).
    """
    pred = head_predictions(weight, bias, features)
    out = summarize(pred, y, g, train_group_counts=train_group_counts, n_groups=n_groups)
    out["pred_class1"] = float((pred == 1).mean())
    return out
