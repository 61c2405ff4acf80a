"""The target layer's map size, and the warning when it is too small for a heatmap to mean anything.

Grad-CAM heatmaps are the target layer's map upsampled to the image. A ResNet's last block at 32 px is
1×1: every heatmap is constant, min-max normalised to 0, and every s-score is exactly 0; at 2×2 or 3×3 a
heatmap cannot separate a spurious region from the rest. The scoring entry points warn
(:class:`SmallTargetMapWarning`) when the map (for a ViT: the patch-token grid) is smaller than
:data:`MIN_MAP_SIDE` on a side; :func:`target_map_size` tells the size before any scoring.
"""
from __future__ import annotations

import math
import os
import sys
import warnings

import torch
from torch import nn

from ..config import model_device
from .layers import _encoder, _EvalMode, _geometry, _module_name, _probe, _resolve_layer

__all__ = ["MIN_MAP_SIDE", "SmallTargetMapWarning", "small_map_note", "target_map_size"]

#: The smallest map side (height and width, in map cells) a heatmap-based score is computed on without a warning.
MIN_MAP_SIDE = 4

_PACKAGE_DIR = os.path.join(os.path.dirname(__file__), "")  # with the trailing separator


class SmallTargetMapWarning(UserWarning):
    """The target layer's spatial map (a ViT's patch grid) is smaller than MIN_MAP_SIDE × MIN_MAP_SIDE."""


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in image_size):
        hw = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be an int or an (H, W) pair of ints, got {image_size!r}")
    if min(hw) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return hw


def target_map_size(model: nn.Module, image_size: int | tuple[int, int], target_layer: nn.Module | None = None,
                    *, in_chans: int = 3) -> tuple[int, int]:
    """Spatial size (h, w) of ``target_layer``'s map at ``image_size``: one forward of a zero image, with a hook.

    For a CNN layer, its output's (h, w); for a ViT layer (tokens (B, T, C)), the patch grid the tokens are
    reshaped to. Heatmaps finer than this do not exist: below :data:`MIN_MAP_SIDE` on a side the scoring
    entry points warn (:class:`SmallTargetMapWarning`).

    Args:
        model: a split model (``.f_enc``, ``.head``), e.g. from :func:`shortcut_nb.models.build_model`.
        image_size: input side in pixels, or (H, W).
        target_layer: a layer inside ``model.f_enc``; None means ``model.default_target_layer()``.
        in_chans: input channels of the zero image.

    Returns:
        (h, w) in map cells.
    """
    H, W = _image_hw(image_size)
    layer = _resolve_layer(model, target_layer)
    enc = _encoder(model)
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, in_chans, H, W, dtype=dtype, device=model_device(model))
    with _EvalMode(enc):
        probe = _probe(enc, layer, x)
    geo = _geometry(enc, probe.act)
    return int(geo.h), int(geo.w)


def _stacklevel() -> int:
    """``warnings.warn``'s stacklevel, called from :func:`_warn_small_map`: the first frame outside this package."""
    frame = sys._getframe(1)  # _warn_small_map
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def _warn_small_map(model: nn.Module, layer: nn.Module, map_hw: tuple[int, int], image_hw: tuple[int, int], *,
                    tokens: bool, arg: str = "target_layer") -> None:
    """Warn (:class:`SmallTargetMapWarning`) when ``map_hw`` is below MIN_MAP_SIDE on a side; else nothing."""
    h, w = int(map_hw[0]), int(map_hw[1])
    if min(h, w) >= MIN_MAP_SIDE:
        return
    H, W = int(image_hw[0]), int(image_hw[1])
    what = "patch-token grid" if tokens else "map"
    # cells scale with the image: about MIN_MAP_SIDE * (pixels per cell) pixels give a MIN_MAP_SIDE-cell side
    need = MIN_MAP_SIDE * max(math.ceil(H / h), math.ceil(W / w))
    warnings.warn(
        f"{arg} {_module_name(model, layer)} ({type(layer).__name__}) gives a {h}x{w} {what} at {H}x{W} px images, "
        f"smaller than {MIN_MAP_SIDE}x{MIN_MAP_SIDE}: heatmaps are that {what} upsampled, too coarse to locate a "
        "spurious region (a 1x1 map gives all-zero heatmaps and s-scores of exactly 0). Use larger images (about "
        f"{need} px or more for this layer), or a layer with a finer map.",
        SmallTargetMapWarning, stacklevel=_stacklevel())


def small_map_note(target_map: tuple[int, int] | list[int], image_size: int) -> str | None:
    """What a record says of a target map below :data:`MIN_MAP_SIDE` on a side (None when it is large enough)."""
    if min(target_map) >= MIN_MAP_SIDE:
        return None
    return (f"the target layer's map is {target_map[0]}x{target_map[1]} at {image_size} px, smaller than "
            f"{MIN_MAP_SIDE}x{MIN_MAP_SIDE}: the heatmaps are that map upsampled and cannot locate a spurious region; "
            "use larger images (IMAGE_SIZE) or a layer with a finer map")
