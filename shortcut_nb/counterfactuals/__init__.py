"""Counterfactual ground truth for neuron-level shortcut detectors.

Which penultimate neurons does a model's spurious attribute move, and which its core? Flip one factor of an
image, everything else equal, and measure each neuron's change: that is a causal ground truth that neither the
s-score (heatmaps on masks) nor a mask-free detector reads, so detectors can be scored against it.

* :mod:`.pairs` — :func:`pairs`: images and their counterfactuals (the synthetic benchmark re-renders an item
  with its spurious attribute or its core flipped; a real folder with masks composites the spurious region of
  an image of another attribute value, Waterbirds' own construction). :mod:`.rerender` does the rendering.
* :mod:`.effects` — :func:`neuron_effects` (each unit's mean absolute change, in its own standard deviations),
  :func:`spurious_share`, :func:`logit_effects`, :func:`ground_truth`.
* :mod:`.detectors` — mask-free detectors: :func:`group_gap` (attribute labels), :func:`spuriosity` (Moayeri et
  al.; class labels only).
* :mod:`.scoring` — Spearman, AUROC, precision@k of a detector against the truth, with bootstrap intervals over
  neurons (:func:`detector_metrics`, :func:`detector_table`) and over seeds (:func:`seed_interval`).
* :mod:`.randomise` — Adebayo et al.'s sanity check: :func:`randomised_copy` (last block, or all weights).
* :mod:`.evaluation` — all of it on one model: :func:`evaluate_detectors` (truth, the mask-free detectors from the
  same forward passes, any mask-based scorers such as the s-score, metrics, randomisation), :func:`seed_table`
  over seeds, :func:`top_neurons` (a detector's pick).
"""
from .detectors import detectors_from_activations, group_gap, mask_free_detectors, spuriosity
from .effects import (
    GroundTruth,
    activations,
    ground_truth,
    logit_effects,
    neuron_effects,
    spurious_share,
    standardised_change,
    truth_from_activations,
)
from .evaluation import (
    MASK_FREE,
    DatasetDetectors,
    DetectorEvaluation,
    Scorer,
    evaluate_detectors,
    seed_table,
    seeds_record,
    sscore_key,
    survives,
    top_neurons,
)
from .pairs import Flipped, Pairs, composite_region, core_flip_unavailable, pairs
from .randomise import last_block, randomised_copy
from .scoring import Interval, auroc, detector_metrics, detector_table, precision_at_k, seed_interval, spearman

__all__ = [
    "activations", "auroc", "composite_region", "core_flip_unavailable", "DatasetDetectors", "detector_metrics",
    "detector_table", "DetectorEvaluation", "detectors_from_activations", "evaluate_detectors", "Flipped",
    "ground_truth", "GroundTruth", "group_gap", "Interval", "last_block", "logit_effects", "MASK_FREE",
    "mask_free_detectors", "neuron_effects", "Pairs", "pairs", "precision_at_k", "randomised_copy", "Scorer",
    "seed_interval", "seed_table", "seeds_record", "spearman", "spuriosity", "spurious_share", "sscore_key",
    "standardised_change", "survives", "top_neurons", "truth_from_activations",
]
