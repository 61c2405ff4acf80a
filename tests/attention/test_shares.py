"""shortcut_nb.attention.shares: each head's share of attention on spurious patches, the area, lifts."""
from __future__ import annotations

import pytest
import torch

from shortcut_nb.attention import (
    TokenLayout,
    attention_lift,
    attention_maps,
    head_values,
    heads_above_chance,
    patch_attention,
    spurious_area_share,
    spurious_attention_share,
    spurious_patches,
    token_layout,
)
from shortcut_nb.config import seed_everything
from shortcut_nb.models import build_model

VIT_NAMES = ("vit_mini", "deit_mini")


def _peaked(model: torch.nn.Module) -> torch.nn.Module:
    """Larger q/k weights make a random-init ViT's attention rows peaked (see test_maps.py)."""
    with torch.no_grad():
        for blk in model.f_enc.blocks:
            blk.attn.qkv.weight.mul_(6.0)
    return model.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    seed_everything(0)
    return {name: _peaked(build_model(name, image_size=32)) for name in VIT_NAMES}


def _images(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size)


def _lay8(prefix: int = 1) -> TokenLayout:
    return TokenLayout(num_prefix_tokens=prefix, grid=(8, 8), patch_size=(4, 4), image_size=(32, 32),
                       prefix_names=("cls", "dist")[:prefix])


def _masks(B: int = 4) -> torch.Tensor:
    """Pixel masks whose spurious area differs per image and always leaves core and spurious patches."""
    masks = torch.zeros(B, 32, 32, dtype=torch.bool)
    for b in range(B):
        masks[b, : 4 * (b + 2), :] = True  # the top b+2 patch rows
        masks[b, 28:, 28:] = True
    return masks


def _uniform_over_patches(B, L, H, lay, prefix_mass=0.3):
    T, p, N = lay.num_tokens, lay.num_prefix_tokens, lay.num_patches
    attn = torch.empty(B, L, H, T, T)
    attn[..., :p] = prefix_mass / p  # mass on prefix tokens must not count
    attn[..., p:] = (1 - prefix_mass) / N
    return attn


@pytest.mark.parametrize("prefix", [1, 2])
@pytest.mark.parametrize("query", ["core", "spurious", "cls", (2, 3)])
def test_share_equals_area_for_uniform_attention(prefix, query):
    lay = _lay8(prefix)
    masks = _masks()
    attn = _uniform_over_patches(4, 2, 3, lay)
    share = spurious_attention_share(attn, masks, lay, query=query)
    area = spurious_area_share(masks, lay, query=query)
    per_image = spurious_patches(masks, lay).float().mean(1)
    torch.testing.assert_close(area, per_image.mean())
    assert share.shape == (2, 3)
    torch.testing.assert_close(share, torch.full((2, 3), float(area)), atol=1e-6, rtol=0)
    torch.testing.assert_close(attention_lift(share, area), torch.ones(2, 3), atol=1e-5, rtol=0)
    assert heads_above_chance(share, area, margin=1e-4) == []


@pytest.mark.parametrize("query", ["core", "spurious", "cls", (7, 0)])
def test_share_is_one_when_all_attention_is_on_spurious_patches(query):
    lay = _lay8(2)
    masks = _masks()
    spur = spurious_patches(masks, lay)
    attn = torch.rand(4, 2, 3, lay.num_tokens, lay.num_tokens)
    attn[..., 2:] *= spur[:, None, None, None, :]  # patch keys: spurious only (prefix keys keep mass)
    attn = attn / attn.sum(-1, keepdim=True)
    share = spurious_attention_share(attn, masks, lay, query=query)
    torch.testing.assert_close(share, torch.ones(2, 3), atol=1e-6, rtol=0)
    area = spurious_area_share(masks, lay)
    assert float(area) < 0.9
    torch.testing.assert_close(attention_lift(share, area), torch.full((2, 3), 1 / float(area)))


def test_share_matches_brute_force_definition():
    lay = _lay8(2)
    masks = _masks(3)
    masks[1] = False  # no spurious patch: left out of the "spurious" average
    masks[1, :4, :4] = True  # ...but one spurious patch keeps "core" and "spurious" defined for it
    masks[2] = True  # all spurious: left out of the "core" average
    attn = torch.rand(3, 2, 2, lay.num_tokens, lay.num_tokens) ** 4
    attn = attn / attn.sum(-1, keepdim=True)
    spur = spurious_patches(masks, lay)
    p = lay.num_prefix_tokens
    for query in ("core", "spurious"):
        want = torch.zeros(2, 2)
        for l in range(2):
            for h in range(2):
                per_image = []
                for b in range(3):
                    qs = [i for i in range(64) if bool(spur[b, i]) == (query == "spurious")]
                    if not qs:
                        continue
                    vals = []
                    for i in qs:
                        row = attn[b, l, h, p + i, p:]
                        vals.append(float(row[spur[b]].sum() / row.sum()))
                    per_image.append(sum(vals) / len(vals))
                want[l, h] = sum(per_image) / len(per_image)
        got = spurious_attention_share(attn, masks, lay, query=query)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        # patch-level labels give the same answer as pixel masks
        torch.testing.assert_close(spurious_attention_share(attn, spur, lay, query=query), got)
    # the area baseline averages over the same images as the share
    torch.testing.assert_close(spurious_area_share(masks, lay, query="core"), spur[:2].float().mean(1).mean())


def test_head_values_and_heads_above_chance():
    lay = _lay8(1)
    masks = _masks()
    spur = spurious_patches(masks, lay)
    attn = _uniform_over_patches(4, 3, 4, lay)
    attn[:, 1, 2, :, 1:] = spur[:, None, :] / spur.sum(1)[:, None, None]  # layer 1 head 2: spurious only
    attn[:, 2, 0, :, 1:] = (0.2 * spur[:, None, :] / spur.sum(1)[:, None, None]
                            + 0.8 * (~spur)[:, None, :] / (~spur).sum(1)[:, None, None])  # 20 % spurious
    share = spurious_attention_share(attn, masks, lay, query="core")
    area = spurious_area_share(masks, lay, query="core")
    torch.testing.assert_close(share[2, 0], torch.tensor(0.2))
    assert 0.3 < float(area) < 0.9  # so the 20 % head sits below chance
    assert heads_above_chance(share, area, margin=0.05) == [(1, 2)]
    assert heads_above_chance(share, area, margin=0.05, by="lift") == [(1, 2)]
    assert heads_above_chance(share, area, margin=-1.0)[0] == (1, 2)  # strongest first
    values = head_values(share, area)
    assert values.shape == (3, 4) and float(values[1, 2]) == pytest.approx(1.0)
    assert float(head_values(share, area, value="lift")[0, 0]) == pytest.approx(1.0, abs=1e-5)
    assert float(head_values(share, area, value="excess")[1, 2]) == pytest.approx(1 - float(area))
    with pytest.raises(ValueError, match="area"):
        head_values(share, value="lift")
    with pytest.raises(ValueError, match="value must be"):
        head_values(share, area, value="ratio")


def test_share_bad_input():
    lay = _lay8(1)
    attn = _uniform_over_patches(2, 1, 1, lay)
    masks = _masks(2)
    with pytest.raises(ValueError, match="query"):
        spurious_attention_share(attn, masks, lay, query="background")
    with pytest.raises(ValueError, match="images"):
        spurious_attention_share(attn, _masks(3), lay)
    with pytest.raises(ValueError, match="no image"):
        spurious_attention_share(attn, torch.zeros(2, 32, 32, dtype=torch.bool), lay, query="spurious")
    with pytest.raises(ValueError, match="area"):
        attention_lift(torch.ones(1, 1), 0.0)


@pytest.mark.parametrize("name", VIT_NAMES)
def test_end_to_end_on_model(models, name):
    """Real attention through the whole chain: shares are probabilities and agree with patch_attention."""
    model = models[name]
    lay = token_layout(model)
    masks = _masks(3)
    attn = attention_maps(model, _images())
    share = spurious_attention_share(attn, masks, lay, query=(5, 2))
    maps = patch_attention(attn, lay, (5, 2), renormalize=True).flatten(-2)  # (B, L, H, N)
    spur = spurious_patches(masks, lay).float()
    want = (maps * spur[:, None, None, :]).sum(-1).mean(0)
    torch.testing.assert_close(share, want, atol=1e-5, rtol=0)
    assert bool(((share >= 0) & (share <= 1)).all())
