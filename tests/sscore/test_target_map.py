"""A target map smaller than 4x4 gives a warning: at 32 px a ResNet's last map is 1x1 and every s-score is 0.

:func:`shortcut_nb.sscore.target_map_size` tells the map (a ViT's patch grid) before any scoring; the scoring
entry points warn with :class:`shortcut_nb.sscore.SmallTargetMapWarning`, naming the layer, its map and the
image size.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore import MIN_MAP_SIDE, SmallTargetMapWarning, target_map_size
from support.sscore_models import all_hooks, trained_like


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return trained_like(build_model("resnet18"))


@pytest.fixture(scope="module")
def mini():
    torch.manual_seed(0)
    return trained_like(build_model("resnet_mini", image_size=32))


@pytest.fixture(scope="module")
def vit_small_grid():
    """A timm ViT with 16 px patches at 48 px: a 3x3 patch grid."""
    torch.manual_seed(0)
    return trained_like(build_model("vit_tiny_patch16_224", image_size=48))


def _data(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, :, : size // 2] = True
    return images, masks


def test_public_names():
    assert MIN_MAP_SIDE == 4
    assert issubclass(SmallTargetMapWarning, UserWarning)
    assert {"MIN_MAP_SIDE", "SmallTargetMapWarning", "target_map_size"} <= set(sscore.__all__)


def test_target_map_size(resnet18, mini, vit_small_grid):
    assert target_map_size(resnet18, 32) == (1, 1)
    assert target_map_size(resnet18, 224) == (7, 7)
    assert target_map_size(resnet18, (64, 128)) == (2, 4)
    assert target_map_size(mini, 32) == (4, 4)
    assert target_map_size(mini, 16) == (2, 2)
    assert target_map_size(mini, 32, mini.f_enc.layer1) == (8, 8)
    assert target_map_size(build_model("vit_mini", image_size=32), 32) == (8, 8)  # the patch grid, not tokens
    assert target_map_size(vit_small_grid, 48) == (3, 3)
    assert all_hooks(resnet18) == 0 and resnet18.training is False
    with pytest.raises(ValueError, match="image_size"):
        target_map_size(mini, 0)
    with pytest.raises(ValueError, match="image_size"):
        target_map_size(mini, (32, 32, 3))  # type: ignore[arg-type]


def test_a_1x1_map_warns_and_says_why_the_scores_are_zero(resnet18):
    """The user's report: ResNet-18 at 32 px, every s-score exactly 0 without a word."""
    images, masks = _data(2, 32)
    with pytest.warns(SmallTargetMapWarning) as rec:
        scores = sscore.s_scores(resnet18, images, masks, alpha=0.5)
    assert bool((scores == 0).all())  # why the warning exists
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "model.f_enc.layer4.1" in msg and "1x1 map" in msg and "32x32 px" in msg and "4x4" in msg
    assert "128 px" in msg  # what to do: 4 cells of 32 px each
    assert rec[0].filename == __file__  # points at the caller, not inside the package


def test_every_scoring_entry_point_warns(mini):
    images, masks = _data(2, 16)  # resnet_mini's last map at 16 px: 2x2
    layer = mini.f_enc.layer4
    calls = {
        "neuron_cams": lambda: sscore.neuron_cams(mini, images, neurons=[0, 1]),
        "s_scores": lambda: sscore.s_scores(mini, images, masks, alpha=0.5, neurons=[0, 1]),
        "unit_cams": lambda: sscore.unit_cams(mini, images, layer=layer, units=[0]),
        "unit_s_scores": lambda: sscore.unit_s_scores(mini, images, masks, layer=layer, alpha=0.5),
    }
    for name, call in calls.items():
        with pytest.warns(SmallTargetMapWarning, match=r"model\.f_enc\.layer4.* 2x2 map at 16x16 px") as rec:
            call()
        assert len(rec) == 1, name
        assert rec[0].filename == __file__, name
    # layer1 at 16 px is 4x4: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallTargetMapWarning)
        sscore.unit_s_scores(mini, images, masks, layer=mini.f_enc.layer1, alpha=0.5)


def test_score_grid_warns_once_not_per_chunk(mini):
    images, masks = _data(2, 16)
    with pytest.warns(SmallTargetMapWarning) as rec:
        grid = sscore.score_grid(mini, images, masks, (0.3, 0.5), budget_bytes=2 * 16 * 16 * 4 * 64)  # 64 a chunk
    assert grid.shape == (2, 2, mini.num_features)
    assert len([w for w in rec if w.category is SmallTargetMapWarning]) == 1


def test_a_vit_patch_grid_below_4x4_warns(vit_small_grid):
    images, masks = _data(1, 48)
    with pytest.warns(SmallTargetMapWarning, match=r"model\.f_enc\.blocks\.11\.norm1 .*3x3 patch-token grid at 48x48"):
        sscore.neuron_cams(vit_small_grid, images, neurons=[0])


def test_no_warning_at_4x4_and_above(mini):
    images, masks = _data(2, 32)  # resnet_mini's last map at 32 px: 4x4
    vit = trained_like(build_model("vit_mini", image_size=32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallTargetMapWarning)
        sscore.s_scores(mini, images, masks, alpha=0.5, neurons=[0, 1])
        sscore.unit_s_scores(mini, images, masks, layer=mini.f_enc.layer4, alpha=0.5)
        sscore.s_scores(vit, images, masks, alpha=0.5, neurons=[0, 1])
