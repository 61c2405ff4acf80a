"""No silent wrong numbers: a model without the f_enc / head split, or a layer giving the logits, is refused.

A plain classifier's output is its logits: scoring it as if it were z gave the logits' scores, shape
(num_classes,), without a word. Every entry point that takes a model now refuses it (TypeError naming
``as_split_model`` and ``build_model``), and refuses a target layer whose output is the logits (ValueError).
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from shortcut_nb import sscore
from shortcut_nb.data.samples import MaskedSamples
from shortcut_nb.models import build_model
from shortcut_nb.sscore.depth import depth_profile
from shortcut_nb.sscore.units import layer_units, unit_per_sample
from support.sscore_models import all_hooks, trained_like

SPLIT_HINT = r"shortcut_nb\.models\.as_split_model\(net\).*shortcut_nb\.models\.build_model"


@pytest.fixture(scope="module")
def plain():
    """A timm classifier as it comes: no f_enc / head split (its classifier is ``fc``)."""
    return timm.create_model("resnet18", num_classes=2).eval()


@pytest.fixture(scope="module")
def split():
    torch.manual_seed(0)
    return trained_like(build_model("resnet_mini", image_size=32))


@pytest.fixture(scope="module")
def data():
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[:, :, :16] = True
    return images, masks


def _entry_points(model, layer, images, masks):
    """Every public call of shortcut_nb.sscore that takes a model, with ``layer`` as its target/unit layer."""
    samples = MaskedSamples(images, masks, np.arange(len(images)))
    return {
        "s_scores": lambda: sscore.s_scores(model, images, masks, alpha=0.5, target_layer=layer),
        "neuron_cams": lambda: sscore.neuron_cams(model, images, target_layer=layer),
        "reference_cams": lambda: sscore.reference_cams(model, images, [0], target_layer=layer),
        "score_neurons": lambda: sscore.score_neurons(model, samples, alpha=0.5, target_layer=layer),
        "target_map_size": lambda: sscore.target_map_size(model, 32, layer),
        "unit_cams": lambda: sscore.unit_cams(model, images, layer=layer),
        "unit_s_scores": lambda: sscore.unit_s_scores(model, images, masks, layer=layer, alpha=0.5),
        "unit_per_sample": lambda: unit_per_sample(model, images, masks, layer=layer, alpha=0.5),
        "layer_units": lambda: layer_units(model, layer, images),
    }


def test_a_plain_classifier_is_refused_by_every_entry_point(plain, data):
    """The user's report: s_scores(timm_classifier, ..., target_layer=model.layer4) returned (2,) silently."""
    images, masks = data
    calls = _entry_points(plain, plain.layer4, images, masks)
    calls["score_grid"] = lambda: sscore.score_grid(plain, images, masks, (0.5,))
    calls["depth_profile"] = lambda: depth_profile(plain, images, masks, alpha=0.5)
    for name, call in calls.items():
        with pytest.raises(TypeError, match=SPLIT_HINT) as err:
            call()
        assert "without .f_enc and .head" in str(err.value), name
        assert "logits" in str(err.value), name
    assert all_hooks(plain) == 0


def test_a_model_with_a_head_but_no_encoder_is_refused(data):
    """A timm ViT has a ``.head`` but no ``.f_enc``: still not split."""
    images, masks = data
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=2, img_size=32, patch_size=8)
    with pytest.raises(TypeError, match=r"without \.f_enc:.*as_split_model"):
        sscore.s_scores(vit, images, masks, alpha=0.5, target_layer=vit.blocks[-1].norm1)
    with pytest.raises(TypeError, match="as_split_model"):
        sscore.s_scores(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()), images, masks, alpha=0.5,
                        target_layer=None)


def test_the_head_as_target_layer_is_refused(split, data):
    """``model.head`` (or the model itself) gives the logits: refused, saying what to pass instead."""
    images, masks = data
    for layer, name in ((split.head, "model.head"), (split, "model")):
        for entry, call in _entry_points(split, layer, images, masks).items():
            with pytest.raises(ValueError, match="gives the logits") as err:
                call()
            msg = str(err.value)
            assert name in msg and "a layer inside model.f_enc" in msg, entry
            # the neuron paths have a default to fall back on; the unit paths take a layer always
            assert ("target_layer=None" in msg) == (not entry.startswith(("unit", "layer"))), entry
    assert all_hooks(split) == 0


def test_a_module_outside_the_encoder_is_refused(split, data):
    images, masks = data
    with pytest.raises(ValueError, match="not a submodule of model.f_enc.*a layer inside model.f_enc"):
        sscore.s_scores(split, images, masks, alpha=0.5, target_layer=torch.nn.Conv2d(3, 3, 1))
    other = build_model("resnet_mini", image_size=32)
    with pytest.raises(ValueError, match="not a submodule of model.f_enc"):
        sscore.unit_s_scores(split, images, masks, layer=other.f_enc.layer2, alpha=0.5)


def test_a_pooled_vector_is_refused_with_a_reason(split, data):
    images, masks = data
    with pytest.raises(ValueError, match="vector per image.*global pool"):
        sscore.neuron_cams(split, images, target_layer=split.f_enc.global_pool)


def test_units_of_any_layer_inside_the_encoder_are_fine(split, data):
    images, masks = data
    scores = sscore.unit_s_scores(split, images, masks, layer=split.f_enc.layer2[0], alpha=0.5)
    assert scores.shape == (64,) and bool(((scores >= 0) & (scores <= 1)).all())
    assert sscore.s_scores(split, images, masks, alpha=0.5).shape == (split.num_features,)
