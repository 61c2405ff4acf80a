"""The straight-through Gumbel-sigmoid: how a binary mask is sampled during training (Csordás et al. 2021).

Masks are sampled with logistic noise at temperature 1 and binarised with a straight-through
estimator: hard 0/1 forward, the soft sigmoid's gradient backward (their ``gumbel_sigmoid(..., hard=True)``).
"""
from __future__ import annotations

import torch

DEFAULT_TEMPERATURE = 1.0  # gumbel_sigmoid(tau=1)


def gumbel_sigmoid(
    logits: torch.Tensor, *, temperature: float = DEFAULT_TEMPERATURE, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Straight-through Gumbel-sigmoid sample of a binary mask.

    ``soft = sigmoid((logits + L) / temperature)`` with logistic noise
    ``L = log u - log(1 - u)`` (the difference of two Gumbels, as in Csordás et
    al.); the forward value is ``hard = (soft > 0.5)`` and the gradient is the
    soft sample's.

    Args:
        logits: any shape.
        temperature: > 0.
        generator: random generator on ``logits.device`` (for reproducibility).

    Returns:
        Tensor like ``logits`` with values exactly 0.0 or 1.0.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    u = u.clamp(1e-6, 1 - 1e-6)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    return _StraightThrough.apply(soft)


class _StraightThrough(torch.autograd.Function):
    """Forward: exactly ``soft > 0.5`` as 0/1; backward: the identity (the soft sample's gradient).

    ``hard + soft - soft.detach()`` would leave values like 0.99999994 after rounding.
    """

    @staticmethod
    def forward(ctx, soft: torch.Tensor) -> torch.Tensor:
        return (soft > 0.5).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad
