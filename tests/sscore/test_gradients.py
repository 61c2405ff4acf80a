"""The exact fast paths to raw Grad-CAM maps (analytic, forward, reverse) and the choice between them."""
from __future__ import annotations

import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore import gradients, layers
from support.sscore_models import method_used, refuse, toy_model, trained_like


def test_analytic_path_only_when_z_is_the_pool_of_the_layer() -> None:
    images = torch.randn(2, 3, 24, 24)
    model = toy_model()
    assert layers._probe(model.f_enc, model.f_enc.act2, images).pooled
    # bn2's output is changed by the ReLU before the pool: not the pooled tensor
    assert not layers._probe(model.f_enc, model.f_enc.bn2, images).pooled
    # an in-place ReLU after the target rewrites the very tensor the pool reads: must be refused
    inplace = toy_model(inplace_last=True)
    assert not layers._probe(inplace.f_enc, inplace.f_enc.bn2, images).pooled
    with pytest.raises(ValueError, match="analytic"):
        sscore.neuron_cams(model, images, target_layer=model.f_enc.bn2, neurons=[0], method="analytic")


@pytest.mark.parametrize("layer_name", ["last", "layer3"])
def test_chunk_and_batch_size_do_not_change_results(layer_name: str) -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    layer = model.default_target_layer() if layer_name == "last" else model.f_enc.layer3
    images = torch.randn(3, 3, 32, 32)
    masks = torch.rand(3, 32, 32) > 0.6
    neurons = list(range(0, 40, 3))
    base = sscore.neuron_cams(model, images, target_layer=layer, neurons=neurons)
    for method in ("forward", "reverse") if layer_name == "layer3" else ("auto",):
        for chunk, batch in [(50, 2), (5, 1), (None, 16)]:
            other = sscore.neuron_cams(model, images, target_layer=layer, neurons=neurons, chunk_size=chunk,
                                       batch_size=batch, method=method)
            assert torch.allclose(other, base, atol=1e-5, rtol=0)
    s_a = sscore.s_scores(model, images, masks, alpha=0.5, target_layer=layer, neurons=neurons, chunk_size=2,
                          batch_size=2)
    s_b = sscore.s_scores(model, images, masks, alpha=0.5, target_layer=layer, neurons=neurons)
    assert torch.allclose(s_a, s_b, atol=1e-6)


def test_every_path_gives_the_same_raw_maps_on_a_pooled_layer() -> None:
    """On the pooled last block all three paths apply: their raw maps agree (the analytic one is exact)."""
    model = toy_model()
    layer = model.f_enc.act2
    images = torch.randn(2, 3, 24, 24)
    raw = {m: gradients._raw_cams(model, layer, images, [0, 5, 11], method=m, chunk_size=None)
           for m in ("analytic", "forward", "reverse")}
    assert {m: used for m, (_, used) in raw.items()} == {m: m for m in raw}
    assert raw["analytic"][0].shape == (2, 3, 12, 12)
    for m in ("forward", "reverse"):
        assert torch.allclose(raw[m][0], raw["analytic"][0], atol=1e-6, rtol=1e-5)


def test_auto_prefers_forward_unless_few_neurons_of_many_channels() -> None:
    """"auto" off the pooled layer: forward for many neurons, reverse when channels >= 3x the neurons."""
    model = toy_model()
    images = torch.randn(2, 3, 24, 24)
    enc = model.f_enc
    probe = layers._probe(enc, enc.conv1, images)  # 8 channels
    geo = layers._geometry(enc, probe.act)
    assert not probe.pooled and probe.act.shape[1] == 8
    assert gradients._choose_method("auto", probe, geo, 3) == "forward"  # 8 < 3 * 3
    assert gradients._choose_method("auto", probe, geo, 2) == "reverse"  # 8 >= 3 * 2
    assert gradients._choose_method("reverse", probe, geo, 12) == "reverse"
    pooled = layers._probe(enc, enc.act2, images)
    assert gradients._choose_method("auto", pooled, layers._geometry(enc, pooled.act), 1) == "analytic"


def test_patched_reverse_paths_are_the_ones_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' monkeypatches reach the code: with both reverse paths refused, reverse mode fails."""
    model = toy_model()
    images = torch.randn(2, 3, 24, 24)
    monkeypatch.setattr(gradients, "_replicate_reverse_raw", refuse)
    ours = sscore.neuron_cams(model, images, target_layer=model.f_enc.conv2, neurons=[0, 1], method="reverse")
    monkeypatch.setattr(gradients, "_vmap_reverse_raw", refuse)
    with pytest.raises(gradients._NoBroadcast, match="refused"):
        sscore.neuron_cams(model, images, target_layer=model.f_enc.conv2, neurons=[0, 1], method="reverse")
    monkeypatch.undo()
    assert torch.allclose(ours, sscore.neuron_cams(model, images, target_layer=model.f_enc.conv2, neurons=[0, 1],
                                                   method="reverse"), atol=1e-5, rtol=0)
    assert method_used(model, model.f_enc.act2, images) == "analytic"


def _vit(**changes: object) -> torch.nn.Module:
    model = trained_like(build_model("vit_mini", image_size=32))
    for path, value in changes.items():
        owner, _, attr = path.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, attr, value)
    return model


def test_class_token_path_equals_reverse_mode_and_applies_only_where_exact() -> None:
    """The class-token path gives reverse mode's raw maps; where its conditions fail, "auto" takes reverse
    and forcing it is an error that says why."""
    images = torch.randn(2, 3, 32, 32)
    model = _vit()
    layer = model.default_target_layer()
    fast, used = gradients._raw_cams(model, layer, images, [0, 5, 9], method="auto", chunk_size=7)
    slow, _ = gradients._raw_cams(model, layer, images, [0, 5, 9], method="reverse", chunk_size=None)
    assert used == "class_token" and torch.allclose(fast, slow, atol=1e-7, rtol=1e-4)
    assert float(slow.abs().max()) > 1e-3  # not zeros against zeros

    mid = model.f_enc.blocks[1].norm1
    assert gradients._raw_cams(model, mid, images, [0], method="auto", chunk_size=None)[1] == "reverse"
    with pytest.raises(ValueError, match="class_token.*last block's norm1"):
        gradients._raw_cams(model, mid, images, [0], method="class_token", chunk_size=None)
    qk_norm = _vit(**{"f_enc.blocks.3.attn.k_norm": torch.nn.LayerNorm(32)})
    with pytest.raises(ValueError, match="keys are normalised"):
        gradients._raw_cams(qk_norm, qk_norm.default_target_layer(), images, [0], method="class_token",
                            chunk_size=None)


def test_class_token_path_is_refused_when_it_does_not_reproduce_z() -> None:
    """Structure alone is not trusted: a model whose z also reads the other tokens (here, after the final norm)
    passes the structural checks, fails the z check, and gets the reverse path's maps."""
    model = _vit()
    enc = model.f_enc
    norm = enc.norm

    class MixTokens(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = norm(x)
            return y + y.mean(1, keepdim=True)

    enc.norm = MixTokens()
    images = torch.randn(2, 3, 32, 32)
    layer = model.default_target_layer()
    with pytest.raises(ValueError, match="does not reproduce the model's z"):
        gradients._raw_cams(model, layer, images, [0], method="class_token", chunk_size=None)
    auto, used = gradients._raw_cams(model, layer, images, [0, 3], method="auto", chunk_size=None)
    assert used == "reverse"
    assert torch.allclose(auto, gradients._raw_cams(model, layer, images, [0, 3], method="reverse",
                                                    chunk_size=None)[0])
