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
"""
from .detectors import group_gap, mask_free_detectors, spuriosity
from .effects import (
    GroundTruth,
    activations,
    ground_truth,
    logit_effects,
    neuron_effects,
    spurious_share,
    standardised_change,
)
from .pairs import Flipped, Pairs, composite_region, pairs
from .randomise import last_block, randomised_copy
from .scoring import Interval, auroc, detector_metrics, detector_table, precision_at_k, seed_interval, spearman

__all__ = [
    "Flipped", "GroundTruth", "Interval", "Pairs", "activations", "auroc", "composite_region", "detector_metrics",
    "detector_table", "ground_truth", "group_gap", "last_block", "logit_effects", "mask_free_detectors",
    "neuron_effects", "pairs", "precision_at_k", "randomised_copy", "seed_interval", "spearman", "spuriosity",
    "spurious_share", "standardised_change",
]
