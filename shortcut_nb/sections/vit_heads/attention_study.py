"""Notebook 06, §6.2 / Fig. 9: where a ViT's attention heads look, against the spurious patches' area.

For one target patch of one image, the row of every layer's and head's attention matrix, as
heatmaps over the image (per-layer mean over heads, and all heads of one layer). Beyond the
paper: the share of each head's attention mass (over patch tokens) that lands on spurious
patches, as a layer x head table, next to the spurious patches' share of the grid (what a head
that ignores the image would put there); and the same averaged over *every* core patch of every
sampled image, with a paired per-image test, to say which heads attend from core patches to the
spurious region more than its area explains. The maths is :mod:`shortcut_nb.attention`.
Layer and head indices are 0-based (the paper counts from 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...attention import (
    TokenLayout,
    attention_maps,
    default_target_patch,
    head_statistics,
    head_values,
    layer_mean,
    patch_attention,
    per_image_shares,
    spurious_attention_share,
    spurious_patches,
    token_layout,
)
from ...attention.heads import check_masks
from ...config import model_device
from .neuron_study import check_image_index

__all__ = ["AttentionStudy", "attention_study", "target_view", "target_caption", "target_values"]


@dataclass
class AttentionStudy:
    """Attention of a ViT on a data set's scored images: full maps for a few examples, shares for all.

    Attributes:
        dataset: dataset label.
        model_name: display name of the ViT.
        layout: token layout of the model.
        images: (E, 3, H, W) example images (CPU).
        masks: (E, H, W) their spurious masks.
        attn: (E, L, H, T, T) their attention matrices (CPU float32).
        shares: (M, L, H) per-image share of core-patch attention on spurious patches (all scored images).
        areas: (M,) per-image spurious area (patch share of the grid).
        used: the M image indices that have both core and spurious patches.
        n_images: images given.
        threshold: patch-labelling threshold.
        indices: dataset indices of the example images, when known.
    """

    dataset: str
    model_name: str
    layout: TokenLayout
    images: Tensor
    masks: Tensor
    attn: Tensor
    shares: Tensor
    areas: Tensor
    used: list[int]
    n_images: int
    threshold: float
    indices: list[int] | None = None
    _stats: dict | None = field(default=None, repr=False)

    @property
    def num_layers(self) -> int:
        return int(self.attn.shape[1])

    @property
    def num_heads(self) -> int:
        return int(self.attn.shape[2])

    def stats(self) -> dict[str, Any]:
        """:func:`~shortcut_nb.attention.head_statistics` of the core-patch shares (cached)."""
        if self._stats is None:
            self._stats = head_statistics(self.shares, self.areas)
        return self._stats


def attention_study(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    dataset: str = "custom",
    model_name: str | None = None,
    n_examples: int = 4,
    threshold: float = 0.5,
    batch_size: int = 8,
    indices: Sequence[int] | None = None,
) -> AttentionStudy:
    """Attention maps of the first ``n_examples`` images, and core → spurious shares over all images.

    Args:
        model: a ViT SplitModel.
        images: (N, 3, H, W) images (e.g. the s-score samples, ``ModelScores.images``).
        masks: (N, H, W) bool spurious masks.
        dataset: a label.
        model_name: display name (default: ``model.name``).
        n_examples: images kept with their full attention (for the Fig. 9 maps and the widget).
        threshold: a patch is spurious when more than this fraction of it is.
        batch_size: images per forward pass.
        indices: dataset indices of ``images``, stored for the examples.

    Returns:
        An :class:`AttentionStudy`.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ValueError(f"n_examples must be a positive int, got {n_examples!r}")
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) tensor, "
                         f"got {getattr(images, 'shape', type(images))}")
    masks = check_masks(masks, images.shape[0])
    layout = token_layout(model)
    e = min(n_examples, images.shape[0])
    attn = attention_maps(model, images[:e].to(model_device(model))).cpu()
    shares, areas, used = per_image_shares(model, images, masks, query="core", threshold=threshold,
                                           batch_size=batch_size)
    return AttentionStudy(dataset=dataset, model_name=model_name or getattr(model, "name", "vit"), layout=layout,
                          images=images[:e].cpu(), masks=masks[:e].cpu(), attn=attn, shares=shares, areas=areas,
                          used=used, n_images=int(images.shape[0]), threshold=float(threshold),
                          indices=None if indices is None else [int(i) for i in list(indices)[:e]])


def _check_layer_head(study: AttentionStudy, layer: int | None, head: int | None) -> tuple[int, int | None]:
    L, H = study.num_layers, study.num_heads
    if layer is None:
        layer = L - 1
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < L:
        raise ValueError(f"layer must be an int in [0, {L}), got {layer!r}")
    if head is not None and (isinstance(head, bool) or not isinstance(head, (int, np.integer))
                             or not 0 <= int(head) < H):
        raise ValueError(f"head must be None (mean over heads) or an int in [0, {H}), got {head!r}")
    return int(layer), None if head is None else int(head)


def target_view(study: AttentionStudy, *, image: int = 0, row: int | None = None, col: int | None = None,
                layer: int | None = None, head: int | None = None) -> dict:
    """Fig. 9 for one target patch: its attention row per layer and head, and the share on spurious patches.

    Args:
        study: from :func:`attention_study`.
        image: index into the study's example images.
        row, col: target patch (default :func:`~shortcut_nb.attention.default_target_patch`; both or neither).
        layer: the layer whose heads are shown one by one (default: the last).
        head: the selected head (None: the mean over heads).

    Returns:
        ``{"dataset", "model", "image", "target" (row, col), "target_is_spurious", "layer", "head",
        "maps" (L, H, gh, gw) attention over patches (renormalised to sum 1, prefix tokens'
        share removed), "layer_means" (L, gh, gw), "share" (L, H) tensor: share of the
        target's attention on spurious patches, "area" (spurious patches' share of the
        grid), "selected_share", "selected_lift" (None when area is 0), "image_tensor",
        "mask", "layout", "text"}``.
    """
    image = check_image_index(int(study.images.shape[0]), image)
    layer, head = _check_layer_head(study, layer, head)
    if (row is None) != (col is None):
        raise ValueError(f"give both row and col of the target patch, or neither (got row={row!r}, col={col!r})")
    layout = study.layout
    if row is None:
        row, col = default_target_patch(study.masks[image], layout, threshold=study.threshold)
    for name, v, n in (("row", row, layout.grid[0]), ("col", col, layout.grid[1])):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < n:
            raise ValueError(f"{name} must be an int in [0, {n}) (the patch grid is {layout.grid}), got {v!r}")
    row, col = int(row), int(col)
    a = study.attn[image:image + 1]
    maps = patch_attention(a, layout, (row, col), renormalize=True)[0]  # (L, H, gh, gw)
    spur = spurious_patches(study.masks[image][None], layout, study.threshold)  # (1, P)
    share = spurious_attention_share(a, spur, layout, query=(row, col))  # (L, H)
    area = float(spur.float().mean())
    sel = float(share[layer].mean()) if head is None else float(share[layer, head])
    view = {
        "dataset": study.dataset, "model": study.model_name, "image": image, "target": (row, col),
        "target_is_spurious": bool(spur[0, row * layout.grid[1] + col]), "layer": layer, "head": head,
        "maps": maps, "layer_means": layer_mean(maps[None])[0], "share": share, "area": area,
        "selected_share": sel, "selected_lift": sel / area if area > 0 else None,
        "image_tensor": study.images[image], "mask": study.masks[image], "layout": layout,
    }
    view["text"] = target_caption(view)
    return view


def target_caption(view: Mapping) -> str:
    """One line naming the selection (image, target patch, layer, head) and its share against the area."""
    r, c = view["target"]
    kind = "spurious" if view["target_is_spurious"] else "core"
    who = "mean over heads" if view["head"] is None else f"head {view['head']}"
    head = f"image {view['image']} · target patch ({r}, {c}) [{kind}] · layer {view['layer']} · {who}: "
    if view["area"] <= 0:
        return head + f"{view['selected_share']:.2f} on spurious patches — this image has no spurious patch."
    return head + (f"{view['selected_share']:.2f} of its attention on spurious patches vs their area "
                   f"{view['area']:.2f} (lift {view['selected_lift']:.2f}×)")


def target_values(view: Mapping, value: Literal["share", "lift", "excess"] = "share") -> torch.Tensor:
    """(L, H) cells of the target patch's table: share on spurious patches, lift or excess over the area."""
    if value != "share" and view["area"] <= 0:
        raise ValueError(f"value={value!r} needs spurious patches in the image (its area is 0)")
    return head_values(view["share"], view["area"] if view["area"] > 0 else None, value=value)
