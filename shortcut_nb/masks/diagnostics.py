"""Did a mask learn? Logits still undecided at the end, and how far its cut is from magnitude pruning's.

A short mask run that starts from magnitude-ordered logits (``init_spread``) can end where it started: its cut
is then magnitude pruning, whatever its objective. Two numbers tell (issue 16):

* :func:`undecided_share`: the share of masked weights whose keep probability ``σ(logit)`` is still between
  ``1 - c`` and ``c`` (default ``c = 0.9``): near 1 after a run that barely moved, near 0 once training decided.
* :func:`magnitude_overlap`: the share of the mask's kept weights that magnitude pruning of the same size (the
  same cut rule, :func:`~.mask.eval_masks_of`, on ``|w|``) keeps too. 1 is the magnitude cut itself; a random
  cut of keep fraction ``k`` overlaps about ``k``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from .mask import eval_masks_of
from .result import MaskResult

#: A keep probability σ(logit) in (1 - c, c) is "undecided" (|logit| < ln 9 for c = 0.9).
UNDECIDED_CONFIDENCE = 0.9


def undecided_share_of(logits: Mapping[str, torch.Tensor], weight_shapes: Mapping[str, tuple[int, ...]], *,
                       confidence: float = UNDECIDED_CONFIDENCE) -> float:
    """Share of masked weights (weight-counted) whose keep probability ``σ(logit)`` lies strictly in (1 - c, c).

    Args:
        logits: ``{parameter: logits}``, each the weight's shape (one logit per weight) or one per output row.
        weight_shapes: ``{parameter: weight shape}``; a row logit counts once per weight of its row.
        confidence: c in (0.5, 1).
    """
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    bound = math.log(confidence / (1.0 - confidence))
    undecided = total = 0
    for name, values in logits.items():
        per_logit = math.prod(weight_shapes[name]) // values.numel()  # 1, or a channel's weights
        undecided += int((values.detach().float().abs() < bound).sum()) * per_logit
        total += values.numel() * per_logit
    return undecided / total


def undecided_share(result: MaskResult, *, confidence: float = UNDECIDED_CONFIDENCE) -> float:
    """:func:`undecided_share_of` a trained mask's final logits."""
    return undecided_share_of(result.logits, result.weight_shapes, confidence=confidence)


def magnitude_mask(result: MaskResult, model: nn.Module) -> dict[str, torch.Tensor]:
    """Magnitude pruning of the same size as ``result`` (bool masks, weight shapes): the same cut rule on |w|
    (a channel mask: on the channel's mean |w|), keeping ``result.keep_fraction()`` of the weights."""
    params = dict(model.named_parameters())
    scores = {}
    for name, logits in result.logits.items():
        w = params[name].detach().abs().float().cpu()
        scores[name] = w if logits.shape == w.shape else w.reshape(w.shape[0], -1).mean(1).reshape(logits.shape)
    small = eval_masks_of(scores, result.weight_shapes, keep_fraction=result.keep_fraction(),
                          min_keep=result.min_keep)
    return {n: m.expand(result.weight_shapes[n]) for n, m in small.items()}


def magnitude_overlap(result: MaskResult, model: nn.Module) -> float:
    """Share of the mask's kept weights that magnitude pruning of the same size keeps too (1: the same cut)."""
    ours, magnitude = result.masks(), magnitude_mask(result, model)
    kept = sum(int(m.sum()) for m in ours.values())
    both = sum(int((ours[n] & magnitude[n]).sum()) for n in ours)
    return both / kept if kept else float("nan")
