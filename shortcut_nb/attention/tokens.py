"""Where each token of a timm ViT sits, and which patches of the grid are spurious.

Tokens are ordered ``[prefix tokens..., patch tokens in row-major order]``; a pixel mask of the
spurious region becomes a per-patch covered fraction (:func:`mask_to_patches`) and a per-patch
label (:func:`spurious_patches`). :func:`default_target_patch` picks Fig. 9's core target patch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

SizeLike = Union[int, Sequence[int]]


@dataclass(frozen=True)
class TokenLayout:
    """Where each token of a timm ViT sits.

    Tokens are ordered ``[prefix tokens..., patch tokens in row-major order]``
    (timm's ``_pos_embed``): a plain ViT has one prefix token (``cls``), a
    distilled DeiT two (``cls``, ``dist``), models with register tokens more.

    Attributes:
        num_prefix_tokens: tokens before the first patch token.
        grid: patch grid ``(gh, gw)``.
        patch_size: patch size in pixels ``(ph, pw)``.
        image_size: the model's input size ``(H, W)`` in pixels.
        prefix_names: a name per prefix token (``"cls"``, ``"dist"``, ``"reg0"``...).
    """

    num_prefix_tokens: int
    grid: tuple[int, int]
    patch_size: tuple[int, int]
    image_size: tuple[int, int]
    prefix_names: tuple[str, ...] = ()

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.num_patches

    def patch_index(self, row: int, col: int) -> int:
        """Token index of the patch at ``(row, col)`` of the patch grid."""
        gh, gw = self.grid
        if not (0 <= int(row) < gh and 0 <= int(col) < gw):
            raise ValueError(f"patch (row, col) must lie in the {gh}x{gw} grid, got ({row}, {col})")
        return self.num_prefix_tokens + int(row) * gw + int(col)

    def patch_of_pixel(self, y: float, x: float, image_size: SizeLike | None = None) -> int:
        """Token index of the patch holding pixel ``(y, x)`` of an image of size ``image_size``.

        Args:
            y, x: pixel coordinates (row, column) in an image of ``image_size``.
            image_size: ``H`` or ``(H, W)`` of the image the pixel belongs to
                (default: the model's input size); an image of another size is
                mapped onto the grid proportionally, as a resize would.

        Returns:
            The token index (prefix tokens included).
        """
        h, w = pair(image_size, "image_size") if image_size is not None else self.image_size
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"pixel (y, x) must lie in the {h}x{w} image, got ({y}, {x})")
        gh, gw = self.grid
        return self.patch_index(int(y * gh // h), int(x * gw // w))

    def prefix_index(self, name: str) -> int:
        """Token index of a prefix token by name (``"cls"``, ``"dist"``...)."""
        if name not in self.prefix_names:
            raise ValueError(f"target token {name!r} not in this model's prefix tokens {self.prefix_names}")
        return self.prefix_names.index(name)


def pair(size: SizeLike, name: str) -> tuple[int, int]:
    """``H`` or ``(H, W)`` as ``(H, W)``; ``name`` is used in the error message."""
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return (int(size[0]), int(size[1]))
    raise TypeError(f"{name} must be an int or a pair of ints (H, W), got {size!r}")


def vit_backbone(model: nn.Module) -> nn.Module:
    """The timm ViT inside a SplitModel (``.f_enc``), or the model itself (must have ``.blocks``, ``.patch_embed``)."""
    backbone = getattr(model, "f_enc", model)
    if not (hasattr(backbone, "blocks") and hasattr(backbone, "patch_embed")):
        raise TypeError(
            f"model must be a ViT (a SplitModel whose f_enc, or a timm model which, has .blocks and "
            f".patch_embed), got {type(backbone).__name__}"
        )
    return backbone


def num_layers_heads(model: nn.Module) -> tuple[int, int]:
    """``(L, H)``: the ViT's blocks and the heads of its first block's attention."""
    enc = vit_backbone(model)
    return len(enc.blocks), int(enc.blocks[0].attn.num_heads)


def token_layout(model: nn.Module) -> TokenLayout:
    """Read the token layout off a timm ViT (never assumes a 14x14 grid).

    Args:
        model: a :class:`~shortcut_nb.models.SplitModel` of kind ``"vit"`` or a
            timm ``VisionTransformer`` (DeiT included).

    Returns:
        A :class:`TokenLayout`.
    """
    enc = vit_backbone(model)
    pe = enc.patch_embed
    num_prefix = int(getattr(enc, "num_prefix_tokens", 1))
    names: list[str] = []
    if getattr(enc, "cls_token", None) is not None:
        names.append("cls")
    if getattr(enc, "dist_token", None) is not None:  # timm's VisionTransformerDistilled
        names.append("dist")
    names += [f"reg{i}" for i in range(int(getattr(enc, "num_reg_tokens", 0) or 0))]
    if len(names) != num_prefix:  # an unfamiliar layout: keep the count, drop the guessed names
        names = [f"prefix{i}" for i in range(num_prefix)]
    return TokenLayout(
        num_prefix_tokens=num_prefix,
        grid=pair(tuple(int(g) for g in pe.grid_size), "patch_embed.grid_size"),
        patch_size=pair(tuple(int(p) for p in pe.patch_size), "patch_embed.patch_size"),
        image_size=pair(tuple(int(s) for s in pe.img_size), "patch_embed.img_size"),
        prefix_names=tuple(names),
    )


# --------------------------------------------------------------------------- masks on the patch grid


def mask_to_patches(
    masks: torch.Tensor,
    layout: TokenLayout,
    image_size: SizeLike | None = None,
) -> torch.Tensor:
    """Fraction of each patch covered by the spurious mask.

    Args:
        masks: bool (B, H, W) spurious-region masks (a float mask in [0, 1] works too).
        layout: :func:`token_layout` of the model.
        image_size: the size the masks are aligned to (the model input, as
            ``load_dataset`` resizes masks like images); masks of another size
            are first resized to it (nearest). Default: the masks' own size.

    Returns:
        (B, gh*gw) float in [0, 1], patches in token (row-major) order. Each
        value is the mean of the mask over the patch's pixels (exact when the
        size divides by the grid; otherwise adaptive-pooling bins).
    """
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        raise ValueError(f"masks must be a (B, H, W) tensor, got {getattr(masks, 'shape', type(masks))}")
    m = masks.float().unsqueeze(1)
    if image_size is not None:
        size = pair(image_size, "image_size")
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="nearest")
    if m.shape[-2] < layout.grid[0] or m.shape[-1] < layout.grid[1]:
        raise ValueError(f"masks of size {tuple(m.shape[-2:])} are smaller than the {layout.grid} patch grid")
    return F.adaptive_avg_pool2d(m, layout.grid).flatten(1)


def spurious_patches(masks: torch.Tensor, layout: TokenLayout, threshold: float = 0.5) -> torch.Tensor:
    """Patches that are mostly spurious: covered fraction ``> threshold``.

    Args:
        masks: bool (B, H, W) spurious-region masks.
        layout: :func:`token_layout` of the model.
        threshold: in [0, 1); 0.5 means "more than half the patch".

    Returns:
        bool (B, gh*gw).
    """
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return mask_to_patches(masks, layout) > threshold


def patch_labels(masks: torch.Tensor, layout: TokenLayout, threshold: float) -> torch.Tensor:
    """bool (B, N) from pixel masks (B, H, W), or patch labels already of shape (B, N) passed through."""
    if isinstance(masks, torch.Tensor) and masks.ndim == 2:
        if masks.shape[1] != layout.num_patches:
            raise ValueError(f"patch-level masks must be (B, {layout.num_patches}), got {tuple(masks.shape)}")
        return masks.bool()
    return spurious_patches(masks, layout, threshold)


def default_target_patch(mask: torch.Tensor, layout: TokenLayout, *, threshold: float = 0.5) -> tuple[int, int]:
    """A core target patch: the non-spurious patch nearest the centroid of all non-spurious patches.

    The core object (bird, lesion) is what is not masked as spurious; its centroid lies on
    it for a compact object in the middle of the image (the synthetic benchmarks, most
    real images). Ties go to the first patch in row-major order. When every patch is
    spurious (an object smaller than half a patch), the least covered patch is returned.

    Args:
        mask: (H, W) bool spurious mask of one image.
        layout: the model's token layout.
        threshold: patch-labelling threshold.

    Returns:
        ``(row, col)`` in the patch grid.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) tensor, got {getattr(mask, 'shape', type(mask))}")
    cover = mask_to_patches(mask[None].bool(), layout)[0].reshape(layout.grid)
    core = (cover <= threshold).nonzero().double()
    if core.shape[0] == 0:
        flat = int(torch.argmin(cover.flatten()))
        return flat // layout.grid[1], flat % layout.grid[1]
    centre = core.mean(0)
    d = ((core - centre) ** 2).sum(1)
    r, c = core[int(torch.argmin(d))].long().tolist()  # argmin returns the first minimum: row-major tie-break
    return int(r), int(c)
