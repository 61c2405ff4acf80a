"""shortcut_nb.attention.heads: per-image shares, head statistics with a paired test, heads beyond the area."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shortcut_nb.attention import (
    attention_maps,
    head_statistics,
    heads_beyond_area,
    per_image_shares,
    spurious_area_share,
    spurious_attention_share,
    spurious_patches,
    token_layout,
)
from shortcut_nb.config import seed_everything
from shortcut_nb.models import build_model

SIZE = 16  # vit_mini: 8x8 grid of 2x2 patches


def _masks(n: int) -> torch.Tensor:
    """ISIC-like: a square spurious patch in a corner that moves per image; image 3 has none."""
    m = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(n):
        r, c = (i % 2) * 10, (i // 2 % 2) * 10
        m[i, r:r + 6, c:c + 6] = True
    if n > 3:
        m[3] = False
    return m


@pytest.fixture(scope="module")
def toy():
    seed_everything(0)
    vit = build_model("vit_mini", image_size=SIZE).eval()
    return vit, torch.randn(5, 3, SIZE, SIZE), _masks(5)


def _hand_share(attn_img: torch.Tensor, spur: torch.Tensor) -> torch.Tensor:
    """Reference: for each layer/head, mean over core query patches of the renormalised row's mass on spurious keys."""
    L, H = attn_img.shape[:2]
    out = torch.zeros(L, H, dtype=torch.float64)
    core = [q for q in range(spur.numel()) if not spur[q]]
    for l in range(L):
        for h in range(H):
            vals = []
            for q in core:
                row = attn_img[l, h, 1 + q, 1:].double()
                row = row / row.sum()
                vals.append(float(row[spur].sum()))
            out[l, h] = sum(vals) / len(vals)
    return out


def test_per_image_shares_match_a_hand_computation(toy):
    vit, images, masks = toy
    layout = token_layout(vit)
    shares, areas, used = per_image_shares(vit, images, masks, batch_size=2)
    assert used == [0, 1, 2, 4]  # image 3 has no spurious patch
    attn = attention_maps(vit, images)
    spur = spurious_patches(masks, layout)
    for j, i in enumerate(used):
        assert torch.allclose(shares[j].double(), _hand_share(attn[i], spur[i]), atol=1e-5)
        assert areas[j] == pytest.approx(float(spur[i].float().mean()))
    # the batch function averages images equally, as our per-image list does
    batch = spurious_attention_share(attn[used], masks[used], layout, query="core")
    assert torch.allclose(shares.mean(0), batch, atol=1e-6)
    assert float(areas.mean()) == pytest.approx(float(spurious_area_share(masks[used], layout, query="core")))
    # the batch size changes nothing
    again, _, _ = per_image_shares(vit, images, masks, batch_size=8)
    assert torch.allclose(again, shares, atol=1e-6)


def test_per_image_shares_without_spurious_patches_and_bad_input(toy):
    vit, images, _ = toy
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    shares, areas, used = per_image_shares(vit, images[:2], masks)
    assert used == [] and shares.shape == (0, 4, 4) and areas.shape == (0,)
    with pytest.raises(ValueError, match="batch_size"):
        per_image_shares(vit, images[:2], masks, batch_size=0)
    with pytest.raises(ValueError, match="masks must be"):
        per_image_shares(vit, images[:2], masks[:1])
    with pytest.raises(ValueError, match="images must be"):
        per_image_shares(vit, images[0], masks)


def test_head_statistics_and_heads_beyond_area():
    g = torch.Generator().manual_seed(0)
    m = 12
    areas = torch.full((m,), 0.1)
    shares = 0.1 + 0.01 * torch.randn(m, 2, 3, generator=g)
    shares[:, 1, 2] = 0.3 + 0.01 * torch.randn(m, generator=g)  # clearly above the area
    shares[:, 0, 1] = torch.tensor([2.0 if i == 0 else 0.0 for i in range(m)]) * 0.9  # big mean, not significant
    st = head_statistics(shares, areas)
    ex = shares.double().numpy() - 0.1
    assert st["n_images"] == m and st["area"] == pytest.approx(0.1)
    assert np.allclose(st["share"], shares.double().numpy().mean(0))
    assert np.allclose(st["lift"], st["share"] / 0.1)
    assert np.allclose(st["se"], ex.std(0, ddof=1) / math.sqrt(m))
    assert np.allclose(st["lower"], ex.mean(0) - 1.645 * st["se"])
    assert st["lift"][0, 1] > 1.25 and st["lower"][0, 1] < 0
    assert heads_beyond_area(st) == [(1, 2)]
    assert heads_beyond_area(st, lift_min=5.0) == []
    one = head_statistics(shares[:1], areas[:1])
    assert np.isnan(one["lower"]).all() and heads_beyond_area(one) == []
    none = head_statistics(shares[:0], areas[:0])
    assert none["n_images"] == 0 and np.isnan(none["share"]).all() and heads_beyond_area(none) == []
    with pytest.raises(ValueError, match="lift_min"):
        heads_beyond_area(st, lift_min=0.5)
    with pytest.raises(ValueError, match="areas must be"):
        head_statistics(shares, areas[:3])
