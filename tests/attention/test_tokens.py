"""shortcut_nb.attention.tokens: token layout of timm ViTs, masks on the patch grid."""
from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from shortcut_nb.attention import (
    TokenLayout,
    default_target_patch,
    mask_to_patches,
    num_layers_heads,
    spurious_patches,
    token_layout,
)
from shortcut_nb.models import build_model


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


# --------------------------------------------------------------------------- masks


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


def test_default_target_patch_is_the_core_patch_nearest_the_core_centroid():
    layout = TokenLayout(num_prefix_tokens=1, grid=(8, 8), patch_size=(2, 2), image_size=(16, 16),
                         prefix_names=("cls",))
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, :8] = True  # left half spurious: core centroid (3.5, 5.5)
    assert default_target_patch(mask, layout) == (3, 5)
    bird = torch.ones(16, 16, dtype=torch.bool)
    bird[10:14, 2:6] = False  # a small core object: patches rows 5-6, cols 1-2
    assert default_target_patch(bird, layout) == (5, 1)
    tiny = torch.ones(16, 16, dtype=torch.bool)
    tiny[6, 9] = False  # the core object is smaller than half a patch: the least covered patch
    assert default_target_patch(tiny, layout) == (3, 4)
    with pytest.raises(ValueError, match="mask must be"):
        default_target_patch(torch.ones(1, 16, 16, dtype=torch.bool), layout)


def test_num_layers_heads_reads_the_vit():
    assert num_layers_heads(build_model("vit_mini", image_size=16)) == (4, 4)
    with pytest.raises(TypeError, match="ViT"):
        num_layers_heads(build_model("resnet_mini", image_size=16))
