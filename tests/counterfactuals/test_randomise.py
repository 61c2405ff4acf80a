"""Model-parameter randomisation (Adebayo et al.): what is re-drawn, and detectors falling to chance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb.counterfactuals import (
    ground_truth,
    last_block,
    mask_free_detectors,
    pairs,
    randomised_copy,
    seed_interval,
    spearman,
)
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model

SEEDS = range(6)


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> set[str]:
    old = dict(before.named_parameters())
    return {name for name, p in after.named_parameters() if not torch.equal(p, old[name])}


def test_last_block_and_all_redraw_what_they_say_seeded_and_leave_the_model_alone():
    model = build_model("resnet_mini", image_size=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    block = randomised_copy(model, scope="last_block", seed=1)
    changed = _changed(model, block)
    assert changed and all(name.startswith("f_enc.layer4.0.") for name in changed)
    weights = {n for n, p in model.named_parameters() if p.ndim >= 2}  # every conv and linear weight
    assert {n for n in weights if n.startswith("f_enc.layer4.0.")} <= changed
    everything = randomised_copy(model, scope="all", seed=1)
    assert weights <= _changed(model, everything)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the original is untouched
    again = randomised_copy(model, scope="all", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), everything.parameters()))
    other = randomised_copy(model, scope="all", seed=2)
    assert not torch.equal(other.head.weight, everything.head.weight)
    assert last_block(model) is model.f_enc.layer4[-1]
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    randomised_copy(model, seed=5)
    assert torch.equal(torch.rand(1), expected)  # the global generator is left as it was


def test_a_vit_is_redrawn_token_parameters_included():
    model = build_model("vit_mini", image_size=32)
    changed = _changed(model, randomised_copy(model, scope="all", seed=0))
    assert {"f_enc.cls_token", "f_enc.pos_embed"} <= changed
    assert last_block(model) is model.f_enc.blocks[-1]


@pytest.fixture(scope="module")
def scored(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    attribute, core = pairs(ds, 120, seed=0), pairs(ds, 120, seed=0, flip="core")
    return ds, images, attribute, core


@pytest.mark.parametrize("scope", ["all", "last_block"])
def test_randomisation_drives_detector_truth_correlation_to_chance(planted, scored, scope):
    ds, images, attribute, core = scored
    share = ground_truth(planted, attribute, core).spurious_share  # the trained (planted) model's truth
    trained = spearman(mask_free_detectors(planted, images, ds.y, ds.a)["group_gap"], share)
    block = planted.f_enc[-1] if scope == "last_block" else None  # the planted model's last block: the mixing
    rhos = []
    for seed in SEEDS:
        model = randomised_copy(planted, scope=scope, seed=seed, block=block)
        rhos.append(spearman(mask_free_detectors(model, images, ds.y, ds.a)["group_gap"], share))
    mean, low, high = seed_interval(rhos)
    assert trained > 0.9
    assert abs(mean) < 0.3 and low < 0 < high, rhos  # chance: no correlation
    assert np.max(rhos) < trained - 0.3


def test_arguments_are_checked(planted):
    with pytest.raises(ValueError, match="scope must be"):
        randomised_copy(planted, scope="head")
    with pytest.raises(ValueError, match="pass block="):
        randomised_copy(planted, scope="last_block")
    with pytest.raises(ValueError, match="not a module of the model"):
        randomised_copy(planted, scope="last_block", block=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="split"):
        randomised_copy(torch.nn.Linear(2, 2))
