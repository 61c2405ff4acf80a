"""Neuron spurious score (s-score, paper §3.3): Grad-CAM of neurons against spurious masks.

* :mod:`.cams` — the Grad-CAM engine (exact fast paths, checked against pytorch-grad-cam) and the metric.
* :mod:`.scoring` — :func:`score_neurons`, the one way a trained model's neurons are scored on drawn samples.
* :mod:`.summary` — :func:`summarize_scores`, the one summary, read against the chance level.
"""
from .cams import (
    BANDS,
    GRADCAM_EPS,
    Band,
    Method,
    NeuronIndex,
    band_counts,
    bands,
    binarize,
    gradcam_scale,
    lift,
    mask_area,
    neuron_cams,
    neurons_in_band,
    per_sample_scores,
    reference_cams,
    s_scores,
    select_neurons,
)
from .scoring import score_neurons
from .summary import summarize_scores

__all__ = [
    "BANDS", "GRADCAM_EPS", "Band", "Method", "NeuronIndex", "band_counts", "bands", "binarize", "gradcam_scale",
    "lift", "mask_area", "neuron_cams", "neurons_in_band", "per_sample_scores", "reference_cams", "s_scores",
    "score_neurons", "select_neurons", "summarize_scores",
]
