"""The depth profile (:mod:`shortcut_nb.sscore.depth`): every block, its numbers, fast on the analytic path."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore import depth as D


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(10, 3, 32, 32, generator=g)
    masks = torch.zeros(10, 32, 32, dtype=torch.bool)
    masks[:, :12, :12] = True
    return images, masks


def test_blocks_of_a_cnn_and_a_vit():
    cnn = build_model("resnet_mini", image_size=32)
    assert list(D.model_blocks(cnn)) == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert D.model_blocks(cnn)["layer4.0"] is cnn.default_target_layer()
    vit = build_model("vit_mini", image_size=32)
    blocks = D.model_blocks(vit)
    assert list(blocks) == [f"blocks.{i}.norm1" for i in range(4)] and blocks["blocks.3.norm1"] is vit.default_target_layer()


@pytest.mark.parametrize("name", ["resnet_mini", "vit_mini"])
def test_profile_rows(data, name):
    images, masks = data
    model = build_model(name, image_size=32).eval()
    tic = time.perf_counter()
    prof = D.depth_profile(model, images, masks, alpha=0.5)
    assert time.perf_counter() - tic < 20  # the analytic path: one forward per block
    assert prof.blocks == list(D.model_blocks(model))
    for row, s, sig in zip(prof.rows, prof.scores, prof.significant):
        assert tuple(row) == D.ROW_KEYS and row["units"] == s.size == sig.size
        assert row["median"] == pytest.approx(np.median(s)) and row["share_high"] == pytest.approx((s > 0.7).mean())
        assert row["chance"] == pytest.approx(144 / 1024)
        assert row["share_significant"] <= row["share_above_chance"] + 1e-12
    last = prof.blocks[-1]
    layer = D.model_blocks(model)[last]
    ref = sscore.unit_s_scores(model, images, masks, layer=layer, alpha=0.5).double().numpy()
    assert np.allclose(prof.scores[-1], ref, atol=1e-6)
    rec = prof.record()
    assert rec["variant"] == "hard" and len(rec["blocks"]) == len(prof.blocks)
