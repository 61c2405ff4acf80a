"""The oracle :func:`~.cams.neuron_cams` is checked against: pytorch-grad-cam itself, one call per neuron.

For tests and benchmarks, not for scoring. pytorch-grad-cam is imported when
:func:`reference_cams` is first called: it pulls in matplotlib and cv2 (seconds of import
time and drawing libraries the core does not otherwise load).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Sequence

import numpy as np
from torch import Tensor, nn

from .layers import _encoder, _resolve_layer


class _Encoder(nn.Module):
    """x -> z, the module pytorch-grad-cam sees."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, x: Tensor) -> Tensor:
        return self.enc(x)


def reference_cams(model: nn.Module, images: Tensor, neurons: Sequence[int], *,
                   target_layer: nn.Module | None = None) -> np.ndarray:
    """The reference :func:`~.cams.neuron_cams` equals: pytorch-grad-cam itself, one ``GradCAM`` call per neuron.

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


# --------------------------------------------------------------------------- units of any layer

#: pytorch-grad-cam's class of each CAM method a unit can be explained with.
CAM_CLASSES = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM",
               "layercam": "LayerCAM", "xgradcam": "XGradCAM", "scorecam": "ScoreCAM"}


class _StopForward(Exception):
    """Raised by the hook once the layer has run: nothing after it is needed."""

    def __init__(self, out: Tensor):
        super().__init__()
        self.out = out


class _LayerOutput(nn.Module):
    """x -> the layer's output, the encoder stopped right after the layer (the module pytorch-grad-cam sees)."""

    def __init__(self, enc: nn.Module, layer: nn.Module):
        super().__init__()
        self.enc = enc
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        def stop(mod: nn.Module, inp: object, out: Tensor) -> None:
            raise _StopForward(out)

        handle = self.layer.register_forward_hook(stop)  # after pytorch-grad-cam's own hook on the layer
        try:
            self.enc(x)
        except _StopForward as done:
            return done.out
        finally:
            handle.remove()
        raise ValueError("layer did not run in model.f_enc(x)")


class UnitMeanTarget:
    """pytorch-grad-cam target: one unit's mean over the layer's positions (patch tokens for a ViT).

    Called on one sample's layer output: (C, h, w) for a CNN block, (T, C) tokens for a ViT (the first
    ``prefix`` tokens dropped, as the reshape transform drops them).
    """

    def __init__(self, unit: int, prefix: int = 0):
        self.unit, self.prefix = int(unit), int(prefix)

    def __call__(self, out: Tensor) -> Tensor:
        if out.ndim == 3:
            return out[self.unit].mean()
        return out[self.prefix:, self.unit].mean()


def reference_unit_cams(model: nn.Module, images: Tensor, units: Sequence[int], *, layer: nn.Module,
                        method: str = "gradcam") -> np.ndarray:
    """Heatmaps of units of ``layer`` by pytorch-grad-cam itself, one call per unit.

    ``<CAM class>(model=<x -> layer output>, target_layers=[layer], reshape_transform=<drop prefix tokens,
    reshape to the patch grid>)`` with :class:`UnitMeanTarget`. The oracle of
    :func:`~.units.unit_cams`, and its path for methods without an exact shortcut (``"scorecam"``).

    Returns:
        float32 array (N, K, H, W).
    """
    if method not in CAM_CLASSES:
        raise ValueError(f"method must be one of {sorted(CAM_CLASSES)}, got {method!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pytorch_grad_cam

    cls = getattr(pytorch_grad_cam, CAM_CLASSES[method])
    enc = _encoder(model)
    layer = _resolve_layer(model, layer, arg="layer")
    reshape, prefix = None, 0
    if hasattr(enc, "num_prefix_tokens"):
        prefix, (gh, gw) = enc.num_prefix_tokens, enc.patch_embed.grid_size

        def to_grid(t: Tensor) -> Tensor:
            return t[:, prefix:].reshape(t.shape[0], gh, gw, t.shape[-1]).permute(0, 3, 1, 2)

        reshape = to_grid
    with cls(model=_LayerOutput(enc, layer), target_layers=[layer], reshape_transform=reshape) as cam, \
            _quiet_score_cam(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = [cam(images, targets=[UnitMeanTarget(int(u), prefix)] * len(images)) for u in units]
    return np.stack(maps, axis=1).astype(np.float32)


class _NoBar:
    """Stands in for the ``tqdm`` module inside pytorch-grad-cam's ScoreCAM: the core prints nothing."""

    @staticmethod
    def tqdm(iterable, *args, **kwargs):
        return iterable


@contextlib.contextmanager
def _quiet_score_cam():
    from pytorch_grad_cam import score_cam

    saved = score_cam.tqdm
    score_cam.tqdm = _NoBar
    try:
        yield
    finally:
        score_cam.tqdm = saved
