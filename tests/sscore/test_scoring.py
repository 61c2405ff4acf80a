"""score_neurons: the one way a model's neurons are scored on drawn samples; MaskedSamples.area, its chance level."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.data.samples import MaskedSamples, draw_masked_samples
from shortcut_nb.models import build_model
from shortcut_nb.sscore.scoring import BATCH_SIZE, CHUNK_SIZE, score_neurons
from support.sscore_models import trained_like


def _samples(n: int = 5, size: int = 32) -> MaskedSamples:
    items = [{"image": torch.randn(3, size, size), "mask": torch.rand(size, size) > 0.5 + 0.08 * i}
             for i in range(n + 2)]
    return draw_masked_samples(items, n, seed=1)


@pytest.mark.parametrize("arch", ["resnet_mini", "vit_mini"])
def test_score_neurons_equals_s_scores_on_the_models_device(arch: str) -> None:
    model = trained_like(build_model(arch, image_size=32))
    samples = _samples()
    got = score_neurons(model, samples, alpha=0.4)
    ref = sscore.s_scores(model, samples.images, samples.masks, alpha=0.4, chunk_size=CHUNK_SIZE,
                          batch_size=BATCH_SIZE)
    assert got.device.type == "cpu" and got.dtype == torch.float32 and got.shape == (model.num_features,)
    assert torch.equal(got, ref)
    layer = model.f_enc.layer3 if arch == "resnet_mini" else model.f_enc.blocks[0].norm1
    assert torch.equal(score_neurons(model, samples, alpha=0.4, target_layer=layer, chunk_size=7, batch_size=2),
                       sscore.s_scores(model, samples.images, samples.masks, alpha=0.4, target_layer=layer,
                                       chunk_size=7, batch_size=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_score_neurons_runs_on_the_gpu_and_returns_cpu_scores() -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    samples = _samples()
    cpu = score_neurons(model, samples, alpha=0.4)
    gpu = score_neurons(model.cuda(), samples, alpha=0.4)
    assert gpu.device.type == "cpu"
    assert torch.allclose(gpu, cpu, atol=2e-2)  # float rounding may move a tie pixel


def test_masked_samples_area_equals_mask_area() -> None:
    samples = _samples(n=4, size=16)
    assert len(samples) == 4 and samples.masks.dtype == torch.bool
    assert samples.area == sscore.mask_area(samples.masks)
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, :5] = True
    masks[1, :2] = True
    masks[2] = True
    hand = MaskedSamples(images=torch.zeros(3, 3, 10, 10), masks=masks, indices=np.arange(3))
    assert hand.area == sscore.mask_area(masks) == pytest.approx((0.5 + 0.2 + 1.0) / 3)
