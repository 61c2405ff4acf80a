"""Last-layer methods on penultimate features: DFR, group-balanced refits, zeroing neurons, Prune_h, the head metric.

Import from this package (its modules may be split further); every function is pure over arrays/tensors.
"""
from .dfr import (
    DFR_C_GRID,
    DFRResult,
    WeightEdit,
    fit_dfr,
    group_balanced_indices,
    logistic_to_linear,
    make_logistic_regression,
    mean_used_sscore,
    prune_h,
    refit_last_layer,
    single_weight_edit,
    used_neurons,
    zero_neurons,
)
from .heads import head_metrics

__all__ = [
    "DFR_C_GRID", "DFRResult", "WeightEdit", "fit_dfr", "group_balanced_indices", "head_metrics",
    "logistic_to_linear", "make_logistic_regression", "mean_used_sscore", "prune_h", "refit_last_layer",
    "single_weight_edit", "used_neurons", "zero_neurons",
]
