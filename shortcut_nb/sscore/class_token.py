"""Exact Grad-CAM weights of a ViT's penultimate neurons at the last block's ``norm1``, from the class token alone.

When ``z`` is the class token after the last block (timm's ``global_pool="token"``) and the target is that
block's ``norm1`` output ``A`` (B, T, C), ``A`` reaches ``z`` only through the last attention's keys and values
as the class token's query reads them: the other tokens' outputs of the last block are never used. Grad-CAM
needs only the mean over patch positions of ``∂z/∂A``, which is the derivative along the tangent "the same
vector ``u`` added to every patch token". Keys and values are linear in ``A``, so that shift moves them by
``W_k u`` and ``W_v u`` on the patch rows, and ::

    w[i, c] = (1/hw) ∂/∂u_c  z_i( class-token path with K + 1_patch·W_k u, V + 1_patch·W_v u )  at u = 0

is one forward-mode JVP per channel ``c`` through one token's attention row, MLP and norms, instead of the
network after the layer per neuron (:mod:`.gradients`' reverse mode): about 500× fewer operations for
ViT-B/16 at 224 px.

The path re-states timm's ``Block`` and ``Attention`` forward for the class token, so it applies only to
those exact classes (checked), and every call checks that it reproduces the model's own ``z`` before its
derivative is used; otherwise :class:`NotApplicable` is raised and ``"auto"`` takes the reverse path.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block
from torch import Tensor, nn
from torch.func import jvp, vmap

from .layers import _Geometry, _Probe, _same_z

# Float32 elements of the per-tangent attention rows (B, heads, 1, T) x dim one batched JVP holds (about 128 MiB).
_TANGENT_ELEMENTS = 2**25


class NotApplicable(Exception):
    """The model is not a timm ViT whose class token after the target's block is z: no class-token shortcut."""


def _last_block(enc: nn.Module, layer: nn.Module, geo: _Geometry) -> Block:
    """The block whose ``norm1`` is ``layer``, if the shortcut's conditions hold (else :class:`NotApplicable`)."""
    blocks = getattr(enc, "blocks", None)
    if not geo.tokens or not isinstance(blocks, nn.Sequential) or len(blocks) == 0:
        raise NotApplicable("the target layer does not output ViT tokens of a timm block stack")
    block = blocks[-1]
    if getattr(block, "norm1", None) is not layer:
        raise NotApplicable("the target layer is not the last block's norm1")
    if type(block).forward is not Block.forward or type(block.attn).forward is not Attention.forward:
        raise NotApplicable(f"the last block is {type(block).__name__} / {type(block.attn).__name__}, "
                            "not timm's Block / Attention")
    if getattr(enc, "global_pool", None) != "token" or getattr(enc, "attn_pool", None) is not None:
        raise NotApplicable("z is not the class token (global_pool must be 'token', no attention pool)")
    if getattr(enc, "cls_token", None) is None or geo.prefix < 1:
        raise NotApplicable("the model has no class token")
    if not isinstance(block.attn.k_norm, nn.Identity):
        raise NotApplicable("the keys are normalised (qk_norm): a shift of the tokens does not shift them")
    return block


def _block_input(enc: nn.Module, block: nn.Module, x: Tensor) -> Tensor:
    """The residual stream entering ``block`` (B, T, C), from one no-grad forward."""
    rec: dict[str, Tensor] = {}

    def keep(mod: nn.Module, args: tuple[Any, ...]) -> None:
        rec["x"] = args[0].detach()

    handle = block.register_forward_pre_hook(keep)
    try:
        with torch.no_grad():
            enc(x)
    finally:
        handle.remove()
    return rec["x"]


def _class_token_z(enc: nn.Module, block: Block, stream: Tensor, act: Tensor, qkv: Tensor, patch: Tensor,
                   u: Tensor) -> Tensor:
    """z (B, d) with every patch row of ``act`` shifted by ``u`` (B, C), computed for the class token only.

    ``stream``: the block's input (B, T, C); ``act``: its norm1 output; ``qkv``: ``attn.qkv(act)`` (B, T, 3D);
    ``patch``: (T,) ones on patch rows. Mirrors ``Block.forward`` / ``Attention.forward`` (eval mode), with the
    shift's effect on keys and values written out (``k_norm`` is the identity): the shifted scores are
    ``q·K^T + patch·(q·W_k u)`` and the output ``a V + (Σ_patch a) W_v u``, never a (T, 3D) tensor per tangent.
    """
    attn = block.attn
    B, T, _ = act.shape
    heads, dim = attn.num_heads, attn.head_dim
    q, k, v = qkv.reshape(B, T, 3, heads, dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, T, dim)
    q = attn.q_norm(q[:, :, :1]) * attn.scale  # the class token's query row: u (on patches) leaves it unchanged
    _, dk, dv = F.linear(u, attn.qkv.weight).reshape(B, 3, heads, 1, dim).unbind(1)  # linear in act: no bias
    scores = q @ k.transpose(-2, -1) + patch * (q * dk).sum(-1, keepdim=True)  # (B, heads, 1, T)
    weights = attn.attn_drop(scores.softmax(dim=-1))
    out = weights @ v + (weights * patch).sum(-1, keepdim=True) * dv
    out = attn.norm(out.transpose(1, 2).reshape(B, 1, heads * dim))
    if attn.gate is not None:
        out = out * attn.gate(act[:, :1]).sigmoid()  # the class token's gate: u leaves it unchanged
    out = attn.proj_drop(attn.proj(out))
    cls = stream[:, :1] + block.drop_path1(block.ls1(out))
    cls = cls + block.drop_path2(block.ls2(block.mlp(block.norm2(cls))))
    return enc.forward_head(enc.norm(cls))


def class_token_weights(enc: nn.Module, layer: nn.Module, x: Tensor, probe: _Probe, geo: _Geometry,
                        chunk_size: int | None) -> Tensor:
    """Grad-CAM weights of all d neurons at the last block's norm1, (B, d, C), by the class-token shortcut.

    Raises:
        NotApplicable: the model's structure does not allow it, or the class-token path does not reproduce
            the model's own z (then nothing of it is used).
    """
    block = _last_block(enc, layer, geo)
    act = probe.act
    B, T, C = act.shape
    stream = _block_input(enc, block, x)
    patch = torch.zeros(T, dtype=act.dtype, device=act.device)
    patch[geo.prefix:] = 1.0
    with torch.no_grad():
        if not torch.allclose(block.norm1(stream), act, rtol=1e-5, atol=1e-6):
            raise NotApplicable("the last block's norm1 output is not norm1 of the block's input")
        qkv = block.attn.qkv(act)

        def z_of(u: Tensor) -> Tensor:
            return _class_token_z(enc, block, stream, act, qkv, patch, u)

        u0 = torch.zeros(B, C, dtype=act.dtype, device=act.device)
        z = z_of(u0)
        if z.shape != probe.z.shape or not _same_z(z, probe.z):
            raise NotApplicable("the class-token path does not reproduce the model's z")
        k = chunk_size or max(1, min(C, _TANGENT_ELEMENTS // (qkv.numel() // 3)))
        cols = []
        for start in range(0, C, k):
            chans = torch.arange(start, min(start + k, C), device=act.device)
            tangents = torch.zeros(len(chans), B, C, dtype=act.dtype, device=act.device)
            tangents[torch.arange(len(chans), device=act.device), :, chans] = 1.0
            with warnings.catch_warnings():
                # torch's first jvp loads decompositions with torch.jit.script, which warns
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
                cols.append(vmap(lambda t: jvp(z_of, (u0,), (t,))[1])(tangents))  # (k, B, d)
    sums = torch.cat(cols, dim=0)  # (C, B, d): Σ over patches of ∂z/∂A[:, p, c]
    return sums.permute(1, 2, 0) / (geo.h * geo.w)
