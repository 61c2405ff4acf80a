"""Helpers of the s-score tests (tests/sscore/): models with non-trivial Grad-CAMs, the reference comparison."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from shortcut_nb import sscore
from shortcut_nb.models import SplitModel
from shortcut_nb.sscore import gradients

TOL = 1e-4
ALPHAS = (0.3, 0.5, 0.7)


def trained_like(model: nn.Module) -> nn.Module:
    """Random norm parameters and statistics, in eval mode.

    timm zero-initialises the last BatchNorm of every residual block, so at init no
    gradient flows through a residual branch and mid-block Grad-CAMs are all zero:
    a test on such a model would compare zeros with zeros.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.uniform_(0.7, 1.3)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def assert_matches_reference(ours: torch.Tensor, ref: np.ndarray) -> None:
    """Maps within 1e-4; binarised maps identical except at float ties.

    Two exact computations of the same map differ by float rounding (~1e-6 here), so a
    pixel whose value lies within that of alpha can land on either side. We accept a
    differing pixel only when the reference value is within TOL of alpha, and only a
    handful of them.
    """
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == ref.shape
    assert (ref.reshape(-1, ref.shape[-2] * ref.shape[-1]).max(1) > 0.5).mean() >= 0.5, "degenerate (zero) maps"
    diff = np.abs(ours_np - ref)
    assert diff.max() <= TOL, f"max |ours - reference| = {diff.max():.2e}"
    for alpha in ALPHAS:
        b_ours = sscore.binarize(ours, alpha).cpu().numpy()
        differ = b_ours != (ref >= np.float32(alpha))
        assert np.all(np.abs(ref[differ] - alpha) <= TOL), "a binarised pixel differs away from the threshold"
        assert differ.sum() <= max(2, differ.size // 100_000), f"{differ.sum()} tie pixels at alpha={alpha}"


def method_used(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> str:
    """The path "auto" takes for all neurons (what s_scores asks for)."""
    return gradients._raw_cams(model, layer, images, None, method="auto", chunk_size=None)[1]


def refuse(*args: object, **kwargs: object) -> torch.Tensor:
    """Stands in for a reverse path that must not be taken (monkeypatched over it)."""
    raise gradients._NoBroadcast("refused in this test")


class ToyCNN(nn.Module):
    """A plain nn.Sequential-style CNN ending in nn.AdaptiveAvgPool2d + Flatten (no timm)."""

    def __init__(self, inplace_last: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.act2 = nn.ReLU(inplace=inplace_last)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.bn2(self.conv2(self.act1(self.conv1(x)))))
        return self.flat(self.pool(x))


def toy_model(inplace_last: bool = False) -> SplitModel:
    return trained_like(SplitModel(ToyCNN(inplace_last), nn.Linear(12, 2), name="toy", kind="cnn"))


def all_hooks(model: nn.Module) -> int:
    """Hooks left on any submodule (must be 0 after every call)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
