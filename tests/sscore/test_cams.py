"""Heatmaps: pytorch-grad-cam's scaling in torch, neuron_cams's blocks, and its semantics (modes, hooks, errors)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore import cams as cams_module
from support.sscore_models import all_hooks, toy_model, trained_like


def test_gradcam_scale_matches_cv2_resize() -> None:
    """The torch resize is cv2.resize(INTER_LINEAR) for up-, down- and non-square sizes."""
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
        mine = cams_module._interp_matrix(h, H, cpu) @ grid @ cams_module._interp_matrix(w, W, cpu).T
        assert np.abs(mine.numpy() - up).max() <= 1e-4 * max(1, h * w)


def test_gradcam_scale_writes_into_the_given_buffer() -> None:
    raw = torch.randn(2, 3, 5, 5)
    buf = torch.full((2 * 3 * 10 * 10 + 7,), -1.0)
    out = sscore.gradcam_scale(raw, (10, 10), out=buf)
    assert out.shape == (2, 3, 10, 10) and out.data_ptr() == buf.data_ptr()
    assert torch.equal(out, sscore.gradcam_scale(raw, (10, 10)))
    assert float(out.min()) == 0.0 and float(out.max()) < 1.0  # per map: min 0, max just below 1 (the 1e-7)


def test_small_blocks_and_uneven_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finishing in blocks of a few maps, with a short last batch, changes nothing."""
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(5, 3, 32, 32)
    masks = torch.rand(5, 32, 32) > 0.5
    neurons = list(range(10))
    cams = sscore.neuron_cams(model, images, neurons=neurons)
    scores = sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, reduction="none")
    monkeypatch.setattr(cams_module, "_BLOCK_PIXELS", 7 * 32 * 32)  # 7 maps per block
    assert torch.equal(sscore.neuron_cams(model, images, neurons=neurons), cams)  # same batches: bit for bit
    assert torch.equal(sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, reduction="none"), scores)
    # other batch sizes change the forward's float rounding only
    assert torch.allclose(sscore.neuron_cams(model, images, neurons=neurons, batch_size=2), cams, atol=1e-5, rtol=0)
    assert torch.allclose(sscore.s_scores(model, images, masks, alpha=0.5, neurons=neurons, batch_size=3,
                                          reduction="none"), scores, atol=1e-3)


def test_block_size_is_read_where_the_blocks_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patching cams._BLOCK_PIXELS changes the blocks _iter_cams yields (so the test above tests blocks)."""
    model = toy_model()
    images = torch.randn(4, 3, 24, 24)

    def blocks() -> list[tuple[slice, slice]]:
        return [(bs, ks) for bs, ks, _, _ in cams_module._iter_cams(
            model, images, target_layer=model.f_enc.act2, neurons=None, chunk_size=None, batch_size=4,
            method="auto")]

    assert blocks() == [(slice(0, 4), slice(0, 12))]  # 48 maps fit in one block
    monkeypatch.setattr(cams_module, "_BLOCK_PIXELS", 8 * 24 * 24)  # 8 maps: 2 neurons of 4 images per block
    assert blocks() == [(slice(0, 4), slice(k, k + 2)) for k in range(0, 12, 2)]


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


@pytest.mark.parametrize("method", ["auto", "forward", "reverse"])
def test_hooks_removed_and_modes_restored_after_errors(method: str) -> None:
    model = toy_model()
    model.train()
    # fails inside the fast path (second forward: after the probe forward)
    model.f_enc.act1 = nn.Sequential(nn.ReLU(), _Boom(fail_on_call=2))
    images = torch.randn(2, 3, 24, 24)
    with pytest.raises(RuntimeError, match="boom"):
        sscore.neuron_cams(model, images, target_layer=model.f_enc.conv2, neurons=[0, 1], method=method)
    assert all_hooks(model) == 0
    assert model.training and all(m.training for m in model.modules())
    # fails in the probe forward (wrong channel count), before any fast path
    with pytest.raises(RuntimeError):
        sscore.s_scores(model, torch.randn(2, 4, 24, 24), torch.zeros(2, 24, 24, dtype=torch.bool), alpha=0.5,
                        target_layer=model.f_enc.conv2, method=method)
    assert all_hooks(model) == 0
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
    assert all_hooks(model) == 0
