"""Last-layer methods on penultimate features: DFR, group-balanced refits, zeroing neurons, Prune_h, the head metric.

Import from this package; every function is pure over arrays/tensors. By concept:

* :mod:`.logistic` — a logistic regression in the installed sklearn's spelling, folded into an ``nn.Linear``.
* :mod:`.dfr` — Deep Feature Reweighting (the authors' procedure: balanced subsamples, C tuning, averaged refits).
* :mod:`.fallback` — DFR on a small validation set (groups missing, C not tunable), with notes.
* :mod:`.pruning` — Prune_h, the neurons a head uses and their mean s-score.
* :mod:`.refit` — Table 4's group-balanced refit of the head and zeroing of neurons.
* :mod:`.edit` — the single-weight edit (our reading of Hakemi et al.).
* :mod:`.selection` — influence-weighted s-score and the kept-vs-random-subset test.
* :mod:`.heads` — :func:`head_metrics`, the one head metric on features, and :func:`head_predictions`.
"""
from .dfr import DFR_C_GRID, DFRResult, fit_dfr, group_balanced_indices
from .edit import WeightEdit, single_weight_edit
from .fallback import fit_dfr_checked
from .heads import head_metrics, head_predictions
from .logistic import logistic_to_linear, make_logistic_regression
from .pruning import mean_used_sscore, prune_h, used_neurons
from .refit import refit_last_layer, zero_neurons
from .selection import check_scores, decision_weights, influence_weighted_sscore, selection_test

__all__ = [
    "DFR_C_GRID", "DFRResult", "WeightEdit", "check_scores", "decision_weights", "fit_dfr", "fit_dfr_checked",
    "group_balanced_indices", "head_metrics", "head_predictions", "influence_weighted_sscore", "logistic_to_linear",
    "make_logistic_regression", "mean_used_sscore", "prune_h", "refit_last_layer", "selection_test",
    "single_weight_edit", "used_neurons", "zero_neurons",
]
