"""Mask diagnostics: undecided logits, and the overlap with magnitude pruning of the same size."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from shortcut_nb.masks import MaskResult, magnitude_mask, magnitude_overlap, maskable_parameters, undecided_share


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2))


def _result(model: nn.Module, logits_of, keep: float = 0.5, granularity: str = "weight") -> MaskResult:
    params = maskable_parameters(model)
    logits = {n: logits_of(p.detach()) for n, p in params}
    return MaskResult(logits=logits, weight_shapes={n: tuple(p.shape) for n, p in params}, granularity=granularity,
                      keep_target=keep)


def test_a_mask_ordered_by_magnitude_is_magnitude_pruning_and_a_random_one_is_not():
    model = _model()
    same = _result(model, lambda w: w.abs() * 3)
    assert magnitude_overlap(same, model) == 1.0
    masks = same.masks()
    assert all(torch.equal(masks[n], m) for n, m in magnitude_mask(same, model).items())
    torch.manual_seed(1)
    shuffled = _result(model, lambda w: torch.randn_like(w))
    # a random cut keeps about the keep fraction of magnitude pruning's weights
    assert magnitude_overlap(shuffled, model) == pytest.approx(shuffled.keep_fraction(), abs=0.08)
    inverse = _result(model, lambda w: -w.abs())
    assert magnitude_overlap(inverse, model) < 0.05  # keeps exactly what magnitude pruning drops


def test_channel_masks_compare_with_channel_magnitudes():
    model = _model()
    rows = _result(model, lambda w: w.abs().reshape(w.shape[0], -1).mean(1).reshape(w.shape[0], *[1] * (w.ndim - 1)),
                   granularity="channel")
    assert magnitude_overlap(rows, model) == 1.0


def test_undecided_share_counts_weights_whose_keep_probability_is_between():
    model = _model()
    assert undecided_share(_result(model, lambda w: torch.zeros_like(w))) == 1.0  # σ(0) = 0.5 everywhere
    assert undecided_share(_result(model, lambda w: torch.full_like(w, -5.0))) == 0.0  # σ = 0.007: decided
    half = _result(model, lambda w: torch.where(torch.arange(w.numel()).reshape(w.shape) % 2 == 0, 0.0, 4.0))
    assert undecided_share(half) == pytest.approx(0.5, abs=0.01)
    assert undecided_share(half, confidence=0.99) == 1.0  # σ(4) = 0.982 < 0.99
    with pytest.raises(ValueError, match="confidence"):
        undecided_share(half, confidence=1.0)
