"""The s-score arithmetic: binarisation, per-sample scores, s_scores, the chance level and the lift."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from support.sscore_models import trained_like


def test_s_scores_equal_per_sample_scores_of_neuron_cams() -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(4, 3, 32, 32)
    masks = torch.rand(4, 32, 32) > 0.5
    neurons = [1, 4, 9, 30]
    cams = sscore.neuron_cams(model, images, neurons=neurons)
    per = sscore.per_sample_scores(cams, masks, 0.4)
    assert torch.equal(sscore.s_scores(model, images, masks, alpha=0.4, neurons=neurons, reduction="none"), per)
    assert torch.allclose(sscore.s_scores(model, images, masks, alpha=0.4, neurons=neurons), per.mean(0))
    all_scores = sscore.s_scores(model, images, masks, alpha=0.4)
    assert all_scores.shape == (model.num_features,)
    assert torch.allclose(all_scores[neurons], per.mean(0), atol=1e-6)
    assert float(all_scores.min()) >= 0.0 and float(all_scores.max()) <= 1.0


def _paper_s_score(cams: np.ndarray, masks: np.ndarray, alpha: float) -> np.ndarray:
    """s^i = 1/N Σ_j Σ(b ⊙ m) / Σ b, written out loop by loop (0 where Σ b = 0)."""
    n, k = cams.shape[:2]
    s = np.zeros(k)
    for i in range(k):
        for j in range(n):
            b = cams[j, i] >= alpha
            s[i] += (b & masks[j]).sum() / b.sum() if b.sum() else 0.0
    return s / n


def test_per_sample_scores_equal_the_paper_formula() -> None:
    cams = torch.rand(6, 9, 20, 16)
    cams[0, 0] = 0.0  # |b| = 0 -> 0
    cams[1, 1] = 0.9  # all pixels selected -> the mask's area
    masks = torch.rand(6, 20, 16) > 0.7
    masks[2] = True  # everything spurious -> 1 where |b| > 0
    for alpha in (0.0, 0.25, 0.5, 0.95):
        per = sscore.per_sample_scores(cams, masks, alpha, chunk_size=4)
        expected = _paper_s_score(cams.numpy(), masks.numpy(), np.float32(alpha))
        assert np.allclose(per.mean(0).numpy(), expected, atol=1e-6)
        assert float(per.min()) >= 0 and float(per.max()) <= 1
    per = sscore.per_sample_scores(cams, masks, 0.5)
    assert per[0, 0] == 0.0
    assert torch.isclose(per[1, 1], masks[1].float().mean())
    assert torch.all(per[2][(cams[2] >= 0.5).flatten(1).any(1)] == 1.0)


def test_per_sample_scores_leave_the_cams_unchanged() -> None:
    cams = torch.rand(3, 5, 8, 8)
    before = cams.clone()
    sscore.per_sample_scores(cams, torch.rand(3, 8, 8) > 0.5, 0.5, chunk_size=2)
    assert torch.equal(cams, before)


def test_threshold_is_inclusive_and_empty_maps_score_zero() -> None:
    cams = torch.tensor([[[[0.5, 0.2], [0.1, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    masks = torch.tensor([[[True, False], [False, False]], [[True, True], [True, True]]])
    assert sscore.binarize(cams, 0.5)[0, 0, 0, 0]  # cam == alpha is selected (>=)
    per = sscore.per_sample_scores(cams, masks, 0.5)
    assert per.tolist() == [[1.0], [0.0]]  # second sample: |b| = 0 gives 0
    assert sscore.per_sample_scores(cams, masks, 0.2).tolist() == [[0.5], [0.0]]
    # alpha=1 selects nothing: normalised maps stay below 1
    assert sscore.per_sample_scores(torch.full((1, 1, 2, 2), 0.9999999), masks[:1], 1.0).tolist() == [[0.0]]


def test_alpha_is_rounded_to_float32_before_comparing() -> None:
    """A float64 alpha between two float32 values compares as its float32 rounding, in every op."""
    value = np.float32(0.3)
    above = float(np.nextafter(np.float64(value), 1.0))  # rounds to value in float32
    cams = torch.full((1, 1, 1, 1), float(value))
    assert sscore.binarize(cams, above).item()
    assert sscore.per_sample_scores(cams, torch.ones(1, 1, 1, dtype=torch.bool), above).item() == 1.0
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="alpha"):
            sscore.binarize(cams, bad)  # type: ignore[arg-type]


def test_masks_may_be_zero_one_or_carry_a_channel_axis() -> None:
    cams = torch.rand(2, 3, 6, 6)
    masks = torch.rand(2, 6, 6) > 0.5
    per = sscore.per_sample_scores(cams, masks, 0.5)
    assert torch.equal(sscore.per_sample_scores(cams, masks.float(), 0.5), per)
    assert torch.equal(sscore.per_sample_scores(cams, masks[:, None], 0.5), per)
    with pytest.raises(ValueError, match="0 and 1"):
        sscore.per_sample_scores(cams, masks.float() * 0.5, 0.5)
    with pytest.raises(ValueError, match="match cams"):
        sscore.per_sample_scores(cams, masks[:1], 0.5)


def test_chance_level_and_lift() -> None:
    masks = torch.zeros(4, 10, 10, dtype=torch.bool)
    masks[:, :8] = True  # 80 % background, like Waterbirds
    assert sscore.mask_area(masks) == pytest.approx(0.8)
    assert sscore.mask_area(masks.float()) == pytest.approx(0.8)
    scores = torch.tensor([0.8, 0.4, 1.0])
    assert torch.allclose(sscore.lift(scores, 0.8), torch.tensor([1.0, 0.5, 1.25]))
    assert torch.allclose(sscore.lift(scores, masks), sscore.lift(scores, 0.8))
    # a heatmap ignoring the image (all ones) scores exactly the mask area
    flat = torch.full((4, 1, 10, 10), 0.9)
    assert sscore.per_sample_scores(flat, masks, 0.5).mean() == pytest.approx(sscore.mask_area(masks))
    with pytest.raises(ValueError, match="area"):
        sscore.lift(scores, 0.0)
    with pytest.raises(ValueError, match="area"):
        sscore.lift(scores, 1.5)
    with pytest.raises(ValueError, match="at least one"):
        sscore.mask_area(torch.zeros(0, 4, 4, dtype=torch.bool))
