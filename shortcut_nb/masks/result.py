"""A trained mask as data: logits, the deterministic binary mask they give, Prune_h / Prune_f, save and load."""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..artifacts import atomic_torch_save
from .mask import Granularity, eval_masks_of, layer_name


@dataclass
class MaskResult:
    """A trained mask: logits plus how to turn them into a deterministic binary mask.

    Attributes:
        logits: ``{parameter name: logits}`` (CPU), weight shape or (out, 1, ..., 1).
        weight_shapes: ``{parameter name: weight shape}``.
        granularity: ``"weight"`` or ``"channel"``.
        keep_target: the requested keep fraction, or ``None`` (then ``logits >= 0``).
        min_keep: entries every layer keeps at least (paper footnote 6).
        head_names: masked parameters of the classifier head (for :meth:`prune_h`).
        objective: ``"ce"`` or ``"prusc"``.
        history: one dict per step (``loss``, ``ce``, ``contrastive``, ``train_keep``, ``undecided``, ``penalty_on``,
            ``seconds``).
        settings: the training settings.
    """

    logits: dict[str, torch.Tensor]
    weight_shapes: dict[str, tuple[int, ...]]
    granularity: Granularity
    keep_target: float | None = None
    min_keep: int = 1
    head_names: tuple[str, ...] = ()
    objective: str = "ce"
    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    _cache: dict | None = field(default=None, init=False, repr=False, compare=False)

    def masks(self) -> dict[str, torch.Tensor]:
        """Deterministic evaluation masks, bool, expanded to each weight's shape (CPU)."""
        if self._cache is None:
            small = eval_masks_of(self.logits, self.weight_shapes, keep_fraction=self.keep_target, min_keep=self.min_keep)
            self._cache = {n: m.expand(self.weight_shapes[n]).clone() for n, m in small.items()}
        return {n: m.clone() for n, m in self._cache.items()}

    def apply(self, model: nn.Module) -> nn.Module:
        """A masked, frozen copy of ``model`` (same class, e.g. a SplitModel); ``model`` is untouched.

        Args:
            model: the model the mask was trained on (same parameter names and shapes).

        Returns:
            A deep copy in eval mode with ``requires_grad=False`` and pruned weights set to 0.
        """
        own = dict(model.named_parameters())
        for n, shape in self.weight_shapes.items():
            if n not in own or tuple(own[n].shape) != tuple(shape):
                raise ValueError(f"model does not fit this mask: parameter {n!r} missing or not of shape {shape}")
        masked = copy.deepcopy(model)
        params = dict(masked.named_parameters())
        with torch.no_grad():
            for n, m in self.masks().items():
                params[n].mul_(m.to(params[n].device, params[n].dtype))
        masked.requires_grad_(False)
        return masked.eval()

    def _counts(self, names: Iterable[str]) -> tuple[int, int]:
        masks = self.masks()
        kept = sum(int(masks[n].sum()) for n in names)
        total = sum(masks[n].numel() for n in names)
        return kept, total

    def keep_fraction(self) -> float:
        """Fraction of all masked weights kept."""
        kept, total = self._counts(self.weight_shapes)
        return kept / total

    def per_layer_keep(self) -> dict[str, float]:
        """``{layer name: kept fraction}`` (layer name = parameter name without ``.weight``), module order."""
        masks = self.masks()
        # exact integer counts: float32 means drift by ~1e-7 on million-weight layers
        return {layer_name(n): int(masks[n].sum()) / masks[n].numel() for n in self.weight_shapes}

    def prune_f(self) -> float:
        """Prune_f of the paper: fraction of all masked weights pruned."""
        return 1.0 - self.keep_fraction()

    def prune_h(self) -> float:
        """Prune_h of the paper: fraction of the classifier head's weights pruned."""
        kept, total = self._counts(self.head_names)
        return 1.0 - kept / total

    def state(self) -> dict:
        """Plain data (tensors, numbers, strings) that loads with ``torch.load(weights_only=True)``."""
        return {
            "logits": dict(self.logits),
            "weight_shapes": {n: list(s) for n, s in self.weight_shapes.items()},
            "granularity": self.granularity,
            "keep_target": self.keep_target,
            "min_keep": self.min_keep,
            "head_names": list(self.head_names),
            "objective": self.objective,
            "history": self.history,
            "settings": {k: v for k, v in self.settings.items() if isinstance(v, (int, float, str, bool, type(None)))},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`state` atomically (a temp file of this process, then rename)."""
        return atomic_torch_save(self.state(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MaskResult":
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls(
            logits=dict(state["logits"]),
            weight_shapes={n: tuple(s) for n, s in state["weight_shapes"].items()},
            granularity=state["granularity"],
            keep_target=state["keep_target"],
            min_keep=int(state["min_keep"]),
            head_names=tuple(state["head_names"]),
            objective=state["objective"],
            history=list(state["history"]),
            settings=dict(state["settings"]),
        )


def per_layer_keep_table(result: MaskResult) -> list[tuple[str, float, int]]:
    """Rows for a per-layer plot: ``(layer name, kept fraction, number of weights)``, module order."""
    keep = result.per_layer_keep()
    return [(layer_name(n), keep[layer_name(n)], math.prod(s)) for n, s in result.weight_shapes.items()]
