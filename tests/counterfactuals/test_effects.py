"""Neuron effects and the mask-free detectors on a model whose neurons are known (see conftest.py)."""
from __future__ import annotations

import pytest
import torch

from shortcut_nb.counterfactuals import (
    activations,
    ground_truth,
    group_gap,
    logit_effects,
    mask_free_detectors,
    neuron_effects,
    pairs,
    spearman,
    spurious_share,
    spuriosity,
    standardised_change,
)
from shortcut_nb.data import load_dataset

SPURIOUS, CORE = 0, -1  # the planted neurons: z_0 reads only the patch, the last one only the blotches


@pytest.fixture(scope="module")
def test_split(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    return ds, images


@pytest.fixture(scope="module")
def flipped(test_split):
    ds, _ = test_split
    return pairs(ds, 120, seed=0, flip="attribute"), pairs(ds, 120, seed=0, flip="core")


def test_attribute_flips_rank_the_planted_spurious_neuron_first_and_the_core_one_last(planted, flipped):
    attribute, core = flipped
    effect = neuron_effects(planted, attribute.images, attribute.counterfactuals)
    # neurons 0 and 1 (w = 1 and 0.96) are both all but purely spurious: their effects tie within noise
    assert effect[SPURIOUS] >= 0.99 * effect.max() and effect.argmin() == len(effect) - 1
    assert spearman(effect, torch.linspace(1, 0, len(effect))) > 0.9  # the effect falls with the planted mixing
    core_effect = neuron_effects(planted, core.images, core.counterfactuals)
    assert core_effect[SPURIOUS] == 0 and core_effect.argmin() == SPURIOUS  # the patch is not touched
    assert core_effect[CORE] > 0.5


def test_ground_truth_share_falls_with_the_planted_mixing(planted, flipped):
    truth = ground_truth(planted, *flipped)
    share = truth.spurious_share
    assert share[SPURIOUS] == 1 and share[CORE] < 0.01
    assert (share[1:] <= share[:-1] + 1e-6).all()  # w_k falls, so does the share
    assert truth.attribute_logit[SPURIOUS] > 0 and truth.core_logit[SPURIOUS] == 0
    with pytest.raises(ValueError, match="same images"):
        ground_truth(planted, flipped[0], pairs_of_other_images(flipped[1]))


def pairs_of_other_images(p):
    return p._replace(indices=p.indices.flip(0), images=p.images.flip(0))


def test_the_mask_free_detectors_agree_with_the_truth(planted, flipped, test_split):
    ds, images = test_split
    share = ground_truth(planted, *flipped).spurious_share
    scores = mask_free_detectors(planted, images, ds.y, ds.a)
    for name, score in scores.items():
        assert score[SPURIOUS] > score[CORE], name
        assert score.argmax() < len(score) // 2, name  # the top-scored neuron is a mostly-spurious one
    assert spearman(scores["group_gap"], share) > 0.9
    assert spearman(scores["spuriosity"], share) > 0.5


def test_a_layer_scores_its_units_spatial_means(planted, test_split):
    _, images = test_split
    relu = planted.f_enc[1]
    units = activations(planted, images[:10], layer=relu)
    assert torch.allclose(units, planted.f_enc[:4](images[:10]), atol=1e-6)
    effect = neuron_effects(planted, images[:10], images[10:20], layer=relu)
    assert effect.shape == (8,) and torch.equal(effect[2:], torch.zeros(6))  # silent channels: no change


def test_standardised_change_and_share_by_hand():
    z = torch.tensor([[0.0, 1.0, 5.0], [2.0, 1.0, 5.0]])
    z_cf = torch.tensor([[1.0, 1.0, 5.0], [1.0, 1.0, 6.0]])
    effect = standardised_change(z, z_cf)
    assert torch.allclose(effect[0], 1.0 / z[:, 0].std())
    assert effect[1] == 0 and effect[2].isnan()  # constant: unchanged -> 0, changed -> no scale (NaN)
    share = spurious_share(torch.tensor([1.0, 0.0, 3.0, 0.0]), torch.tensor([1.0, 2.0, 0.0, 0.0]))
    assert share[:3].tolist() == [0.5, 0.0, 1.0] and share[3].isnan()
    w = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 1.0]])
    assert torch.allclose(logit_effects(z, z_cf, w), torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]]))
    with pytest.raises(ValueError, match="non-negative"):
        spurious_share(torch.tensor([-1.0]), torch.tensor([1.0]))


def test_group_gap_by_hand_and_with_more_attribute_values():
    z = torch.tensor([[0.0], [2.0], [4.0], [0.0], [0.0], [3.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    a = torch.tensor([0, 1, 2, 0, 0, 1])
    std0, std1 = z[:3, 0].std(unbiased=False), z[3:, 0].std(unbiased=False)
    expected_max = (4.0 / std0 + 3.0 / std1) / 2
    assert torch.allclose(group_gap(z, y, a), expected_max.reshape(1))
    expected_std = (torch.tensor([0.0, 2.0, 4.0]).std(unbiased=False) / std0
                    + torch.tensor([0.0, 3.0]).std(unbiased=False) / std1) / 2
    assert torch.allclose(group_gap(z, y, a, reduce="std"), expected_std.reshape(1))
    with pytest.raises(ValueError, match="two attribute values"):
        group_gap(z, y, torch.zeros(6, dtype=torch.long))


def test_spuriosity_by_hand():
    z = torch.tensor([[1.0, 3.0], [2.0, 3.0], [3.0, 3.0], [4.0, 3.0]])
    w = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    y = torch.zeros(4, dtype=torch.long)
    correct = torch.tensor([False, False, True, True])
    gap = spuriosity(z, w, y, correct, fraction=0.5)
    assert gap.tolist() == [1.0, 0.0]  # top half right, bottom half wrong; a constant neuron scores 0
    with pytest.raises(ValueError, match="fraction"):
        spuriosity(z, w, y, correct, fraction=0.9)
