"""Mask-free detectors of spurious neurons, scored against the counterfactual ground truth (:mod:`.scoring`).

Neither needs a spurious mask or a heatmap (unlike the s-score):

* :func:`group_gap` (needs attribute labels): within a class, how far a neuron's mean activation moves between
  attribute values, standardised by the neuron's standard deviation within that class. With two values it is
  ``|mean_{a=1} - mean_{a=0}| / std``; with more, ``reduce="max"`` takes the largest pairwise gap
  (``max_v mean_v - min_v mean_v``) and ``reduce="std"`` the standard deviation of the values' means (unweighted,
  population). The score is the mean over the classes with at least two attribute values present.
* :func:`spuriosity` (no attribute labels; Moayeri et al. 2023, "Spuriosity rankings"): within class ``c``, rank
  the class's images by the neuron's contribution to the class's logit, ``z_k · W_ck``; the score is the
  accuracy of the top ``fraction`` minus that of the bottom ``fraction``, averaged over classes. A neuron the
  model leans on as a shortcut splits a class into the majority group it gets right and the minority it gets
  wrong. A neuron constant within a class (or with ``W_ck = 0``) scores 0 there.

:func:`mask_free_detectors` computes both for a model on labelled images (one forward pass);
:func:`detectors_from_activations` from activations already at hand.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .effects import activations

Reduce = Literal["max", "std"]

__all__ = ["detectors_from_activations", "group_gap", "mask_free_detectors", "spuriosity"]


def _labels(v: Tensor, n: int, name: str) -> Tensor:
    v = torch.as_tensor(v)
    if v.ndim != 1 or len(v) != n:
        raise ValueError(f"{name} must be (N,) with N = {n} (the rows of z), got shape {tuple(v.shape)}")
    return v.long().cpu()


def _activations(z: Tensor) -> Tensor:
    z = torch.as_tensor(z)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be (N, K) with N >= 2, got shape {tuple(z.shape)}")
    return z.detach().double().cpu()


def group_gap(z: Tensor, y: Tensor, a: Tensor, *, reduce: Reduce = "max") -> Tensor:
    """Group-conditional activation gap of each neuron (see the module docstring).

    Args:
        z: (N, K) activations.
        y: (N,) class labels; a: (N,) attribute values.
        reduce: ``"max"`` (largest pairwise gap) or ``"std"`` (spread of the values' means), for > 2 values.

    Returns:
        float32 (K,), >= 0.

    Raises:
        ValueError: no class has two attribute values present.
    """
    if reduce not in ("max", "std"):
        raise ValueError(f"reduce must be 'max' or 'std', got {reduce!r}")
    z = _activations(z)
    y, a = _labels(y, len(z), "y"), _labels(a, len(z), "a")
    gaps = []
    for c in torch.unique(y).tolist():
        zc, ac = z[y == c], a[y == c]
        values = torch.unique(ac).tolist()
        if len(values) < 2:
            continue
        means = torch.stack([zc[ac == v].mean(0) for v in values])
        spread = means.amax(0) - means.amin(0) if reduce == "max" else means.std(0, unbiased=False)
        std = zc.std(0, unbiased=False)
        gaps.append(torch.where(std > 0, spread / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(std)))
    if not gaps:
        raise ValueError("group_gap needs a class with at least two attribute values present in (y, a)")
    return torch.stack(gaps).mean(0).float()


def spuriosity(z: Tensor, head_weight: Tensor, y: Tensor, correct: Tensor, *, fraction: float = 0.25) -> Tensor:
    """Spuriosity gap of each neuron (Moayeri et al.; see the module docstring).

    Args:
        z: (N, K) penultimate activations.
        head_weight: (C, K), the linear head's weight (class ``c``'s row ranks class ``c``'s images).
        y: (N,) class labels in 0..C-1; correct: (N,) bool, whether the model classifies each image right.
        fraction: share of a class's images in its top and in its bottom set (at least one image each, at most
            half the class).

    Returns:
        float32 (K,) in [-1, 1], the mean over the classes with at least two images.
    """
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction!r}")
    z = _activations(z)
    y, correct = _labels(y, len(z), "y"), _labels(correct, len(z), "correct").double()
    w = torch.as_tensor(head_weight).detach().double().cpu()
    if w.ndim != 2 or w.shape[1] != z.shape[1]:
        raise ValueError(f"head_weight must be (C, {z.shape[1]}), got {tuple(w.shape)}")
    if y.min() < 0 or y.max() >= w.shape[0]:
        raise ValueError(f"y must lie in 0..{w.shape[0] - 1} (the head's classes), got {y.min()}..{y.max()}")
    gaps = []
    for c in torch.unique(y).tolist():
        zc, ok = z[y == c], correct[y == c]
        if len(zc) < 2:
            continue
        m = min(max(1, round(fraction * len(zc))), len(zc) // 2)
        order = torch.argsort(zc * w[c], dim=0, stable=True)  # (n_c, K): ascending contribution to logit c
        gap = ok[order[-m:]].mean(0) - ok[order[:m]].mean(0)
        flat = (zc.amax(0) == zc.amin(0)) | (w[c] == 0)
        gaps.append(torch.where(flat, torch.zeros_like(gap), gap))
    if not gaps:
        raise ValueError("spuriosity needs a class with at least two images")
    return torch.stack(gaps).mean(0).float()


def mask_free_detectors(model: nn.Module, images: Tensor, y: Tensor, a: Tensor, *, fraction: float = 0.25,
                        reduce: Reduce = "max", batch_size: int = 64) -> dict[str, Tensor]:
    """Both detectors of ``model``'s penultimate neurons on labelled images.

    Args:
        model: a split model; images: (N, 3, H, W) normalised; y, a: (N,) class and attribute labels.

    Returns:
        ``{"group_gap": (K,), "spuriosity": (K,)}``.
    """
    z = activations(model, images, batch_size=batch_size)
    return detectors_from_activations(z, model.head, y, a, fraction=fraction, reduce=reduce)


def detectors_from_activations(z: Tensor, head: nn.Module, y: Tensor, a: Tensor, *, fraction: float = 0.25,
                               reduce: Reduce = "max") -> dict[str, Tensor]:
    """Both detectors from penultimate activations ``z`` (N, K) already computed, the linear ``head`` (whose
    predictions on ``z`` say which images the model gets right) and the labels ``y``, ``a`` (N,).

    Returns:
        ``{"group_gap": (K,), "spuriosity": (K,)}``.
    """
    with torch.no_grad():
        logits = head(_activations(z).to(head.weight.device, head.weight.dtype)).float().cpu()
    correct = logits.argmax(1) == torch.as_tensor(y).long().cpu()
    return {"group_gap": group_gap(z, y, a, reduce=reduce),
            "spuriosity": spuriosity(z, head.weight, y, correct, fraction=fraction)}
