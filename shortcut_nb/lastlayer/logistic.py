"""scikit-learn glue: a logistic regression spelled for the installed sklearn, folded into an ``nn.Linear``.

Heads are returned as ``nn.Linear`` over *raw* (unstandardised) features, so
``head(f_enc(x))`` can replace ``model.head`` directly: the standardisation is
folded into the weights, and a binary logistic model becomes two logits.
"""
from __future__ import annotations

import inspect
from typing import Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

__all__ = ["Penalty", "BinaryLogits", "make_logistic_regression", "logistic_to_linear"]

Penalty = Literal["l1", "l2", "none"]
BinaryLogits = Literal["half", "zero"]


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
