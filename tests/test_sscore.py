"""s-score module: fast Grad-CAM paths against pytorch-grad-cam, and the score arithmetic.

pytorch-grad-cam is the reference (:func:`shortcut_nb.sscore.reference_cams`): ``GradCAM(model=<x -> z>,
target_layers=[layer], reshape_transform=...)`` with ``ClassifierOutputTarget(i)``, one call per neuron.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from shortcut_nb import sscore
from shortcut_nb import bands as bands_
from shortcut_nb.bands import band_counts, neurons_in_band, select_neurons
from shortcut_nb.data.samples import sample_for_sscore
from shortcut_nb.sscore import cams as engine
from shortcut_nb.models import SplitModel, build_model

TOL = 1e-4
ALPHAS = (0.3, 0.5, 0.7)



# --------------------------------------------------------------------------- helpers


def trained_like(model: nn.Module) -> nn.Module:
    """Random norm parameters and statistics, in eval mode.

    timm zero-initialises the last BatchNorm of every residual block, so at init no
    gradient flows through a residual branch and mid-block Grad-CAMs are all zero:
    a test on such a model would compare zeros with zeros.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.uniform_(0.7, 1.3)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def assert_matches_reference(ours: torch.Tensor, ref: np.ndarray) -> None:
    """Maps within 1e-4; binarised maps identical except at float ties.

    Two exact computations of the same map differ by float rounding (~1e-6 here), so a
    pixel whose value lies within that of alpha can land on either side. We accept a
    differing pixel only when the reference value is within TOL of alpha, and only a
    handful of them.
    """
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == ref.shape
    assert (ref.reshape(-1, ref.shape[-2] * ref.shape[-1]).max(1) > 0.5).mean() >= 0.5, "degenerate (zero) maps"
    diff = np.abs(ours_np - ref)
    assert diff.max() <= TOL, f"max |ours - reference| = {diff.max():.2e}"
    for alpha in ALPHAS:
        b_ours = sscore.binarize(ours, alpha).cpu().numpy()
        differ = b_ours != (ref >= np.float32(alpha))
        assert np.all(np.abs(ref[differ] - alpha) <= TOL), "a binarised pixel differs away from the threshold"
        assert differ.sum() <= max(2, differ.size // 100_000), f"{differ.sum()} tie pixels at alpha={alpha}"


def method_used(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> str:
    """The path "auto" takes for all neurons (what s_scores asks for)."""
    return engine._raw_cams(model, layer, images, None, method="auto", chunk_size=None)[1]


def _none_if_default(model: SplitModel, layer: nn.Module) -> nn.Module | None:
    """target_layer=None where the layer is the model's default, to test the default too."""
    try:
        default = model.default_target_layer()
    except AttributeError:  # timm models without layer4 / stages
        return layer
    return None if layer is default else layer


class ToyCNN(nn.Module):
    """A plain nn.Sequential-style CNN ending in nn.AdaptiveAvgPool2d + Flatten (no timm)."""

    def __init__(self, inplace_last: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.act2 = nn.ReLU(inplace=inplace_last)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.bn2(self.conv2(self.act1(self.conv1(x)))))
        return self.flat(self.pool(x))


def toy_model(inplace_last: bool = False) -> SplitModel:
    return trained_like(SplitModel(ToyCNN(inplace_last), nn.Linear(12, 2), name="toy", kind="cnn"))


# --------------------------------------------------------------------------- against pytorch-grad-cam

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
     lambda m: m.default_target_layer(), "auto", "reverse"),
    ("deit_mini", lambda: build_model("deit_mini", image_size=32), (32, 32),
     lambda m: m.default_target_layer(), "auto", "reverse"),
    ("vit_mini-mid-block-forward", lambda: build_model("vit_mini", image_size=32), (32, 32),
     lambda m: m.f_enc.blocks[1].norm1, "forward", "reverse"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_neuron_cams_match_pytorch_grad_cam(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    _, factory, (H, W), layer_of, method, expected_auto = case
    # the batched-copies reverse path must work on all these models, without the vmap fallback
    monkeypatch.setattr(engine, "_vmap_reverse_raw", _refuse)
    model = trained_like(factory())
    layer = layer_of(model)
    images = torch.randn(3, 3, H, W)
    neurons = [0, 3, 7, 11]
    assert method_used(model, layer, images) == expected_auto
    ours = sscore.neuron_cams(model, images, target_layer=_none_if_default(model, layer), neurons=neurons,
                              method=method)
    assert_matches_reference(ours, sscore.reference_cams(model, images, neurons, target_layer=layer))


def _refuse(*args: object, **kwargs: object) -> torch.Tensor:
    raise engine._NoBroadcast("refused in this test")


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
    monkeypatch.setattr(engine, "_replicate_reverse_raw", _refuse)
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


def test_gradcam_scale_matches_cv2_resize() -> None:
    """The torch resize is cv2.resize(INTER_LINEAR) for up-, down- and non-square sizes."""
    import cv2

    from pytorch_grad_cam.utils.image import scale_cam_image

    for (h, w), (H, W) in [((7, 7), (224, 224)), ((8, 8), (64, 64)), ((3, 5), (17, 40)), ((16, 12), (8, 5)),
                           ((6, 6), (6, 6))]:
        raw = torch.randn(4, h, w)
        ours = sscore.gradcam_scale(raw, (H, W)).numpy()
        # BaseCAM: ReLU, scale_cam_image(cam, (W, H)) with cv2.resize, then scale_cam_image again
        ref = scale_cam_image(scale_cam_image(np.maximum(raw.numpy(), 0), (W, H)))
        assert ours.shape == (4, H, W)
        assert np.abs(ours - ref).max() <= 1e-6
        up = cv2.resize(np.float32(np.arange(h * w).reshape(h, w)), (W, H))
        cpu = torch.device("cpu")
        grid = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
        mine = engine._interp_matrix(h, H, cpu) @ grid @ engine._interp_matrix(w, W, cpu).T
        assert np.abs(mine.numpy() - up).max() <= 1e-4 * max(1, h * w)


# --------------------------------------------------------------------------- method choice and invariances


def test_analytic_path_only_when_z_is_the_pool_of_the_layer() -> None:
    images = torch.randn(2, 3, 24, 24)
    model = toy_model()
    assert engine._probe(model.f_enc, model.f_enc.act2, images).pooled
    # bn2's output is changed by the ReLU before the pool: not the pooled tensor
    assert not engine._probe(model.f_enc, model.f_enc.bn2, images).pooled
    # an in-place ReLU after the target rewrites the very tensor the pool reads: must be refused
    inplace = toy_model(inplace_last=True)
    assert not engine._probe(inplace.f_enc, inplace.f_enc.bn2, images).pooled
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


def test_small_blocks_and_uneven_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finishing in blocks of a few maps, with a short last batch, changes nothing."""
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(5, 3, 32, 32)
    masks = torch.rand(5, 32, 32) > 0.5
    neurons = list(range(10))
    cams = sscore.neuron_cams(model, images, neurons=neurons)
    scores = sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, reduction="none")
    monkeypatch.setattr(engine, "_BLOCK_PIXELS", 7 * 32 * 32)  # 7 maps per block
    assert torch.equal(sscore.neuron_cams(model, images, neurons=neurons), cams)  # same batches: bit for bit
    assert torch.equal(sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, reduction="none"), scores)
    # other batch sizes change the forward's float rounding only
    assert torch.allclose(sscore.neuron_cams(model, images, neurons=neurons, batch_size=2), cams, atol=1e-5, rtol=0)
    assert torch.allclose(sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, batch_size=3,
                                          reduction="none"), scores, atol=1e-3)


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


def test_training_mode_restored_and_no_grads_touched() -> None:
    model = build_model("resnet_mini", image_size=32)
    model.train()
    model.f_enc.layer2.eval()  # mixed modes must come back as they were
    images = torch.randn(2, 3, 32, 32)
    cams = sscore.neuron_cams(model, images, target_layer=model.f_enc.layer3, neurons=[0, 1])
    assert model.f_enc.training and model.training and not model.f_enc.layer2.training
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    assert torch.allclose(cams, sscore.neuron_cams(model, images, target_layer=model.f_enc.layer3, neurons=[0, 1]))


class _Boom(nn.Module):
    """Raises on its n-th call: lets a forward fail inside a fast path."""

    def __init__(self, fail_on_call: int):
        super().__init__()
        self.calls, self.fail_on_call = 0, fail_on_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.fail_on_call:
            raise RuntimeError("boom")
        return x


def _all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("method", ["auto", "forward", "reverse"])
def test_hooks_removed_and_modes_restored_after_errors(method: str) -> None:
    model = toy_model()
    model.train()
    # fails inside the fast path (second forward: after the probe forward)
    model.f_enc.act1 = nn.Sequential(nn.ReLU(), _Boom(fail_on_call=2))
    images = torch.randn(2, 3, 24, 24)
    with pytest.raises(RuntimeError, match="boom"):
        sscore.neuron_cams(model, images, target_layer=model.f_enc.conv2, neurons=[0, 1], method=method)
    assert _all_hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())
    # fails in the probe forward (wrong channel count), before any fast path
    with pytest.raises(RuntimeError):
        sscore.s_scores(model, torch.randn(2, 4, 24, 24), torch.zeros(2, 24, 24, dtype=torch.bool), alpha=0.5,
                        target_layer=model.f_enc.conv2, method=method)
    assert _all_hooks(model) == 0
    assert model.training


def test_bad_arguments_raise_clear_errors() -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(2, 3, 32, 32)
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    with pytest.raises(ValueError, match="neurons"):
        sscore.neuron_cams(model, images, neurons=[0, 256])
    with pytest.raises(ValueError, match="alpha"):
        sscore.s_scores(model, images, masks, alpha=1.5)
    with pytest.raises(ValueError, match="masks"):
        sscore.s_scores(model, images, torch.zeros(2, 16, 16, dtype=torch.bool), alpha=0.5)
    with pytest.raises(ValueError, match="images"):
        sscore.neuron_cams(model, images[0])
    with pytest.raises(ValueError, match="submodule"):
        sscore.neuron_cams(model, images, target_layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="method"):
        sscore.neuron_cams(model, images, method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        sscore.neuron_cams(model, images, chunk_size=0)
    assert _all_hooks(model) == 0


# --------------------------------------------------------------------------- score arithmetic


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


def test_threshold_is_inclusive_and_empty_maps_score_zero() -> None:
    cams = torch.tensor([[[[0.5, 0.2], [0.1, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    masks = torch.tensor([[[True, False], [False, False]], [[True, True], [True, True]]])
    assert sscore.binarize(cams, 0.5)[0, 0, 0, 0]  # cam == alpha is selected (>=)
    per = sscore.per_sample_scores(cams, masks, 0.5)
    assert per.tolist() == [[1.0], [0.0]]  # second sample: |b| = 0 gives 0
    assert sscore.per_sample_scores(cams, masks, 0.2).tolist() == [[0.5], [0.0]]
    # alpha=1 selects nothing: normalised maps stay below 1
    assert sscore.per_sample_scores(torch.full((1, 1, 2, 2), 0.9999999), masks[:1], 1.0).tolist() == [[0.0]]


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


def test_bands_counts_and_selection() -> None:
    scores = torch.tensor([0.1, 0.2, 0.5, 0.7, 0.71, 0.9, 0.0, 0.9])
    assert bands_.bands(scores).tolist() == ["low", "mid", "mid", "mid", "high", "high", "low", "high"]
    assert band_counts(scores) == {"low": 2, "mid": 3, "high": 3}
    assert band_counts(scores.numpy(), low=0.5, high=0.8) == {"low": 3, "mid": 3, "high": 2}
    assert select_neurons(scores, 0.7).tolist() == [5, 7, 4]  # > 0.7, highest first, ties by index
    assert select_neurons(scores, 0.95).tolist() == []
    assert neurons_in_band(scores, "mid").tolist() == [3, 2, 1]
    assert neurons_in_band(scores, "high", 0) == 5
    assert neurons_in_band(scores, "low", -1) == 6
    with pytest.raises(ValueError, match="rank"):
        neurons_in_band(scores, "high", 3)
    with pytest.raises(ValueError, match="band"):
        neurons_in_band(scores, "top")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low"):
        bands_.bands(scores, low=0.8, high=0.2)


def test_sample_for_sscore_picks_masked_items_reproducibly() -> None:
    items = []
    for i in range(12):
        item = {"image": torch.full((3, 8, 8), float(i)), "y": torch.tensor(0)}
        if i % 3:  # every third item has no mask
            item["mask"] = torch.rand(8, 8) > 0.5
        items.append(item)
    images, masks, idx = sample_for_sscore(items, 5, seed=3, return_indices=True)
    assert images.shape == (5, 3, 8, 8) and masks.shape == (5, 8, 8) and masks.dtype == torch.bool
    assert all(i % 3 for i in idx.tolist()) and len(set(idx.tolist())) == 5
    assert torch.equal(images[:, 0, 0, 0], idx.float())
    assert torch.equal(masks[0], items[int(idx[0])]["mask"])
    again_images, _ = sample_for_sscore(items, 5, seed=3)
    assert torch.equal(again_images, images)
    other = sample_for_sscore(items, 5, seed=4, return_indices=True)[2]
    assert other.tolist() != idx.tolist()
    with pytest.raises(ValueError, match="only 8"):
        sample_for_sscore(items, 9, seed=0)
