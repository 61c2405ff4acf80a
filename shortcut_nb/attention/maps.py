"""Attention matrices of a timm ViT per layer and head, and one query token's row over the patch grid.

The paper (§6.2, Fig. 9) takes, for one target patch, the row of every layer's attention matrix
(averaged over heads, Fig. 9 top, or per head, Fig. 9 bottom) and shows it as a heatmap over the
patch grid. :func:`attention_maps` reads the matrices off a forward pass without changing the
model's outputs (plain ViT: one prefix token; distilled DeiT: two); :func:`patch_attention`,
:func:`layer_mean` and :func:`upsample_to_image` turn them into maps. Layer and head indices are
0-based (the paper counts from 1).

Typical use::

    attn = attention_maps(model, images)               # (B, L, H, T, T)
    layout = token_layout(model)
    maps = patch_attention(attn, layout, (3, 4))       # (B, L, H, gh, gw)
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..config import model_device
from .tokens import SizeLike, TokenLayout, pair, vit_backbone

Target = Union[str, tuple[int, int]]


# --------------------------------------------------------------------------- extraction


def _attention_modules(enc: nn.Module) -> list[nn.Module]:
    mods = [blk.attn for blk in enc.blocks]
    for i, attn in enumerate(mods):
        missing = [a for a in ("qkv", "num_heads", "scale", "q_norm", "k_norm") if getattr(attn, a, None) is None]
        if missing:
            raise TypeError(
                f"blocks[{i}].attn ({type(attn).__name__}) is not a timm qkv attention (missing {missing}); "
                "only standard timm ViT/DeiT attention is supported"
            )
    return mods


@contextlib.contextmanager
def unfused_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Switch timm's fused attention (``F.scaled_dot_product_attention``) off inside the block.

    The explicit softmax path then runs, so its attention matrix can be hooked
    (e.g. by ``timm.utils.AttentionExtract``). Every module's ``fused_attn``
    flag is restored on exit, also when the block raises.
    """
    saved = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    try:
        for m, _ in saved:
            m.fused_attn = False
        yield model
    finally:
        for m, flag in saved:
            m.fused_attn = flag


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the extraction; each module's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _softmax_from_qkv(attn: nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) per head, exactly as timm's non-fused path computes it.

    Args:
        attn: a timm ``Attention`` module.
        qkv: output of ``attn.qkv``, shape (B, T, 3 * H * head_dim).

    Returns:
        (B, H, T, T).
    """
    B, T, _ = qkv.shape
    H = attn.num_heads
    head_dim = qkv.shape[-1] // (3 * H)
    q, k, _ = qkv.reshape(B, T, 3, H, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    # Same order of operations as timm's explicit path (scale q first) so the two agree to rounding.
    return ((q * attn.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1)


def attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    method: Literal["qkv", "softmax"] = "qkv",
) -> torch.Tensor:
    """Attention matrices of every block and head, without changing the model's outputs.

    ``method="qkv"`` (default) hooks each block's ``attn.qkv`` and recomputes
    ``softmax(q kᵀ · scale)`` (with ``q_norm``/``k_norm``) from it, so the model
    keeps its fused attention and its forward is untouched. ``method="softmax"``
    switches fused attention off for the extraction only (flags restored after,
    even on error) and reads the softmax where timm applies ``attn_drop``.
    Both run in eval mode under ``torch.no_grad`` and restore the model's mode.
    The attention returned is the pre-dropout softmax.

    Args:
        model: a ViT :class:`~shortcut_nb.models.SplitModel` or timm ViT/DeiT.
        images: (B, 3, H, W), moved to the model's device.
        layers: block indices to keep (default: all), in the order given.

    Returns:
        (B, L, H, T, T) float32 on the model's device; ``[b, l, h, i, :]`` is
        query token i's attention over all T tokens (rows sum to 1).
    """
    if method not in ("qkv", "softmax"):
        raise ValueError(f"method must be 'qkv' or 'softmax', got {method!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {getattr(images, 'shape', type(images))}")
    enc = vit_backbone(model)
    mods = _attention_modules(enc)
    n = len(mods)
    keep = list(range(n)) if layers is None else [int(i) for i in layers]
    if not keep or any(not -n <= i < n for i in keep):
        raise ValueError(f"layers must be indices into the model's {n} blocks, got {layers!r}")
    keep = [i % n for i in keep]
    device = model_device(model)
    captured: dict[int, torch.Tensor] = {}
    handles = []

    def qkv_hook(i: int):
        def hook(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            captured[i] = _softmax_from_qkv(mods[i], out)  # overwrite: a re-run block fires again

        return hook

    def softmax_hook(i: int):
        def hook(_mod: nn.Module, inp: tuple) -> None:
            captured[i] = inp[0].float()

        return hook

    with contextlib.ExitStack() as stack:
        stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        if method == "softmax":
            stack.enter_context(unfused_attention(model))
        try:
            for i in set(keep):
                if method == "qkv":
                    handles.append(mods[i].qkv.register_forward_hook(qkv_hook(i)))
                else:
                    handles.append(mods[i].attn_drop.register_forward_pre_hook(softmax_hook(i)))
            model(images.to(device))
        finally:
            for h in handles:
                h.remove()
    missing = [i for i in keep if i not in captured]
    if missing:
        raise RuntimeError(f"attention of blocks {missing} was not seen during the forward pass ({method=})")
    return torch.stack([captured[i] for i in keep], dim=1)


# --------------------------------------------------------------------------- maps


def check_attn(attn: torch.Tensor, layout: TokenLayout) -> None:
    """Raise unless ``attn`` is (B, L, H, T, T) with the layout's T tokens."""
    if not isinstance(attn, torch.Tensor) or attn.ndim != 5 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attn must be a (B, L, H, T, T) tensor, got {getattr(attn, 'shape', type(attn))}")
    if attn.shape[-1] != layout.num_tokens:
        raise ValueError(
            f"attn has {attn.shape[-1]} tokens but the layout expects {layout.num_tokens} "
            f"({layout.num_prefix_tokens} prefix + {layout.grid[0]}x{layout.grid[1]} patches)"
        )


def query_index(layout: TokenLayout, target: Target) -> int:
    """Token index of a ``(row, col)`` patch or a prefix token name (``"cls"``, ``"dist"``)."""
    if isinstance(target, str):
        return layout.prefix_index(target)
    if isinstance(target, Sequence) and len(target) == 2:
        return layout.patch_index(*target)
    raise ValueError(f"target_patch must be a (row, col) pair or a prefix token name such as 'cls', got {target!r}")


def patch_attention(
    attn: torch.Tensor,
    layout: TokenLayout,
    target_patch: Target,
    *,
    renormalize: bool = False,
) -> torch.Tensor:
    """Fig. 9: one query token's attention over the patch grid, per layer and head.

    Args:
        attn: (B, L, H, T, T) from :func:`attention_maps`.
        layout: :func:`token_layout` of the model.
        target_patch: ``(row, col)`` in the patch grid, or a prefix token name
            (``"cls"``; ``"dist"`` for distilled DeiT).
        renormalize: rescale each map to sum to 1 over the patches (the prefix
            tokens' share removed); off by default, so maps keep raw weights.

    Returns:
        (B, L, H, gh, gw): ``attn[b, l, h, q, prefix:]`` reshaped to the grid.
    """
    check_attn(attn, layout)
    q = query_index(layout, target_patch)
    row = attn[..., q, layout.num_prefix_tokens:]
    if renormalize:
        row = row / row.sum(-1, keepdim=True).clamp_min(torch.finfo(row.dtype).tiny)
    return row.reshape(*row.shape[:-1], *layout.grid)


def layer_mean(maps: torch.Tensor) -> torch.Tensor:
    """Mean over heads per layer (Fig. 9 top): (B, L, H, ...) -> (B, L, ...)."""
    if maps.ndim < 3:
        raise ValueError(f"maps must have shape (B, L, H, ...), got {tuple(maps.shape)}")
    return maps.mean(dim=2)


def upsample_to_image(
    maps: torch.Tensor,
    image_size: SizeLike,
    *,
    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest",
) -> torch.Tensor:
    """Resize patch-grid maps to image pixels for overlays.

    Args:
        maps: (..., gh, gw).
        image_size: ``H`` or ``(H, W)``.
        mode: ``"nearest"`` (default) shows each patch as a block, without
            inventing detail below the patch size; ``"bilinear"`` is smoother.

    Returns:
        (..., H, W), same dtype and device.
    """
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"mode must be 'nearest', 'bilinear' or 'bicubic', got {mode!r}")
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., gh, gw), got {tuple(maps.shape)}")
    size = pair(image_size, "image_size")
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(flat, size=size, mode=mode, **kwargs)
    return out.reshape(*lead, *size).to(maps.dtype)
