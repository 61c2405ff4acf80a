"""Model plumbing of the Grad-CAM engine: the encoder, the target layer, its geometry, the forward probe.

Semantics every path shares: the encoder runs in eval mode (:class:`_EvalMode`, as in
pytorch-grad-cam); each submodule's train/eval mode is restored; hooks are removed even
on errors; parameter ``.grad`` is untouched. For a target whose output is changed in
place afterwards (``BatchNorm`` then ``ReLU(inplace=True)``) we use the layer's actual
output (:func:`_probe` keeps a copy); pytorch-grad-cam keeps a view of it on CPU (and so
sees the values after the in-place op) and a copy on GPU. The default targets end a block
and are not affected.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

NeuronIndex = Sequence[int] | Tensor | np.ndarray | range | None


def _check_split_model(model: object) -> None:
    """Refuse a model that is not split into ``f_enc`` (x -> z) and ``head`` (z -> logits).

    Every entry point scores the output of ``model.f_enc`` as the penultimate vector z. A plain classifier
    (a timm or torchvision model) has no such split: its output is the logits, and scoring it would
    silently give the logits' scores (shape (num_classes,)) instead of the penultimate neurons'.
    """
    enc, head = getattr(model, "f_enc", None), getattr(model, "head", None)
    if isinstance(model, nn.Module) and isinstance(enc, nn.Module) and isinstance(head, nn.Module):
        return
    missing = " and ".join(f".{n}" for n, v in (("f_enc", enc), ("head", head)) if not isinstance(v, nn.Module))
    raise TypeError(
        f"model must be split into an encoder model.f_enc (x -> penultimate z of shape (B, d)) and a linear "
        f"model.head (z -> logits), got a {type(model).__name__} without {missing or 'an nn.Module'}: its output "
        "would be scored as if it were z, and a plain classifier's output is its logits. Pass a split model: "
        "shortcut_nb.models.as_split_model(net) for a timm or torchvision classifier, or "
        "shortcut_nb.models.build_model(name, ...).")


def _encoder(model: nn.Module) -> nn.Module:
    """The module mapping x -> z, ``model.f_enc``, after :func:`_check_split_model`."""
    _check_split_model(model)
    return model.f_enc


def _module_name(model: nn.Module, module: nn.Module) -> str:
    """``module``'s qualified name in ``model`` (``"model.f_enc.layer4.0"``), or its class name if not inside."""
    for name, m in model.named_modules():
        if m is module:
            return f"model.{name}" if name else "model"
    return f"a {type(module).__name__} outside the model"


def _resolve_layer(model: nn.Module, target_layer: nn.Module | None, *, arg: str = "target_layer") -> nn.Module:
    """The layer whose output map is explained: ``target_layer``, or the model's default when None.

    Args:
        model: a split model (``.f_enc``, ``.head``).
        target_layer: a module inside ``model.f_enc``, or None (``model.default_target_layer()``).
        arg: the argument's name in the caller's signature, for error messages (``"layer"`` for units).

    Raises:
        TypeError: ``model`` is not split, or ``target_layer`` is not a module.
        ValueError: ``target_layer`` gives the logits (``model.head`` or ``model`` itself), or lies outside
            ``model.f_enc``.
    """
    _check_split_model(model)
    instead = ("a layer inside model.f_enc (a conv block such as model.f_enc.layer4[-1], or a ViT block's norm1 "
               "such as model.f_enc.blocks[-1].norm1)")
    if arg == "target_layer":
        instead += ", or target_layer=None for the model's default (model.default_target_layer())"
    if target_layer is None:
        if not hasattr(model, "default_target_layer"):
            raise ValueError(f"{arg}=None needs a model with default_target_layer() (a SplitModel); "
                             f"pass {arg}= explicitly: {instead}")
        target_layer = model.default_target_layer()
    if not isinstance(target_layer, nn.Module):
        raise TypeError(f"{arg} must be an nn.Module of the model, got {type(target_layer).__name__}: pass {instead}")
    enc = _encoder(model)
    if target_layer is model or any(m is target_layer for m in model.head.modules()):
        raise ValueError(
            f"{arg}={_module_name(model, target_layer)} ({type(target_layer).__name__}) gives the logits "
            "(model(x) = model.head(model.f_enc(x))), not a spatial map of the encoder: a heatmap needs a layer "
            f"between the input and z. Pass {instead}")
    if not any(m is target_layer for m in enc.modules()):
        where = ("is a module of the model outside model.f_enc, so not on the path x -> z"
                 if any(m is target_layer for m in model.modules()) else "is not a submodule of model.f_enc")
        raise ValueError(f"{arg} ({_module_name(model, target_layer)}) {where} (target layers must be a submodule "
                         f"of the encoder model.f_enc); pass {instead}")
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
    if act.ndim == 2:
        raise ValueError(f"target layer outputs a vector per image (shape {tuple(act.shape)}), not a spatial map: it "
                         "is at or after the global pool; pass a layer before it (a conv block, or a ViT block's "
                         "norm1)")
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


def _same_z(z: Tensor, z_ref: Tensor) -> bool:
    """A shortcut's z equals the batched forward's (broadcasting copies over ``z_ref``; to batch-size rounding)."""
    if z.shape[-1:] != z_ref.shape[-1:]:
        return False
    scale = float(z_ref.abs().max()) + 1e-6
    return bool(((z - z_ref).abs().max() <= 1e-3 * scale).item())


# --------------------------------------------------------------------------- argument checks


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

