"""The fast Grad-CAM paths against the oracle: pytorch-grad-cam itself (:func:`shortcut_nb.sscore.reference_cams`).

``GradCAM(model=<x -> z>, target_layers=[layer], reshape_transform=...)`` with ``ClassifierOutputTarget(i)``,
one call per neuron.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from shortcut_nb import sscore
from shortcut_nb.models import SplitModel, build_model
from shortcut_nb.sscore import gradients
from support.sscore_models import assert_matches_reference, method_used, refuse, toy_model, trained_like


def _none_if_default(model: SplitModel, layer: nn.Module) -> nn.Module | None:
    """target_layer=None where the layer is the model's default, to test the default too."""
    try:
        default = model.default_target_layer()
    except AttributeError:  # timm models without layer4 / stages
        return layer
    return None if layer is default else layer


def _vit_avg_pool() -> SplitModel:
    model = build_model("vit_mini", image_size=32)
    model.f_enc.global_pool = "avg"
    model.f_enc.fc_norm = model.f_enc.norm  # as timm builds an avg-pool ViT: the norm after the pool
    model.f_enc.norm = nn.Identity()
    return model


Case = tuple[str, Callable[[], nn.Module], tuple[int, int], Callable[[nn.Module], nn.Module], str, str]

CASES: list[Case] = [
    # id, model factory, image (H, W), target layer, method, method expected under "auto"
    ("resnet_mini-last-32", lambda: build_model("resnet_mini", image_size=32), (32, 32),
     lambda m: m.default_target_layer(), "auto", "analytic"),
    ("resnet_mini-last-48x32", lambda: build_model("resnet_mini", image_size=48), (48, 32),
     lambda m: m.default_target_layer(), "auto", "analytic"),
    ("resnet18-last-64", lambda: build_model("resnet18"), (64, 64),
     lambda m: m.default_target_layer(), "auto", "analytic"),
    ("resnet_mini-layer3-auto", lambda: build_model("resnet_mini", image_size=32), (32, 32),
     lambda m: m.f_enc.layer3, "auto", "forward"),
    ("resnet_mini-layer3-reverse", lambda: build_model("resnet_mini", image_size=32), (32, 40),
     lambda m: m.f_enc.layer3, "reverse", "forward"),
    # conv1 inside a residual block: the shortcut bypasses the target layer
    ("resnet_mini-conv-in-block-forward", lambda: build_model("resnet_mini", image_size=32), (32, 32),
     lambda m: m.f_enc.layer4[0].conv1, "forward", "forward"),
    ("resnet_mini-conv-in-block-reverse", lambda: build_model("resnet_mini", image_size=32), (32, 32),
     lambda m: m.f_enc.layer4[0].conv1, "reverse", "forward"),
    ("toy-cnn-last", toy_model, (24, 24), lambda m: m.f_enc.act2, "auto", "analytic"),
    ("toy-cnn-conv1", toy_model, (24, 24), lambda m: m.f_enc.conv1, "auto", "forward"),
    # no pooled last block: a 1x1 conv head follows the global pool
    ("mobilenetv3-blocks", lambda: build_model("mobilenetv3_small_050"), (96, 96),
     lambda m: m.f_enc.blocks[-1], "auto", "forward"),
    ("vit_mini", lambda: build_model("vit_mini", image_size=32), (32, 32),
     lambda m: m.default_target_layer(), "auto", "class_token"),
    ("vit_mini-last-reverse", lambda: build_model("vit_mini", image_size=32), (32, 32),
     lambda m: m.default_target_layer(), "reverse", "class_token"),
    ("deit_mini", lambda: build_model("deit_mini", image_size=32), (32, 32),
     lambda m: m.default_target_layer(), "auto", "class_token"),
    # z = the mean of the patch tokens: every token's output matters, no class-token shortcut
    ("vit_mini-avg-pool", lambda: _vit_avg_pool(), (32, 32),
     lambda m: m.default_target_layer(), "auto", "reverse"),
    ("vit_mini-mid-block-forward", lambda: build_model("vit_mini", image_size=32), (32, 32),
     lambda m: m.f_enc.blocks[1].norm1, "forward", "reverse"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_neuron_cams_match_pytorch_grad_cam(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    _, factory, (H, W), layer_of, method, expected_auto = case
    # the batched-copies reverse path must work on all these models, without the vmap fallback
    monkeypatch.setattr(gradients, "_vmap_reverse_raw", refuse)
    model = trained_like(factory())
    layer = layer_of(model)
    images = torch.randn(3, 3, H, W)
    neurons = [0, 3, 7, 11]
    assert method_used(model, layer, images) == expected_auto
    ours = sscore.neuron_cams(model, images, target_layer=_none_if_default(model, layer), neurons=neurons,
                              method=method)
    assert_matches_reference(ours, sscore.reference_cams(model, images, neurons, target_layer=layer))


@pytest.mark.parametrize("method", ["forward", "reverse"])
def test_target_followed_by_inplace_op_uses_the_layer_output(method: str) -> None:
    """bn1 feeds ReLU(inplace=True): the map uses bn1's actual output.

    pytorch-grad-cam keeps a view of the output on CPU (so it sees the values after the
    in-place ReLU) and a copy on GPU (before it); we match the clean semantics, i.e. the
    reference run on the same model with out-of-place ReLUs.
    """
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(2, 3, 32, 32)
    neurons = [0, 5, 9]
    ours = sscore.neuron_cams(model, images, target_layer=model.f_enc.layer4[0].bn1, neurons=neurons, method=method)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    assert_matches_reference(ours, sscore.reference_cams(model, images, neurons,
                                                          target_layer=model.f_enc.layer4[0].bn1))


def test_reverse_mode_vmap_fallback_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """When copies cannot broadcast, the vmapped backward gives the same maps."""
    model = trained_like(build_model("vit_mini", image_size=32))
    images = torch.randn(2, 3, 32, 32)
    monkeypatch.setattr(gradients, "_replicate_reverse_raw", refuse)
    ours = sscore.neuron_cams(model, images, neurons=[1, 2], method="reverse", chunk_size=1)
    assert_matches_reference(ours, sscore.reference_cams(model, images, [1, 2],
                                                          target_layer=model.default_target_layer()))


def test_all_neurons_default_and_shape() -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(2, 3, 32, 32)
    cams = sscore.neuron_cams(model, images)
    assert cams.shape == (2, model.num_features, 32, 32)
    assert cams.dtype == torch.float32
    assert float(cams.min()) >= 0.0 and float(cams.max()) < 1.0
    ref = sscore.reference_cams(model, images, [5, 200], target_layer=model.default_target_layer())
    assert_matches_reference(cams[:, [5, 200]], ref)


def test_s_scores_from_reference_cams_equal_ours() -> None:
    """End to end: the paper's formula applied to pytorch-grad-cam's maps."""
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(3, 3, 32, 32)
    masks = torch.rand(3, 32, 32) > 0.5
    neurons = [2, 6, 8]
    ref = sscore.reference_cams(model, images, neurons, target_layer=model.f_enc.layer3)
    b = ref >= np.float32(0.5)
    m = masks.numpy()[:, None]
    n_b = b.sum((2, 3))
    ref_s = np.where(n_b > 0, (b & m).sum((2, 3)) / np.maximum(n_b, 1), 0.0).mean(0)
    ours = sscore.s_scores(model, images, masks, alpha=0.5, target_layer=model.f_enc.layer3, neurons=neurons)
    assert np.abs(ours.numpy() - ref_s).max() <= 2e-3  # at most a tie pixel or two per map


def test_reference_cams_is_float32_per_neuron_and_leaves_the_model_as_it_was() -> None:
    model = toy_model()
    images = torch.randn(2, 3, 24, 24)
    layer = model.f_enc.conv2
    ref = sscore.reference_cams(model, images, [4, 1], target_layer=layer)
    assert ref.dtype == np.float32 and ref.shape == (2, 2, 24, 24)
    assert np.allclose(ref[:, 1], sscore.reference_cams(model, images, [1], target_layer=layer)[:, 0], atol=1e-6)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
