"""Binary weight masks on frozen weights (Csordás et al.; paper §5.3): masks, training, group removal.

* :mod:`.gumbel` — the straight-through Gumbel-sigmoid sample.
* :mod:`.mask` — which weights are masked, :class:`WeightMask` (the logits over a frozen model), the eval cut.
* :mod:`.result` — :class:`MaskResult`, a trained mask (Prune_h, Prune_f, per-layer keep, save/load).
* :mod:`.train` — :func:`train_mask` (CE or PruSC-style CE + SupCon, sparsity target), :func:`supcon_loss`.
* :mod:`.removal` — :func:`exclude_groups`, :func:`train_group_removal_mask` (Fig. 7).
* :mod:`.diagnostics` — did a mask learn: :func:`undecided_share` (per step: :func:`undecided_share_of`), :func:`magnitude_overlap`.
"""
from .diagnostics import (
    UNDECIDED_CONFIDENCE,
    magnitude_mask,
    magnitude_overlap,
    undecided_share,
    undecided_share_of,
)
from .gumbel import DEFAULT_TEMPERATURE, gumbel_sigmoid
from .mask import DEFAULT_INIT_LOGIT, Granularity, WeightMask, maskable_parameters
from .removal import exclude_groups, train_group_removal_mask
from .result import MaskResult, per_layer_keep_table
from .train import (
    DEFAULT_CONTRASTIVE_TEMPERATURE,
    DEFAULT_LR,
    DEFAULT_MASK_SAMPLES,
    DEFAULT_SPARSITY_WEIGHT,
    Objective,
    supcon_loss,
    train_mask,
)

__all__ = [
    "DEFAULT_CONTRASTIVE_TEMPERATURE", "DEFAULT_INIT_LOGIT", "DEFAULT_LR", "DEFAULT_MASK_SAMPLES",
    "DEFAULT_SPARSITY_WEIGHT", "DEFAULT_TEMPERATURE", "Granularity", "Objective",
    "WeightMask", "MaskResult", "gumbel_sigmoid", "supcon_loss", "train_mask", "train_group_removal_mask",
    "exclude_groups", "per_layer_keep_table", "maskable_parameters",
    "UNDECIDED_CONFIDENCE", "magnitude_mask", "magnitude_overlap", "undecided_share", "undecided_share_of",
]
