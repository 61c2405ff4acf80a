"""Grad-CAM heatmaps of penultimate neurons, finished exactly as pytorch-grad-cam finishes them.

Heatmaps are pytorch-grad-cam's ``GradCAM(model=<x -> z>, target_layers=[layer],
reshape_transform=...)`` with target ``ClassifierOutputTarget(i)``: per sample
``cam = ReLU(Σ_c w_c A_c)``, ``w_c`` the spatial mean of ``∂z_i/∂A_c`` (the raw maps of
:mod:`.gradients`); per map ``x - min`` then ``/ (1e-7 + max)``; ``cv2.resize``
(``INTER_LINEAR``) to the input size; ``x - min`` and ``/ (1e-7 + max)`` again (its layer
aggregation), in :func:`gradcam_scale`. All of it runs in torch on the model's device and
agrees with pytorch-grad-cam (:func:`~.reference.reference_cams`) to ~1e-6 (float rounding,
so a pixel within that of alpha may binarise differently).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import model_device
from .gradients import METHODS, Method, _raw_cams
from .layers import NeuronIndex, _check_images, _check_positive, _encoder, _EvalMode, _resolve_layer
from .target_map import _warn_small_map

GRADCAM_EPS = 1e-7  # pytorch_grad_cam.utils.image.scale_cam_image: img / (1e-7 + max)


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


def _iter_cams(model: nn.Module, images: Tensor, *, target_layer: nn.Module | None, neurons: NeuronIndex,
               chunk_size: int | None, batch_size: int, method: Method, warn_small: bool = True
               ) -> Iterator[tuple[slice, slice, Tensor, int]]:
    """Yield (image slice, neuron slice, final cams (b, k, H, W), K in all) blocks.

    The cams of a block live in one reused buffer: use them before asking for the next. With ``warn_small``,
    a target map below MIN_MAP_SIDE on a side gives a :class:`~.target_map.SmallTargetMapWarning`.
    """
    _encoder(model)  # a model that is not split fails first, whatever else is wrong
    _check_images(images)
    if chunk_size is not None:
        _check_positive("chunk_size", chunk_size)
    _check_positive("batch_size", batch_size)
    if torch.is_inference_mode_enabled():
        raise RuntimeError("Grad-CAM needs autograd: call this outside torch.inference_mode()")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
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
            if warn_small and b0 == 0:
                _warn_small_map(model, layer, raw.shape[-2:], (H, W), tokens=getattr(model, "kind", None) == "vit")
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
    neurons per pass (see :mod:`.gradients`). The encoder runs in eval mode (as in
    pytorch-grad-cam); each submodule's train/eval mode is restored afterwards, and all
    hooks are removed even when the call raises. No parameter ``.grad`` is touched.

    The result holds N*K*H*W floats (5 GB for 512 neurons x 50 images at 224 px): for
    scores over all neurons use :func:`~.metric.s_scores`, which never holds them all.

    Args:
        model: a split model: ``model.f_enc(x)`` = z of shape (B, d), ``model.head`` the linear classifier
            (a SplitModel from :func:`shortcut_nb.models.build_model` or ``shortcut_nb.models.as_split_model``;
            a plain classifier is refused with a TypeError, as its output is the logits).
        images: (N, C, H, W) input batch (moved to the model's device).
        target_layer: the Grad-CAM layer, inside ``model.f_enc`` (``model.head`` gives the logits: refused);
            None means ``model.default_target_layer()``.
        neurons: indices into z (default: all d).
        chunk_size: channel tangents ("forward", "class_token") or neuron copies ("reverse") per batched pass;
            None sizes it to a fixed memory budget (about 128 MiB of tangents, or 32 MiB of
            copies of the target output plus their graph). Results do not depend on it.
        batch_size: images per forward pass (forward-mode memory grows with it too).
        method: ``"auto"`` (see :mod:`.gradients`), or force ``"analytic"`` (pooled
            last block only), ``"class_token"`` (a timm ViT's last norm1 only), ``"forward"`` or ``"reverse"``.

    Returns:
        float32 tensor (N, K, H, W) on the model's device, each map min-max normalised to [0, 1).

    Warns:
        SmallTargetMapWarning: the target layer's map (a ViT's patch grid) is smaller than 4x4.
    """
    return _collect_cams(_iter_cams(model, images, target_layer=target_layer, neurons=neurons,
                                    chunk_size=chunk_size, batch_size=batch_size, method=method), images)


def _collect_cams(blocks: Iterator[tuple[slice, slice, Tensor, int]], images: Tensor) -> Tensor:
    """The blocks of :func:`_iter_cams` over ``images`` (N, C, H, W) in one (N, K, H, W) tensor."""
    out: Tensor | None = None
    for bs, ks, cams, n_neurons in blocks:
        if out is None:
            out = torch.empty(images.shape[0], n_neurons, *cams.shape[-2:], dtype=cams.dtype, device=cams.device)
        out[bs, ks] = cams
    assert out is not None
    return out
