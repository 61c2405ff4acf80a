"""Neuron spurious score (s-score, paper §3.3): Grad-CAM of penultimate neurons against spurious masks.

For a model ``f = h ∘ f_enc`` with penultimate vector ``z = f_enc(x) ∈ R^d``, the
Grad-CAM heatmap of neuron ``i`` on image ``x_j`` is binarised at a threshold
``alpha`` into ``b_j^i`` and compared with the spurious-region mask ``m_j``::

    s^i = 1/N Σ_j |b_j^i ⊙ m_j| / |b_j^i|          (0 for a sample where |b_j^i| = 0)

with ``b = cam >= alpha`` (inclusive, alpha rounded to float32; see :func:`binarize`).
An s-score is a precision, so it has a chance level, the mean mask area
(:func:`mask_area`, :func:`lift`): show it next to every s-score figure.

Heatmaps are pytorch-grad-cam's ``GradCAM(model=<x -> z>, target_layers=[layer],
reshape_transform=...)`` with target ``ClassifierOutputTarget(i)``: per sample
``cam = ReLU(Σ_c w_c A_c)``, ``w_c`` the spatial mean of ``∂z_i/∂A_c``; per map
``x - min`` then ``/ (1e-7 + max)``; ``cv2.resize`` (``INTER_LINEAR``) to the input size;
``x - min`` and ``/ (1e-7 + max)`` again (its layer aggregation). All of it runs in
torch on the model's device and agrees with pytorch-grad-cam to ~1e-6 (float
rounding, so a pixel within that of alpha may binarise differently).

Instead of one forward and backward pass per neuron, three exact shortcuts:

* ``"analytic"``: if ``z`` is the global average pool of the target layer's output (a
  CNN's last block), ``∂z_i/∂A`` is ``1/(hw)`` on channel ``i`` and 0 elsewhere, so
  neuron ``i``'s map is ``ReLU(A_i)/(hw)``: every neuron from one forward pass.
  Checked on the actual forward (:func:`_probe`): the pool must read the very tensor
  the layer returned, unchanged, and z must be that pool's output.
* ``"forward"``: Grad-CAM needs only the spatial mean of the gradient,
  ``w[i, c] = (1/hw) Σ_p ∂z_i/∂A_{c,p}``, the derivative of z along the tangent "ones
  on channel c". One JVP per target channel gives the weights of all d neurons;
  tangents are batched with ``torch.func.vmap``.
* ``"reverse"``: per image, k copies of the target output run through the rest of the
  network as one batch and one backward pass gives k neurons' gradients (falls back
  to ``autograd.grad(..., is_grads_batched=True)`` when the model cannot broadcast).

``"auto"`` takes ``"analytic"`` when it applies; else ``"reverse"`` for ViT tokens
(fused attention has no forward-mode derivative); else ``"forward"`` unless fewer than
a third as many neurons as target channels are asked for (a tangent pass costs about
a third of a copy's forward and backward). The cost of the last two is that of the
network after the target layer, times C (forward) or K (reverse): cheap for late
layers, close to a full pass per neuron for early ones.

Semantics: the encoder runs in eval mode; train/eval modes are restored; hooks are
removed even on errors; parameter ``.grad`` is untouched. For a target whose output is
changed in place afterwards (``BatchNorm`` then ``ReLU(inplace=True)``) we use the
layer's actual output; pytorch-grad-cam keeps a view of it on CPU (and so sees the
values after the in-place op) and a copy on GPU. The default targets end a block and
are not affected.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import model_device

Method = Literal["auto", "analytic", "forward", "reverse"]
GRADCAM_EPS = 1e-7  # pytorch_grad_cam.utils.image.scale_cam_image: img / (1e-7 + max)

NeuronIndex = Sequence[int] | Tensor | np.ndarray | range | None


# --------------------------------------------------------------------------- model plumbing


def _encoder(model: nn.Module) -> nn.Module:
    """The module mapping x -> z: ``model.f_enc`` for a SplitModel, else the model itself."""
    enc = getattr(model, "f_enc", model)
    if not isinstance(enc, nn.Module):
        raise TypeError(f"model.f_enc must be an nn.Module, got {type(enc).__name__}")
    return enc


def _resolve_layer(model: nn.Module, target_layer: nn.Module | None) -> nn.Module:
    if target_layer is None:
        if not hasattr(model, "default_target_layer"):
            raise ValueError("target_layer=None needs a model with default_target_layer() (a SplitModel); "
                             "pass target_layer= explicitly")
        target_layer = model.default_target_layer()
    if not isinstance(target_layer, nn.Module):
        raise TypeError(f"target_layer must be an nn.Module, got {type(target_layer).__name__}")
    enc = _encoder(model)
    if not any(m is target_layer for m in enc.modules()):
        raise ValueError("target_layer must be a submodule of the encoder (model.f_enc)")
    return target_layer




class _EvalMode:
    """Put every submodule in eval mode (as pytorch-grad-cam does) and restore each one's mode after."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, mode in self.modes:
            m.training = mode


@dataclass(frozen=True)
class _Geometry:
    """How the target layer's output maps to a (B, C, h, w) activation map.

    ``prefix`` > 0 (or ``tokens``) means a ViT token tensor (B, T, C) whose first
    ``prefix`` tokens (class, distillation, registers) are dropped and the rest
    reshaped to the patch grid, as a pytorch-grad-cam ``reshape_transform`` does.
    """

    tokens: bool
    prefix: int
    h: int
    w: int


def _geometry(enc: nn.Module, act: Tensor) -> _Geometry:
    if act.ndim == 4:
        return _Geometry(False, 0, act.shape[2], act.shape[3])
    if act.ndim == 3:
        prefix = getattr(enc, "num_prefix_tokens", None)
        grid = getattr(getattr(enc, "patch_embed", None), "grid_size", None)
        if prefix is None or grid is None:
            raise ValueError(
                "target layer outputs tokens (B, T, C) but the encoder has no num_prefix_tokens / "
                "patch_embed.grid_size to reshape them to a patch grid")
        h, w = int(grid[0]), int(grid[1])
        if act.shape[1] != prefix + h * w:
            raise ValueError(f"target layer outputs {act.shape[1]} tokens; expected {prefix} prefix tokens + "
                             f"{h}x{w} patches (is the image size the one the model was built for?)")
        return _Geometry(True, int(prefix), h, w)
    raise ValueError(f"target layer output must be (B, C, h, w) or ViT tokens (B, T, C), got shape {tuple(act.shape)}")


def _to_map(t: Tensor, geo: _Geometry) -> Tensor:
    """(..., B, T, C) tokens -> (..., B, C, h, w); CNN maps pass through."""
    if not geo.tokens:
        return t
    lead = t.shape[:-2]
    t = t[..., geo.prefix:, :]
    t = t.reshape(*lead, geo.h, geo.w, t.shape[-1])
    return t.movedim(-1, -3)


def _single_output(out: Any) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"target layer must return one tensor, got {type(out).__name__}")
    return out


_POOL_TYPES: tuple[type, ...] = (nn.AdaptiveAvgPool2d,)
try:  # timm's mean pool (SelectAdaptivePool2d(pool_type="fast")); nn.AdaptiveAvgPool2d covers "avg"
    from timm.layers.adaptive_avgmax_pool import FastAdaptiveAvgPool

    _POOL_TYPES = (nn.AdaptiveAvgPool2d, FastAdaptiveAvgPool)
except ImportError:  # pragma: no cover - timm is a dependency, but the check needs no timm
    pass


def _is_global_mean_pool(m: nn.Module) -> bool:
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return m.output_size in (1, (1, 1))
    return isinstance(m, _POOL_TYPES)


@dataclass
class _Probe:
    act: Tensor  # a copy of the target layer's output
    z: Tensor
    pooled: bool


def _probe(enc: nn.Module, layer: nn.Module, x: Tensor) -> _Probe:
    """One no-grad forward recording the target output and whether z is exactly its global mean pool.

    ``pooled`` is True only if (1) a global average-pool module receives the very tensor
    object the target layer returned, with no in-place change in between (version
    counter), (2) ``z`` is a view of that pool's output, unchanged since (version
    counter), and (3) numerically ``z == A.mean((2, 3))``. Then z_i depends on A only
    through the mean of channel i, so ∂z_i/∂A = 1/(hw) on channel i: the analytic path.
    """
    rec: dict[str, Any] = {"calls": 0}
    handles = []

    def on_target(mod: nn.Module, inp: Any, out: Any) -> None:
        rec["calls"] += 1
        if rec["calls"] == 1:
            rec["act"] = _single_output(out)
            rec["act_version"] = out._version
            # A copy: a later in-place op (ReLU(inplace=True)) must not change the values we keep.
            rec["act_value"] = out.detach().clone()

    def on_pool(mod: nn.Module, inp: Any, out: Any) -> None:
        act = rec.get("act")
        if act is not None and inp and inp[0] is act and act._version == rec["act_version"] and isinstance(out, Tensor):
            rec["pool_out"] = out
            rec["pool_version"] = out._version

    try:
        handles.append(layer.register_forward_hook(on_target))
        for m in enc.modules():
            if _is_global_mean_pool(m):
                handles.append(m.register_forward_hook(on_pool))
        with torch.no_grad():
            z = enc(x)
    finally:
        for h in handles:
            h.remove()
    if rec["calls"] == 0:
        raise ValueError("target_layer did not run in model.f_enc(x); pick a layer on the path to z")
    if rec["calls"] > 1:
        raise ValueError("target_layer runs more than once per forward; pick a module that runs once")
    if not isinstance(z, Tensor) or z.ndim != 2:
        raise ValueError(f"model.f_enc(x) must return z of shape (B, d), got {getattr(z, 'shape', type(z))}")
    act = rec["act"]
    pooled = False
    pool_out = rec.get("pool_out")
    if pool_out is not None and act.ndim == 4 and z.shape == act.shape[:2]:
        pooled = (
            z.data_ptr() == pool_out.data_ptr()
            and z._version == rec["pool_version"]
            and z.is_contiguous()
            and torch.allclose(z, act.mean((2, 3)), rtol=1e-4, atol=1e-6)
        )
    return _Probe(rec["act_value"], z.detach(), pooled)


# --------------------------------------------------------------------------- low-resolution cams

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
    from torch.func import jvp, vmap

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


def _same_z(z_copies: Tensor, z_ref: Tensor) -> bool:
    """Every copy's z equals the batched forward's z for that image (to batch-size rounding)."""
    scale = float(z_ref.abs().max()) + 1e-6
    return bool(((z_copies - z_ref).abs().max() <= 1e-3 * scale).item())


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
        return "reverse"  # fused attention has no forward-mode derivative
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
    method = _choose_method(method, probe, geo, len(idx))
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
    raise ValueError(f"method must be one of 'auto', 'analytic', 'forward', 'reverse', got {method!r}")


# --------------------------------------------------------------------------- normalisation (pytorch-grad-cam)

# Maps per finishing block are capped so a block holds at most this many float32 pixels (128 MiB):
# big enough to amortise per-op overhead, small enough to stay bounded at any image size.
_BLOCK_PIXELS = 2**25


def _interp_matrix(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """(n_out, n_in) weights of cv2 ``INTER_LINEAR`` along one axis (half-pixel centres, edge clamp).

    cv2 computes ``fx = (dx + 0.5) * (n_in / n_out) - 0.5`` in double, ``sx = floor(fx)``,
    clamps at the borders and weights the two neighbours by ``1 - fx`` and ``fx`` in
    float32; a row has at most two non-zeros summing to 1.
    """
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = src.floor()
    lam = (src - i0).float()
    i0 = i0.long()
    lam[i0 < 0] = 0.0  # left border: cv2 clamps to the first pixel
    lam[i0 >= n_in - 1] = 0.0  # right border: the last pixel
    i0 = i0.clamp(0, n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    rows = torch.arange(n_out)
    mat = torch.zeros(n_out, n_in, dtype=torch.float32)
    mat.index_put_((rows, i0), 1.0 - lam, accumulate=True)
    mat.index_put_((rows, i1), lam, accumulate=True)
    return mat.to(device)


def _minmax_(cam: Tensor) -> Tensor:
    """In place, per map (last dim flattened): ``img - min``, then ``img / (1e-7 + max)``, as scale_cam_image."""
    mn = cam.amin(dim=-1, keepdim=True)
    # max(img - min) == max(img) - min exactly, as float rounding is monotone: one pass saved.
    mx = cam.amax(dim=-1, keepdim=True).sub_(mn)
    return cam.sub_(mn).div_(mx.add_(GRADCAM_EPS))


def gradcam_scale(raw: Tensor, size: tuple[int, int], *, out: Tensor | None = None) -> Tensor:
    """pytorch-grad-cam's post-processing of raw maps, in torch, on raw's device.

    Steps (``BaseCAM.compute_cam_per_layer``, then ``aggregate_multi_layers`` for one
    layer): ReLU; per map ``x - min`` and ``/ (1e-7 + max)``; ``cv2.resize(.., (W, H))``
    with its default ``INTER_LINEAR`` (done here as two small matrix products with cv2's
    weights, equal to cv2 within one float32 ulp); ReLU (a no-op: interpolation of
    non-negative maps with non-negative weights); ``x - min`` and ``/ (1e-7 + max)`` again.

    Args:
        raw: (..., h, w) raw cams ``Σ_c w_c A_c``.
        size: (H, W) output size (the input image size).
        out: optional float32 buffer with room for ``raw[..., 0, 0].numel() * H * W`` values,
            reused to avoid allocating (fresh memory costs more than the arithmetic here).

    Returns:
        float32 tensor (..., H, W) with values in [0, 1) (a view of ``out`` when given).
    """
    lead, (h, w) = raw.shape[:-2], raw.shape[-2:]
    H, W = int(size[0]), int(size[1])
    cam = raw.float().clamp_min(0.0).reshape(-1, h * w)
    cam = _minmax_(cam).view(-1, h, w)
    m = cam.shape[0]
    if out is None:
        out = torch.empty(m * H * W, dtype=torch.float32, device=raw.device)
    res = out.reshape(-1)[: m * H * W].view(m, H, W)
    if (h, w) == (H, W):
        res.copy_(cam)
    elif raw.device.type != "cpu":
        # On GPUs a float32 matmul may run in TF32 (set_float32_matmul_precision), too coarse
        # here; interpolate is exact there and fast enough.
        res.copy_(F.interpolate(cam[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0])
    else:
        ry = _interp_matrix(h, H, raw.device)  # (H, h)
        rx = _interp_matrix(w, W, raw.device)  # (W, w)
        torch.matmul(ry, cam @ rx.T, out=res)  # (m, H, W)
    _minmax_(res.view(m, H * W))
    return res.view(*lead, H, W)


# --------------------------------------------------------------------------- public: heatmaps


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N > 0, got {tuple(images.shape)}")


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _neuron_index(neurons: NeuronIndex, d: int, device: torch.device) -> Tensor:
    if neurons is None:
        return torch.arange(d, device=device)
    idx = torch.as_tensor(np.asarray(neurons) if isinstance(neurons, (range, list, tuple)) else neurons)
    if idx.ndim != 1 or idx.numel() == 0 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise ValueError(f"neurons must be a non-empty 1-D sequence of ints, got {neurons!r}")
    if int(idx.min()) < 0 or int(idx.max()) >= d:
        raise ValueError(f"neurons must lie in [0, {d}) (z has d={d}), got min {int(idx.min())}, max {int(idx.max())}")
    return idx.long().to(device)


def _iter_cams(model: nn.Module, images: Tensor, *, target_layer: nn.Module | None, neurons: NeuronIndex,
               chunk_size: int | None, batch_size: int, method: Method
               ) -> Iterator[tuple[slice, slice, Tensor, int]]:
    """Yield (image slice, neuron slice, final cams (b, k, H, W), K in all) blocks.

    The cams of a block live in one reused buffer: use them before asking for the next.
    """
    _check_images(images)
    if chunk_size is not None:
        _check_positive("chunk_size", chunk_size)
    _check_positive("batch_size", batch_size)
    if torch.is_inference_mode_enabled():
        raise RuntimeError("Grad-CAM needs autograd: call this outside torch.inference_mode()")
    if method not in ("auto", "analytic", "forward", "reverse"):
        raise ValueError(f"method must be one of 'auto', 'analytic', 'forward', 'reverse', got {method!r}")
    layer = _resolve_layer(model, target_layer)
    enc = _encoder(model)
    device = model_device(model)
    H, W = images.shape[-2], images.shape[-1]
    buf: Tensor | None = None
    max_maps = 0
    with _EvalMode(enc):
        for b0 in range(0, images.shape[0], batch_size):
            x = images[b0:b0 + batch_size].to(device)
            raw, _ = _raw_cams(model, layer, x, neurons, method=method, chunk_size=chunk_size)
            b, n_neurons = raw.shape[:2]
            if buf is None:  # the first batch is the largest: size the buffer once
                max_maps = min(max(b, _BLOCK_PIXELS // (H * W)), b * n_neurons)
                buf = torch.empty(max_maps * H * W, dtype=torch.float32, device=device)
            k_blk = max(1, max_maps // b)  # b * k_blk maps fit in the buffer
            for k0 in range(0, n_neurons, k_blk):
                cams = gradcam_scale(raw[:, k0:k0 + k_blk], (H, W), out=buf)
                yield slice(b0, b0 + b), slice(k0, k0 + k_blk), cams, n_neurons


def neuron_cams(
    model: nn.Module,
    images: Tensor,
    *,
    target_layer: nn.Module | None = None,
    neurons: NeuronIndex = None,
    chunk_size: int | None = None,
    batch_size: int = 16,
    method: Method = "auto",
) -> Tensor:
    """Grad-CAM heatmaps of penultimate neurons, exactly as pytorch-grad-cam computes them.

    Equals, for each neuron ``i``, ``GradCAM(model=<x -> model.f_enc(x)>, target_layers=[layer],
    reshape_transform=<drop prefix tokens, reshape to the patch grid>)(images,
    targets=[ClassifierOutputTarget(i)] * N)`` (to float32 rounding), but computes many
    neurons per pass (see the module docstring). The encoder runs in eval mode (as in
    pytorch-grad-cam); each submodule's train/eval mode is restored afterwards, and all
    hooks are removed even when the call raises. No parameter ``.grad`` is touched.

    The result holds N*K*H*W floats (5 GB for 512 neurons x 50 images at 224 px): for
    scores over all neurons use :func:`s_scores`, which never holds them all.

    Args:
        model: a SplitModel (``model.f_enc(x)`` = z of shape (B, d)), or any module mapping x to z.
        images: (N, C, H, W) input batch (moved to the model's device).
        target_layer: the Grad-CAM layer; None means ``model.default_target_layer()``.
        neurons: indices into z (default: all d).
        chunk_size: channel tangents ("forward") or neuron copies ("reverse") per batched pass;
            None sizes it to a fixed memory budget (about 128 MiB of tangents, or 32 MiB of
            copies of the target output plus their graph). Results do not depend on it.
        batch_size: images per forward pass (forward-mode memory grows with it too).
        method: ``"auto"`` (see the module docstring), or force ``"analytic"`` (pooled
            last block only), ``"forward"`` or ``"reverse"``.

    Returns:
        float32 tensor (N, K, H, W) on the model's device, each map min-max normalised to [0, 1).
    """
    out: Tensor | None = None
    for bs, ks, cams, n_neurons in _iter_cams(model, images, target_layer=target_layer, neurons=neurons,
                                              chunk_size=chunk_size, batch_size=batch_size, method=method):
        if out is None:
            out = torch.empty(images.shape[0], n_neurons, *cams.shape[-2:], dtype=cams.dtype, device=cams.device)
        out[bs, ks] = cams
    assert out is not None
    return out


class _Encoder(nn.Module):
    """x -> z, the module pytorch-grad-cam sees."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, x: Tensor) -> Tensor:
        return self.enc(x)


def reference_cams(model: nn.Module, images: Tensor, neurons: Sequence[int], *,
                   target_layer: nn.Module | None = None) -> np.ndarray:
    """The reference :func:`neuron_cams` equals: pytorch-grad-cam itself, one ``GradCAM`` call per neuron.

    ``GradCAM(model=<x -> model.f_enc(x)>, target_layers=[layer], reshape_transform=<drop the encoder's
    num_prefix_tokens, reshape to its patch grid>)`` with ``ClassifierOutputTarget(i)``. Slow (one backward
    pass per neuron and image batch): for tests and benchmarks, not for scoring.

    Returns:
        float32 array (N, K, H, W).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ttach/cv2 import-time deprecation noise
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    enc = _encoder(model)
    layer = _resolve_layer(model, target_layer)
    reshape = None
    if hasattr(enc, "num_prefix_tokens"):
        prefix, (gh, gw) = enc.num_prefix_tokens, enc.patch_embed.grid_size

        def to_grid(t: Tensor) -> Tensor:
            return t[:, prefix:].reshape(t.shape[0], gh, gw, t.shape[-1]).permute(0, 3, 1, 2)

        reshape = to_grid

    with GradCAM(model=_Encoder(enc), target_layers=[layer], reshape_transform=reshape) as cam:
        maps = [cam(images, targets=[ClassifierOutputTarget(int(i))] * len(images)) for i in neurons]
    return np.stack(maps, axis=1).astype(np.float32)


# --------------------------------------------------------------------------- public: scores


def _check_alpha(alpha: float) -> float:
    """Validate alpha and round it to float32, the precision the maps are compared in.

    Rounding first makes ``cam >= alpha`` the same whether an op compares in float32 or
    float64 (a float64 alpha between two float32 values could otherwise split them).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    return float(np.float32(alpha))


def binarize(cams: Tensor, alpha: float) -> Tensor:
    """Binarise normalised heatmaps: ``cam >= alpha`` (alpha rounded to float32).

    ``>=`` is the comparison used everywhere in this module (:func:`s_scores` counts
    exactly these pixels). Normalised maps lie in [0, 1): the 1e-7 in pytorch-grad-cam's
    normalisation keeps the maximum just below 1, so ``alpha=1`` selects nothing and
    ``alpha=0`` every pixel.

    Args:
        cams: (..., H, W) maps from :func:`neuron_cams`.
        alpha: threshold in [0, 1].

    Returns:
        bool tensor of the same shape.
    """
    return cams >= _check_alpha(alpha)


def _masks_to_bool(masks: Tensor, images_shape: tuple[int, ...] | None = None) -> Tensor:
    if not isinstance(masks, Tensor):
        raise TypeError(f"masks must be a tensor (N, H, W), got {type(masks).__name__}")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ValueError("masks must be bool or contain only 0 and 1")
        masks = masks.bool()
    if images_shape is not None and (masks.shape[0] != images_shape[0] or masks.shape[1:] != images_shape[2:]):
        raise ValueError(f"masks must have shape (N, H, W) = {(images_shape[0], *images_shape[2:])} to match images, "
                         f"got {tuple(masks.shape)}")
    return masks


def _count_weights(masks: Tensor) -> Tensor:
    """(N, H*W, 2) float32 columns [1, m]: one matrix product then gives |b| and |b ⊙ m|."""
    m = masks.reshape(masks.shape[0], -1).float()
    return torch.stack([torch.ones_like(m), m], dim=-1)


def _overlap_counts_(cams: Tensor, weights: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """|b| and |b ⊙ m| per (sample, neuron) of a block, overwriting ``cams``.

    Args:
        cams: (b, k, H, W) float32 normalised maps; destroyed.
        weights: (b, H*W, 2) from :func:`_count_weights`.
        alpha: float32-rounded threshold.

    The in-place ``ge_`` writes ``cam >= alpha`` as 1.0/0.0 into the float buffer, so a
    batched matrix product counts: bool tensors, their sums and fresh allocations are
    several times slower here. Counts are sums of 0/1 in float32, exact below 2**24
    pixels per image.
    """
    b, k = cams.shape[:2]
    hw = cams.shape[-1] * cams.shape[-2]
    if hw >= 2**24:  # float32 stops counting exactly; take the slow exact path
        bin_ = cams >= alpha
        m = weights[..., 1].bool().view(b, 1, *cams.shape[-2:])
        return bin_.sum(dim=(-2, -1)), (bin_ & m).sum(dim=(-2, -1))
    flat = cams.view(b, k, hw)
    flat.ge_(alpha)
    counts = torch.bmm(flat, weights)  # (b, k, 2)
    return counts[..., 0].round().long(), counts[..., 1].round().long()


def _ratio(n_bm: Tensor, n_b: Tensor) -> Tensor:
    """|b ⊙ m| / |b|, 0 where |b| = 0 (the paper's s = 0 for a neuron that focuses nowhere)."""
    zero = torch.zeros((), dtype=torch.float64, device=n_b.device)
    return torch.where(n_b > 0, n_bm.double() / n_b.clamp_min(1).double(), zero)


def per_sample_scores(cams: Tensor, masks: Tensor, alpha: float, *, chunk_size: int = 64) -> Tensor:
    """Per-sample s-scores ``|b ⊙ m| / |b|`` (0 where ``|b| = 0``) of precomputed heatmaps.

    Args:
        cams: (N, K, H, W) normalised heatmaps (from :func:`neuron_cams`); not modified.
        masks: (N, H, W) bool (or 0/1) spurious-region masks.
        alpha: binarisation threshold in [0, 1] (``cam >= alpha``, see :func:`binarize`).
        chunk_size: neurons per block (bounds the temporary copy).

    Returns:
        float32 tensor (N, K) in [0, 1]; ``.mean(0)`` is the s-score.
    """
    alpha = _check_alpha(alpha)
    _check_positive("chunk_size", chunk_size)
    if not isinstance(cams, Tensor) or cams.ndim != 4:
        raise ValueError(f"cams must have shape (N, K, H, W), got {getattr(cams, 'shape', type(cams))}")
    masks = _masks_to_bool(masks).to(cams.device)
    if masks.shape[0] != cams.shape[0] or masks.shape[1:] != cams.shape[2:]:
        raise ValueError(f"masks must have shape {(cams.shape[0], *cams.shape[2:])} to match cams, "
                         f"got {tuple(masks.shape)}")
    weights = _count_weights(masks)
    out = torch.empty(cams.shape[:2], dtype=torch.float32, device=cams.device)
    for k0 in range(0, cams.shape[1], chunk_size):
        block = cams[:, k0:k0 + chunk_size].float().clone()
        n_b, n_bm = _overlap_counts_(block, weights, alpha)
        out[:, k0:k0 + chunk_size] = _ratio(n_bm, n_b).float()
    return out


def s_scores(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    alpha: float,
    target_layer: nn.Module | None = None,
    neurons: NeuronIndex = None,
    reduction: Literal["mean", "none"] = "mean",
    chunk_size: int | None = None,
    batch_size: int = 16,
    method: Method = "auto",
) -> Tensor:
    """Neuron spurious scores (paper §3.3): ``s_i = 1/N Σ_j |b_j^i ⊙ m_j| / |b_j^i|``.

    ``b_j^i = cam_j^i >= alpha`` with ``cam`` exactly the maps of :func:`neuron_cams`, a
    sample with ``|b| = 0`` contributing 0. Heatmaps are made, binarised and counted
    block by block in one reused buffer, so memory stays bounded for any N and d.
    Compare the result with the chance level :func:`mask_area` (see :func:`lift`).

    Args:
        model: a SplitModel, or any module mapping x to z.
        images: (N, C, H, W) inputs.
        masks: (N, H, W) bool (or 0/1) spurious-region masks, same H, W as images.
        alpha: binarisation threshold in [0, 1].
        target_layer: Grad-CAM layer; None means ``model.default_target_layer()``.
        neurons: indices into z (default all d).
        reduction: ``"mean"`` (the s-score, shape (K,)) or ``"none"`` (per-sample scores (N, K)).
        chunk_size, batch_size, method: see :func:`neuron_cams`.

    Returns:
        float32 tensor (K,) (K = d when ``neurons`` is None) in [0, 1], or (N, K) with ``reduction="none"``.
    """
    alpha = _check_alpha(alpha)
    _check_images(images)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    weights = _count_weights(_masks_to_bool(masks, tuple(images.shape)).to(model_device(model)))
    per: Tensor | None = None
    for bs, ks, cams, n_neurons in _iter_cams(model, images, target_layer=target_layer, neurons=neurons,
                                              chunk_size=chunk_size, batch_size=batch_size, method=method):
        if per is None:
            per = torch.empty(images.shape[0], n_neurons, dtype=torch.float64, device=cams.device)
        n_b, n_bm = _overlap_counts_(cams, weights[bs], alpha)
        per[bs, ks] = _ratio(n_bm, n_b)
    assert per is not None
    return (per.mean(0) if reduction == "mean" else per).float()


# --------------------------------------------------------------------------- chance level


def mask_area(masks: Tensor) -> float:
    """Chance level of the s-score: the mean fraction of pixels inside the spurious mask.

    A heatmap that ignores the image lands on the mask in proportion to its area, so
    its expected s-score is the mean per-sample mask area (background is 80-90 % of a
    Waterbirds-like image; a colour patch about 5 % of an ISIC-like one).

    Args:
        masks: (N, H, W) bool (or 0/1) masks.

    Returns:
        mean over samples of (mask pixels / all pixels), in [0, 1].
    """
    masks = _masks_to_bool(masks)
    if masks.shape[0] == 0:
        raise ValueError("masks must hold at least one sample")
    return float(masks.float().mean(dim=(-2, -1)).mean())


def lift(scores: Tensor, area: float | Tensor) -> Tensor:
    """s-score over its chance level: ``scores / area`` (1 = no better than a heatmap ignoring the image).

    Args:
        scores: s-scores, any shape.
        area: the chance level, a float from :func:`mask_area`, or the masks themselves.

    Returns:
        tensor like ``scores``.
    """
    if isinstance(area, Tensor) and area.ndim >= 2:
        area = mask_area(area)
    area = float(area)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1] (the masks must cover some pixels), got {area}")
    return torch.as_tensor(scores, dtype=torch.float32) / area
