"""Attention maths for ViTs: token layout, attention maps per layer and head, shares on spurious patches.

* :mod:`.tokens` — the token layout, masks on the patch grid, the default core target patch.
* :mod:`.maps` — attention matrices off a forward pass, one query's row over the grid.
* :mod:`.shares` — each head's share of attention on spurious patches, the area baseline, lifts.
* :mod:`.heads` — per-image shares, head statistics with a paired test, heads beyond the area.
"""
from .heads import LIFT_MIN, Z_ONE_SIDED, head_statistics, heads_beyond_area, per_image_shares
from .maps import Target, attention_maps, layer_mean, patch_attention, unfused_attention, upsample_to_image
from .shares import (
    Query,
    attention_lift,
    head_values,
    heads_above_chance,
    spurious_area_share,
    spurious_attention_share,
)
from .tokens import (
    SizeLike,
    TokenLayout,
    default_target_patch,
    mask_to_patches,
    num_layers_heads,
    spurious_patches,
    token_layout,
)

__all__ = [
    "LIFT_MIN", "Z_ONE_SIDED", "head_statistics", "heads_beyond_area", "per_image_shares",
    "Target", "attention_maps", "layer_mean", "patch_attention", "unfused_attention", "upsample_to_image",
    "Query", "attention_lift", "head_values", "heads_above_chance", "spurious_area_share",
    "spurious_attention_share",
    "SizeLike", "TokenLayout", "default_target_patch", "mask_to_patches", "num_layers_heads", "spurious_patches",
    "token_layout",
]
