"""shortcut_nb.attention.maps: attention extraction (qkv hook and unfused softmax) and patch maps."""
from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from timm.utils import AttentionExtract

from shortcut_nb.attention import (
    TokenLayout,
    attention_maps,
    layer_mean,
    patch_attention,
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
