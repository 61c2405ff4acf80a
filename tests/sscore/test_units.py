"""Units of any layer (:mod:`shortcut_nb.sscore.units`) against pytorch-grad-cam's own classes, to 1e-4.

The reference is ``GradCAM`` / ``GradCAMPlusPlus`` / ``HiResCAM`` / ``LayerCAM`` on ``x -> layer output`` with a
target returning the unit's mean over positions (:func:`shortcut_nb.sscore.reference.reference_unit_cams`, the
ViT's tokens reshaped as :func:`~shortcut_nb.sscore.reference_cams` reshapes them).
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore import units as U
from shortcut_nb.sscore.reference import reference_unit_cams
from support.sscore_models import TOL, all_hooks, assert_matches_reference, trained_like

UNITS = [0, 5, 17, 31]


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return trained_like(build_model("resnet_mini", image_size=32))


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = trained_like(build_model("vit_mini", image_size=32))
    with torch.no_grad():  # unit 3 of block 1's norm1: mean below -2, where Grad-CAM++'s weight turns negative
        model.f_enc.blocks[1].norm1.bias[3] = -3.0
    return model


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_public_signatures():
    sig = inspect.signature(sscore.unit_cams)
    assert [(p.name, p.kind.name, p.default) for p in sig.parameters.values()] == [
        ("model", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("images", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("layer", "KEYWORD_ONLY", inspect.Parameter.empty), ("units", "KEYWORD_ONLY", None),
        ("method", "KEYWORD_ONLY", "gradcam")]
    sig = inspect.signature(sscore.unit_s_scores)
    assert list(sig.parameters) == ["model", "images", "masks", "layer", "alpha", "variant", "dilation", "method"]
    assert sig.parameters["variant"].default == "hard" and sig.parameters["dilation"].default == 0
    assert sig.parameters["method"].default == "gradcam"


@pytest.mark.parametrize("method", U.CAM_METHODS + ("xgradcam",))
@pytest.mark.parametrize("block", ["layer2", "layer3"])
def test_cnn_mid_block_equals_pytorch_grad_cam(cnn, images, method, block):
    layer = getattr(cnn.f_enc, block)[0]
    ours = sscore.unit_cams(cnn, images, layer=layer, units=UNITS, method=method)
    ref = reference_unit_cams(cnn, images, UNITS, layer=layer, method=method)
    assert_matches_reference(ours, ref)
    assert all_hooks(cnn) == 0


@pytest.mark.parametrize("method", U.CAM_METHODS)
def test_vit_norm1_equals_pytorch_grad_cam(vit, images, method):
    layer = vit.f_enc.blocks[1].norm1
    units = [0, 3, 64, 127]
    ours = sscore.unit_cams(vit, images, layer=layer, units=units, method=method)
    ref = reference_unit_cams(vit, images, units, layer=layer, method=method)
    assert float(np.abs(ours.numpy() - ref).max()) <= TOL


def test_the_four_methods_coincide_at_a_units_own_layer(cnn, vit, images):
    """The finding: the gradient of a unit's mean is constant in space, so the four methods give one map."""
    layer = cnn.f_enc.layer3[0]
    maps = {m: sscore.unit_cams(cnn, images, layer=layer, units=UNITS, method=m) for m in U.CAM_METHODS}
    for m in U.CAM_METHODS[1:]:
        assert float((maps[m] - maps["gradcam"]).abs().max()) <= 1e-6, m
    # ... except Grad-CAM++ on a unit whose mean activation is below -2 (a ViT norm1): its weight is negative
    vl = vit.f_enc.blocks[1].norm1
    g = sscore.unit_cams(vit, images, layer=vl, units=[0, 3])
    gpp = sscore.unit_cams(vit, images, layer=vl, units=[0, 3], method="gradcam++")
    assert float((g[:, 0] - gpp[:, 0]).abs().max()) <= 1e-6
    assert float((g[:, 1] - gpp[:, 1]).abs().max()) > 0.5


def test_scorecam_runs_pytorch_grad_cam_itself(cnn, images):
    layer = cnn.f_enc.layer2[0]
    ours = sscore.unit_cams(cnn, images[:2], layer=layer, units=[1, 2], method="scorecam")
    ref = reference_unit_cams(cnn, images[:2], [1, 2], layer=layer, method="scorecam")
    assert ours.shape == (2, 2, 32, 32) and float(np.abs(ours.numpy() - ref).max()) <= TOL


def test_default_layer_equals_s_scores_for_a_cnn(cnn, images):
    masks = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.6
    layer = cnn.default_target_layer()
    for alpha in (0.3, 0.5, 0.7):
        assert torch.equal(sscore.unit_s_scores(cnn, images, masks, layer=layer, alpha=alpha),
                           sscore.s_scores(cnn, images, masks, alpha=alpha))
    assert torch.equal(sscore.unit_cams(cnn, images, layer=layer), sscore.neuron_cams(cnn, images))


def test_unit_per_sample_and_arguments(cnn, images):
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    masks[:, :, :16] = True
    res = U.unit_per_sample(cnn, images, masks, layer=cnn.f_enc.layer1[0], alpha=0.5, units=[0, 1, 2])
    assert res.per_sample.shape == res.chance.shape == (3, 3) and np.allclose(res.chance, 0.5)
    assert np.allclose(res.scores, sscore.per_sample_scores(
        sscore.unit_cams(cnn, images, layer=cnn.f_enc.layer1[0], units=[0, 1, 2]), masks, 0.5).double().mean(0))
    assert U.layer_units(cnn, cnn.f_enc.layer3, images) == 128
    with pytest.raises(ValueError, match="method"):
        sscore.unit_cams(cnn, images, layer=cnn.f_enc.layer1, method="eigencam")
    with pytest.raises(TypeError, match="layer"):
        sscore.unit_cams(cnn, images, layer="layer1")
    with pytest.raises(ValueError, match="submodule"):
        sscore.unit_cams(cnn, images, layer=torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="variant"):
        sscore.unit_s_scores(cnn, images, masks, layer=cnn.f_enc.layer1, alpha=0.5, variant="precision")
