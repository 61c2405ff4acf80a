"""Raw Grad-CAM maps at the target layer's resolution, by four exact shortcuts, and the choice between them.

pytorch-grad-cam runs one forward and backward pass per neuron. Its map of neuron ``i`` is
``Σ_c w_c A_c`` with ``w_c`` the spatial mean of ``∂z_i/∂A_c`` (ReLU and scaling follow
in :func:`~.cams.gradcam_scale`). Instead, four exact shortcuts:

* ``"analytic"``: if ``z`` is the global average pool of the target layer's output (a
  CNN's last block), ``∂z_i/∂A`` is ``1/(hw)`` on channel ``i`` and 0 elsewhere, so
  neuron ``i``'s map is ``ReLU(A_i)/(hw)``: every neuron from one forward pass.
  Checked on the actual forward (:func:`~.layers._probe`): the pool must read the very
  tensor the layer returned, unchanged, and z must be that pool's output.
* ``"forward"``: Grad-CAM needs only the spatial mean of the gradient,
  ``w[i, c] = (1/hw) Σ_p ∂z_i/∂A_{c,p}``, the derivative of z along the tangent "ones
  on channel c". One JVP per target channel gives the weights of all d neurons;
  tangents are batched with ``torch.func.vmap``.
* ``"reverse"``: per image, k copies of the target output run through the rest of the
  network as one batch and one backward pass gives k neurons' gradients (falls back
  to ``autograd.grad(..., is_grads_batched=True)`` when the model cannot broadcast).

* ``"class_token"``: a timm ViT at its last block's ``norm1``, z its class token: the
  class token's path alone, forward mode along "the same shift on every patch token"
  (:mod:`.class_token`), every neuron for a few hundred small JVPs.

``"auto"`` takes ``"analytic"`` when it applies; for ViT tokens ``"class_token"`` when it
applies, else ``"reverse"`` (fused attention has no forward-mode derivative); else ``"forward"`` unless fewer than
a third as many neurons as target channels are asked for (a tangent pass costs about
a third of a copy's forward and backward). The cost of the last two is that of the
network after the target layer, times C (forward) or K (reverse): cheap for late
layers, close to a full pass per neuron for early ones.
"""
from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from .class_token import NotApplicable, class_token_weights
from .layers import (NeuronIndex, _encoder, _Geometry, _geometry, _neuron_index, _Probe, _probe, _same_z,
                     _single_output, _to_map)

Method = Literal["auto", "analytic", "forward", "reverse", "class_token"]
METHODS: tuple[Method, ...] = ("auto", "analytic", "forward", "reverse", "class_token")


# Element budgets that size the automatic chunks (float32 elements): the forward-mode
# tangents of one pass, and the replicated target-layer copies of one reverse pass
# (their autograd graph is several times larger). About 128 MiB and 32 MiB.
_TANGENT_ELEMENTS = 2**25
_COPY_ELEMENTS = 2**23
# One forward-mode tangent pass costs about a third of one replicated forward+backward
# (resnet18 layer3, 2 CPU cores: 0.13 s vs 0.30 s per image and vector at 64 px), so
# forward mode wins unless far fewer neurons than target channels are asked for.
_FORWARD_COST_RATIO = 3


def _analytic_raw(act: Tensor, idx: Tensor) -> Tensor:
    """(B, C, h, w) pooled-layer activations -> raw Grad-CAM (B, K, h, w) = A_i * ∂z_i/∂A."""
    h, w = act.shape[-2:]
    # Keep the 1/(hw) factor (the true gradient) so the 1e-7 in the normalisation acts as in the reference.
    return act[:, idx] * (1.0 / (h * w))


def _forward_weights(enc: nn.Module, layer: nn.Module, x: Tensor, act: Tensor, geo: _Geometry,
                     chunk_size: int | None) -> Tensor:
    """Grad-CAM weights of all d neurons, (B, d, C), from one JVP per target-layer channel.

    The tangent "ones on channel c at every patch position" gives Σ_p ∂z/∂A_{c,p};
    dividing by the number of positions gives pytorch-grad-cam's spatial mean. The
    tangents of a chunk are batched with ``torch.func.vmap``; the hook swaps the target
    output for the (dual) primal, so the layers before it run once per chunk, without
    tangents.
    """
    C = act.shape[-1] if geo.tokens else act.shape[1]
    k = chunk_size or max(1, min(C, _TANGENT_ELEMENTS // act.numel()))
    holder: dict[str, Tensor] = {}

    def replace(mod: nn.Module, inp: Any, out: Any) -> Tensor:
        return holder["a"].clone()  # a copy for in-place ops downstream; the primal stays intact

    def z_of(a: Tensor) -> Tensor:
        holder["a"] = a
        return enc(x)

    cols = []
    handle = layer.register_forward_hook(replace)
    try:
        with torch.no_grad():
            for start in range(0, C, k):
                chans = torch.arange(start, min(start + k, C), device=act.device)
                rows = torch.arange(len(chans), device=act.device)
                tangents = torch.zeros(len(chans), *act.shape, dtype=act.dtype, device=act.device)
                if geo.tokens:
                    tangents[rows, :, geo.prefix:, chans] = 1.0  # patch tokens only, as the reshape drops the rest
                else:
                    tangents[rows, :, chans] = 1.0
                with warnings.catch_warnings():
                    # torch's first jvp loads decompositions with torch.jit.script, which warns
                    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
                    cols.append(vmap(lambda t: jvp(z_of, (act,), (t,))[1])(tangents))  # (k, B, d)
                del tangents
    finally:
        handle.remove()
        holder.clear()
    sums = torch.cat(cols, dim=0)  # (C, B, d)
    return sums.permute(1, 2, 0) / (geo.h * geo.w)


class _NoBroadcast(Exception):
    """The replicated forward did not give one z per copy: fall back to vmap."""


def _replicate_reverse_raw(enc: nn.Module, layer: nn.Module, x: Tensor, idx: Tensor, geo: _Geometry,
                           k: int, probe: _Probe) -> Tensor:
    """Raw Grad-CAM (B, K, h, w): per image, ``k`` copies of the target output and one backward pass.

    Each image runs alone (batch 1) up to the target layer, without a graph; the hook
    returns ``k`` copies of its output as one leaf, so everything downstream runs on a
    batch of ``k``. Tensors that bypass the target layer (a residual stream, a
    shortcut) keep batch 1 and broadcast, which equals copying them. Copy ``r`` is
    seeded with the one-hot of neuron ``idx[r]``, so one backward pass gives ``k``
    neurons' gradients as one dense batch. (``is_grads_batched`` vmaps the backward,
    and layer norm, GELU and attention backward have no batching rule there: per-sample
    loops, 2-3x slower on ViTs.)

    Raises:
        _NoBroadcast: the model did not give k equal copies of the image's z (an op could
            not broadcast batch 1, or mixed the copies).
    """
    B, d = x.shape[0], probe.z.shape[1]
    rec: dict[str, Any] = {}

    def leaf(mod: nn.Module, inp: Any, out: Any) -> Tensor:
        out = _single_output(out)
        a0 = probe.act[rec["j"]:rec["j"] + 1]  # the batched forward's values, as pytorch-grad-cam sees them
        if out.shape != a0.shape:
            raise _NoBroadcast(f"target output {tuple(out.shape)} differs from the batched {tuple(a0.shape)}")
        torch.set_grad_enabled(True)  # graph from the target layer on only; the prefix ran under no_grad
        a = a0.expand(rec["k"], *a0.shape[1:]).clone().requires_grad_(True)
        rec["a"] = a
        return a.clone()  # not the leaf itself: downstream in-place ops (ReLU(inplace=True)) must work

    out_maps = torch.empty(B, len(idx), geo.h, geo.w, dtype=torch.float32, device=x.device)
    handle = layer.register_forward_hook(leaf)
    try:
        for j in range(B):
            amap = _to_map(probe.act[j:j + 1], geo)[0]  # (C, h, w)
            for start in range(0, len(idx), k):
                sel = idx[start:start + k]
                rec["j"], rec["k"] = j, len(sel)
                try:
                    with torch.no_grad():  # also restores the grad mode the hook switched on
                        z = enc(x[j:j + 1])
                except RuntimeError as err:  # e.g. an in-place op or a cat that cannot broadcast batch 1
                    raise _NoBroadcast(str(err)) from err
                if not isinstance(z, Tensor) or z.shape != (len(sel), d) or not z.requires_grad:
                    raise _NoBroadcast(f"z has shape {getattr(z, 'shape', None)}")
                if start == 0 and not _same_z(z.detach(), probe.z[j]):
                    raise _NoBroadcast("the copies' z differ from the image's z")
                grad_out = torch.zeros_like(z)
                grad_out[torch.arange(len(sel), device=z.device), sel] = 1.0  # ClassifierOutputTarget(idx[r])
                (g,) = torch.autograd.grad(z, rec["a"], grad_out)
                weights = _to_map(g, geo).mean((-2, -1))  # (k, C): Grad-CAM channel weights
                out_maps[j, start:start + len(sel)] = torch.einsum("kc,chw->khw", weights, amap).float()
                del z, g, grad_out
                rec.pop("a", None)
    finally:
        handle.remove()
        rec.clear()
    return out_maps


def _vmap_reverse_raw(enc: nn.Module, layer: nn.Module, x: Tensor, idx: Tensor, geo: _Geometry,
                      k: int) -> Tensor:
    """Raw Grad-CAM (B, K, h, w) from vmapped vector-Jacobian products (``is_grads_batched``).

    The fallback of :func:`_replicate_reverse_raw`: works for any model, slower where
    backward ops lack vmap batching rules.
    """
    rec: dict[str, Tensor] = {}

    def leaf(mod: nn.Module, inp: Any, out: Any) -> Tensor:
        torch.set_grad_enabled(True)  # graph from the target layer on only; the prefix ran under no_grad
        a = _single_output(out).detach().clone().requires_grad_(True)
        rec["a"] = a
        return a.clone()  # not the leaf itself: downstream in-place ops (ReLU(inplace=True)) must work

    handle = layer.register_forward_hook(leaf)
    try:
        with torch.no_grad():  # also restores the grad mode the hook switched on
            z = enc(x)
    finally:
        handle.remove()
    a = rec.pop("a")
    amap = _to_map(a.detach(), geo)  # (B, C, h, w)
    out = []
    for start in range(0, len(idx), k):
        sel = idx[start:start + k]
        grad_out = torch.zeros(len(sel), *z.shape, dtype=z.dtype, device=z.device)
        grad_out[torch.arange(len(sel), device=z.device), :, sel] = 1.0  # ClassifierOutputTarget, summed over samples
        (g,) = torch.autograd.grad(z, a, grad_out, retain_graph=True, is_grads_batched=True)
        weights = _to_map(g, geo).mean((-2, -1))  # (k, B, C)
        out.append(torch.einsum("kbc,bchw->bkhw", weights, amap).float())
        del g
    return torch.cat(out, dim=1)


def _choose_method(method: Method, probe: _Probe, geo: _Geometry, n_neurons: int) -> Method:
    if method == "analytic" and not probe.pooled:
        raise ValueError("method='analytic' needs z = global average pool of the target layer's output "
                         "(a CNN's last block); use method='auto'")
    if method != "auto":
        return method
    if probe.pooled:
        return "analytic"
    if geo.tokens:
        return "class_token"  # tried first; else reverse (fused attention has no forward-mode derivative)
    channels = probe.act.shape[1]
    return "forward" if channels < _FORWARD_COST_RATIO * n_neurons else "reverse"


def _raw_cams(model: nn.Module, layer: nn.Module, x: Tensor, neurons: NeuronIndex, *, method: Method,
              chunk_size: int | None) -> tuple[Tensor, Method]:
    """Raw (pre-ReLU, pre-normalisation) Grad-CAM maps (B, K, h, w) at the target layer's resolution.

    Returns:
        the maps and the method used.
    """
    enc = _encoder(model)
    probe = _probe(enc, layer, x)
    geo = _geometry(enc, probe.act)
    d = probe.z.shape[1]
    idx = _neuron_index(neurons, d, x.device)
    requested, method = method, _choose_method(method, probe, geo, len(idx))
    if method == "class_token":
        try:
            weights = class_token_weights(enc, layer, x, probe, geo, chunk_size)  # (B, d, C)
        except NotApplicable as err:
            if requested == "class_token":
                raise ValueError(f"method='class_token' does not apply here: {err}; use method='auto'") from err
            method = "reverse"
        else:
            return torch.einsum("bkc,bchw->bkhw", weights[:, idx], _to_map(probe.act, geo)).float(), method
    if method == "analytic":
        return _analytic_raw(probe.act, idx).float(), method
    if method == "forward":
        try:
            weights = _forward_weights(enc, layer, x, probe.act, geo, chunk_size)  # (B, d, C)
        except NotImplementedError:
            method = "reverse"  # an op without a forward-mode derivative (e.g. fused attention on CPU)
        else:
            amap = _to_map(probe.act, geo)
            return torch.einsum("bkc,bchw->bkhw", weights[:, idx], amap).float(), method
    if method == "reverse":
        per_image = probe.act[0].numel()
        try:
            k = chunk_size or max(1, _COPY_ELEMENTS // per_image)
            return _replicate_reverse_raw(enc, layer, x, idx, geo, k, probe), method
        except _NoBroadcast:
            k = chunk_size or max(1, _COPY_ELEMENTS // (per_image * x.shape[0]))
            return _vmap_reverse_raw(enc, layer, x, idx, geo, k), method
    raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")

