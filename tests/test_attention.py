"""Tests for shortcut_nb.attention: token layout, attention extraction, patch maps, spurious shares."""
from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from timm.utils import AttentionExtract

from shortcut_nb.attention.maps import (
    TokenLayout,
    attention_lift,
    attention_maps,
    head_table,
    heads_above_chance,
    layer_mean,
    mask_to_patches,
    patch_attention,
    spurious_area_share,
    spurious_attention_share,
    spurious_patches,
    token_layout,
    unfused_attention,
    upsample_to_image,
)
from shortcut_nb.config import seed_everything
from shortcut_nb.models import build_model

VIT_NAMES = ("vit_mini", "deit_mini")



def _peaked(model: torch.nn.Module) -> torch.nn.Module:
    """Random-init ViTs attend almost uniformly; larger q/k weights make rows peaked, so
    comparisons below would catch a swapped head, a transposed matrix or a missing scale."""
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


def _fused_flags(model: torch.nn.Module) -> list[bool]:
    return [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("name,prefix,names", [("vit_mini", 1, ("cls",)), ("deit_mini", 2, ("cls", "dist"))])
@pytest.mark.parametrize("size", [32, 48])
def test_token_layout_mini(name, prefix, names, size):
    model = build_model(name, image_size=size)
    lay = token_layout(model)
    assert lay.num_prefix_tokens == prefix == model.f_enc.num_prefix_tokens
    assert lay.prefix_names == names
    assert lay.grid == tuple(model.f_enc.patch_embed.grid_size) == (8, 8)
    assert lay.patch_size == (size // 8, size // 8)
    assert lay.image_size == (size, size)
    assert lay.num_tokens == prefix + 64
    assert lay.patch_index(0, 0) == prefix
    assert lay.patch_index(7, 7) == lay.num_tokens - 1
    assert lay.patch_index(2, 5) == prefix + 2 * 8 + 5
    p = size // 8
    # pixel (2p + p-1, 5p) lies in patch (2, 5); the same place in a twice-as-large image too
    assert lay.patch_of_pixel(2 * p + p - 1, 5 * p, size) == lay.patch_index(2, 5)
    assert lay.patch_of_pixel(2 * (2 * p + 1), 2 * 5 * p, 2 * size) == lay.patch_index(2, 5)
    assert lay.patch_of_pixel(0, 0) == prefix
    assert lay.prefix_index("cls") == 0
    with pytest.raises(ValueError, match="row, col"):
        lay.patch_index(8, 0)
    with pytest.raises(ValueError, match="pixel"):
        lay.patch_of_pixel(size, 0)


@pytest.mark.parametrize(
    "name,prefix",
    # deit_base_patch16_224 is timm's non-distilled DeiT (a plain ViT: one prefix token);
    # the distilled variant carries a second (distillation) token.
    [("vit_base_patch16_224", 1), ("deit_base_patch16_224", 1), ("deit_base_distilled_patch16_224", 2)],
)
def test_token_layout_paper_models(name, prefix):
    with torch.device("meta"):  # layout only: no memory for weights, no forward
        model = build_model(name)
    lay = token_layout(model)
    assert lay.num_prefix_tokens == prefix
    assert lay.grid == (14, 14) and lay.patch_size == (16, 16) and lay.image_size == (224, 224)
    assert lay.num_tokens == prefix + 196
    assert lay.patch_of_pixel(223, 223) == lay.num_tokens - 1


def test_token_layout_non_square_grid():
    model = VisionTransformer(img_size=(24, 40), patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    lay = token_layout(model)
    assert lay.grid == (3, 5)
    assert lay.patch_index(1, 4) == 1 + 1 * 5 + 4
    assert lay.patch_of_pixel(23, 0) == lay.patch_index(2, 0)


def test_token_layout_rejects_cnn():
    with pytest.raises(TypeError, match="ViT"):
        token_layout(build_model("resnet_mini", image_size=32))


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("name", VIT_NAMES)
def test_attention_rows_sum_to_one(models, name):
    model = models[name]
    attn = attention_maps(model, _images())
    lay = token_layout(model)
    assert attn.shape == (3, 4, 4, lay.num_tokens, lay.num_tokens)
    assert attn.dtype == torch.float32 and bool((attn >= 0).all())
    torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-5, rtol=0)
    # peaked on purpose: far from uniform, so the equality tests below mean something
    assert attn.max() > 0.5


@pytest.mark.parametrize("name", VIT_NAMES)
@pytest.mark.parametrize("method", ["qkv", "softmax"])
def test_logits_unchanged_and_state_restored(models, name, method):
    model = models[name]
    x = _images()
    before_flags = _fused_flags(model)
    assert all(before_flags)  # timm's default on this torch: fused attention
    with torch.no_grad():
        ref = model(x)
    seen = []
    handle = model.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    model.train()
    try:
        attention_maps(model, x, method=method)
    finally:
        handle.remove()
    assert model.training and all(m.training for m in model.modules())  # mode restored
    model.eval()
    if method == "qkv":  # hooks only read: the extraction's own forward is the model's, bit for bit
        assert torch.equal(seen[0], ref)
    else:  # the explicit softmax path differs from the fused kernel by rounding only
        torch.testing.assert_close(seen[0], ref, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert torch.equal(model(x), ref)  # and leaves nothing behind that changes later ones
    assert _fused_flags(model) == before_flags
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name,extract", [("vit_mini", "fx"), ("deit_mini", "hook")])
def test_matches_timm_attention_extract(models, name, extract):
    model = models[name]
    x = _images()
    attn = attention_maps(model, x)
    # Reference: timm's AttentionExtract (fx: a traced graph's softmax node; hook: attn_drop's
    # output), with fused attention switched off by hand so it does not rely on unfused_attention.
    mods = [m for m in model.modules() if hasattr(m, "fused_attn")]
    for m in mods:
        m.fused_attn = False
    try:
        with torch.no_grad():
            extractor = AttentionExtract(model.f_enc, method=extract)
            out = extractor(x)
    finally:
        for m in mods:
            m.fused_attn = True
        if extractor.hooks is not None:  # timm leaves its hooks on the model
            for handle in extractor.hooks._handles:
                handle.remove()
    suffix = "softmax" if extract == "fx" else "attn_drop"
    assert list(out) == [f"blocks.{i}.attn.{suffix}" for i in range(4)]
    ref = torch.stack(list(out.values()), dim=1)
    torch.testing.assert_close(attn, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_maps(model, x, method="softmax"), ref, atol=1e-5, rtol=0)
    # selecting layers keeps their order
    torch.testing.assert_close(attention_maps(model, x, layers=[3, 1]), ref[:, [3, 1]], atol=1e-5, rtol=0)


def test_qk_norm_is_applied():
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, qk_norm=True,
                              num_classes=0).eval()
    with torch.no_grad():
        for blk in model.blocks:  # a non-trivial q/k norm, so leaving it out would show
            blk.attn.q_norm.weight.uniform_(0.5, 4.0)
            blk.attn.k_norm.bias.normal_()
    x = _images(2)
    with unfused_attention(model), torch.no_grad():
        ref = torch.stack(list(AttentionExtract(model, method="fx")(x).values()), dim=1)
    torch.testing.assert_close(attention_maps(model, x), ref, atol=1e-5, rtol=0)


def test_fused_flags_restored_after_exception(models):
    model = models["vit_mini"]
    blocks = model.f_enc.blocks
    blocks[1].attn.fused_attn = False  # a mixed state, so "restore" cannot mean "set all True"
    try:
        flags = _fused_flags(model)
        with pytest.raises((AssertionError, ValueError)):  # the patch embedding rejects the wrong image size
            attention_maps(model, _images(2, size=40), method="softmax")
        assert _fused_flags(model) == flags
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
        with pytest.raises(RuntimeError, match="boom"):
            with unfused_attention(model):
                assert not any(_fused_flags(model))
                raise RuntimeError("boom")
        assert _fused_flags(model) == flags
    finally:
        blocks[1].attn.fused_attn = True


def test_attention_maps_bad_input(models):
    model = models["vit_mini"]
    with pytest.raises(ValueError, match="images"):
        attention_maps(model, torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="layers"):
        attention_maps(model, _images(1), layers=[4])
    with pytest.raises(ValueError, match="method"):
        attention_maps(model, _images(1), method="fx")
    with pytest.raises(TypeError, match="ViT"):
        attention_maps(build_model("resnet_mini", image_size=32), _images(1))


# --------------------------------------------------------------------------- patch maps


def test_patch_attention_picks_the_right_row():
    lay = TokenLayout(num_prefix_tokens=2, grid=(3, 5), patch_size=(4, 4), image_size=(12, 20),
                      prefix_names=("cls", "dist"))
    T = lay.num_tokens
    attn = torch.rand(2, 3, 4, T, T)
    maps = patch_attention(attn, lay, (1, 3))
    assert maps.shape == (2, 3, 4, 3, 5)
    q = 2 + 1 * 5 + 3
    for rr in range(3):
        for cc in range(5):
            assert torch.equal(maps[..., rr, cc], attn[..., q, 2 + rr * 5 + cc])
    assert torch.equal(patch_attention(attn, lay, "cls"), attn[..., 0, 2:].reshape(2, 3, 4, 3, 5))
    assert torch.equal(patch_attention(attn, lay, "dist"), attn[..., 1, 2:].reshape(2, 3, 4, 3, 5))
    renorm = patch_attention(attn, lay, (1, 3), renormalize=True)
    torch.testing.assert_close(renorm.sum((-2, -1)), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="grid"):
        patch_attention(attn, lay, (3, 0))
    with pytest.raises(ValueError, match="prefix"):
        patch_attention(attn, lay, "reg0")
    with pytest.raises(ValueError, match="tokens"):
        patch_attention(attn[..., 1:, 1:], lay, "cls")


@pytest.mark.parametrize("name", VIT_NAMES)
def test_patch_attention_on_model_one_hot(models, name):
    """A hand-built attention with one known peak per (layer, head) comes back at that grid cell."""
    lay = token_layout(models[name])
    B, L, H, T = 1, 2, 3, lay.num_tokens
    attn = torch.zeros(B, L, H, T, T)
    q = lay.patch_index(4, 6)
    for l in range(L):
        for h in range(H):
            attn[0, l, h, q, lay.patch_index(l, h + 2)] = 1.0
    maps = patch_attention(attn, lay, (4, 6))
    for l in range(L):
        for h in range(H):
            peak = divmod(int(maps[0, l, h].argmax()), lay.grid[1])
            assert peak == (l, h + 2)
    torch.testing.assert_close(layer_mean(maps), maps.mean(2))
    assert layer_mean(maps).shape == (B, L, *lay.grid)


def test_upsample_to_image_nearest_blocks():
    maps = torch.arange(6.0).reshape(1, 2, 3)
    up = upsample_to_image(maps, (8, 12))
    assert up.shape == (1, 8, 12)
    for r in range(2):
        for c in range(3):
            assert bool((up[0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] == maps[0, r, c]).all())
    smooth = upsample_to_image(maps, 16, mode="bilinear")
    assert smooth.shape == (1, 16, 16) and smooth.min() >= 0 and smooth.max() <= 5


# --------------------------------------------------------------------------- masks and shares


def _lay8(prefix: int = 1) -> TokenLayout:
    return TokenLayout(num_prefix_tokens=prefix, grid=(8, 8), patch_size=(4, 4), image_size=(32, 32),
                       prefix_names=("cls", "dist")[:prefix])


def test_mask_to_patches_hand_made():
    lay = _lay8()
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 0:4, 0:4] = True  # patch (0, 0): full
    mask[0, 0:2, 4:8] = True  # patch (0, 1): top half
    mask[0, 5, 1] = True  # patch (1, 0): one pixel of 16
    mask[0, 28:32, 28:32] = True  # patch (7, 7): full
    frac = mask_to_patches(mask, lay)
    expected = torch.zeros(1, 64)
    expected[0, 0], expected[0, 1], expected[0, 8], expected[0, 63] = 1.0, 0.5, 1 / 16, 1.0
    torch.testing.assert_close(frac, expected)
    spur = spurious_patches(mask, lay)  # strictly more than half
    assert spur.dtype == torch.bool and spur[0].nonzero().flatten().tolist() == [0, 63]
    assert spurious_patches(mask, lay, threshold=0.0)[0].nonzero().flatten().tolist() == [0, 1, 8, 63]
    # the same mask at twice the resolution, resized to the model's input first
    big = mask.repeat_interleave(2, 1).repeat_interleave(2, 2)
    torch.testing.assert_close(mask_to_patches(big, lay, image_size=32), expected)
    torch.testing.assert_close(mask_to_patches(big, lay), expected)
    with pytest.raises(ValueError, match="masks"):
        mask_to_patches(mask[0], lay)
    with pytest.raises(ValueError, match="threshold"):
        spurious_patches(mask, lay, threshold=1.0)


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


def test_head_table_and_heads_above_chance():
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
    table = head_table(share, area)
    assert table.shape == (3, 4) and table.index.name == "layer" and table.columns.name == "head"
    assert table.loc[1, 2] == pytest.approx(1.0) and table.attrs["area"] == pytest.approx(float(area))
    assert head_table(share, area, value="lift").loc[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert head_table(share, area, value="excess").loc[1, 2] == pytest.approx(1 - float(area))
    with pytest.raises(ValueError, match="area"):
        head_table(share, value="lift")


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
