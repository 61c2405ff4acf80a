"""What notebook 06 records (``06_vit_heads.json``): s-scores of both models per dataset, and head tables.

The record's keys are declared once here (:data:`KEYS` and the nested ``*_KEYS``); the claims and
takeaways read nothing else. Each model's s-score summary is :func:`shortcut_nb.sscore.summarize_scores`
(its band counts are named ``band_counts``) plus the model's name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from ...attention import LIFT_MIN, heads_beyond_area
from ...sscore.depth import ROW_KEYS
from ...sscore.uncertainty import LEVEL, bootstrap_means

if TYPE_CHECKING:
    from .attention_study import AttentionStudy
    from .neuron_study import ModelScores

NAME = "06_vit_heads"
#: The record's top-level keys.
KEYS = ("profile", "seconds", "alpha", "sscore", "mean_s", "attention", "runs", "weights", "depth_profile",
        "sscore_per_seed", "detectors")
#: One dataset's entry under ``detectors``: the ViT's detectors against the counterfactual ground truth
#: (:meth:`shortcut_nb.counterfactuals.DatasetDetectors.record`; without a ground truth only the first five).
DETECTOR_KEYS = ("dataset", "model", "available", "reason", "split", "pair_seed", "alpha", "area", "n_pairs",
                 "threshold", "n_neurons", "n_spurious", "table", "randomised", "truth", "scores", "seconds", "n_seeds",
                 "seeds", "per_seed")
#: One seed's entry under ``sscore_per_seed.<dataset>`` (:func:`seed_record`): each model's mean s-score, and the
#: ViT's minus the CNN's with its bootstrap interval over neurons (:func:`mean_difference`).
SEED_KEYS = ("seed", "area", "cnn", "vit", "vit_minus_cnn")
#: ``depth_profile.<dataset>`` (:meth:`shortcut_nb.sscore.depth.DepthProfile.record`); its rows: ``DEPTH_ROW_KEYS``.
DEPTH_KEYS = ("alpha", "variant", "dilation", "method", "blocks")
DEPTH_ROW_KEYS = ROW_KEYS
#: One dataset's entry under ``sscore`` (plus one entry per arch: the summary and ``"model"``).
SSCORE_KEYS = ("n_samples", "area", "alpha", "indices")
#: One dataset's entry under ``attention``.
ATTENTION_KEYS = ("model", "layers", "heads", "grid", "threshold", "n_images", "target", "core")
#: The target patch's entry (``attention.<dataset>.target``).
TARGET_KEYS = ("image", "dataset_index", "row", "col", "is_spurious", "layer", "head", "share", "area", "lift")
#: All core patches of all images (``attention.<dataset>.core``).
CORE_KEYS = ("n_images", "share", "area", "lift", "excess", "excess_lower", "lift_min", "heads_beyond_area",
             "max_lift")

__all__ = ["ATTENTION_KEYS", "CORE_KEYS", "DEPTH_KEYS", "DETECTOR_KEYS", "DEPTH_ROW_KEYS", "KEYS", "NAME", "SEED_KEYS",
           "SSCORE_KEYS",
           "TARGET_KEYS", "attention_record", "record_payload", "seed_record"]


def _nested(a: Any) -> Any:
    """numpy/torch array -> nested lists of floats (NaN -> None, so the JSON stays valid)."""
    arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a, dtype=np.float64)
    return [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in arr]


def attention_record(study: AttentionStudy, view: Mapping, lift_min: float = LIFT_MIN) -> dict:
    """One dataset's head tables: the target patch of ``view`` and all core patches (keys: :data:`ATTENTION_KEYS`)."""
    st = study.stats()
    area = view["area"]
    beyond = heads_beyond_area(st, lift_min=lift_min) if st["n_images"] else []
    return {
        "model": study.model_name,
        "layers": study.num_layers,
        "heads": study.num_heads,
        "grid": list(study.layout.grid),
        "threshold": study.threshold,
        "n_images": study.n_images,
        "target": {
            "image": view["image"],
            "dataset_index": None if study.indices is None else study.indices[view["image"]],
            "row": view["target"][0], "col": view["target"][1],
            "is_spurious": view["target_is_spurious"],
            "layer": view["layer"], "head": view["head"],
            "share": _nested(view["share"]),
            "area": area,
            "lift": _nested(view["share"].double() / area) if area > 0 else None,
        },
        "core": {
            "n_images": st["n_images"],
            "share": _nested(st["share"]),
            "area": st["area"] if np.isfinite(st["area"]) else None,
            "lift": _nested(st["lift"]),
            "excess": _nested(st["excess"]),
            "excess_lower": _nested(st["lower"]),
            "lift_min": lift_min,
            "heads_beyond_area": [list(lh) for lh in beyond],
            "max_lift": None if not np.isfinite(st["lift"]).any() else float(np.nanmax(st["lift"])),
        },
    }


def mean_difference(study: ModelScores, *, level: float = LEVEL) -> dict[str, float] | None:
    """The ViT's mean s-score minus the CNN's, ``{"value", "low", "high"}``: a percentile bootstrap over neurons,
    each model's (d,) s-scores resampled on their own (None unless both models were scored)."""
    if not {"cnn", "vit"} <= set(study.archs):
        return None
    vit, cnn = (np.asarray(study.scores[arch], dtype=np.float64) for arch in ("vit", "cnn"))
    diff = bootstrap_means(vit, seed=0)[:, 0] - bootstrap_means(cnn, seed=1)[:, 0]
    low, high = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return {"value": float(vit.mean() - cnn.mean()), "low": float(low), "high": float(high)}


def seed_record(by_seed: Mapping[str, Mapping[int, ModelScores]]) -> dict[str, list[dict[str, Any]]]:
    """``{dataset: [{"seed", "area", "cnn", "vit", "vit_minus_cnn"}, ...]}``: each seed's mean s-score per model
    (keys: :data:`SEED_KEYS`; a model not scored is None) and :func:`mean_difference`, from
    :func:`~.neuron_study.seed_studies`."""
    return {ds: [{"seed": int(seed), "area": st.area,
                  **{arch: (st.stats(arch)["mean"] if arch in st.archs else None) for arch in ("cnn", "vit")},
                  "vit_minus_cnn": mean_difference(st)}
                 for seed, st in seeds.items()] for ds, seeds in by_seed.items()}


def record_payload(
    neuron_studies: Sequence[ModelScores],
    attention: Mapping[str, tuple[AttentionStudy, Mapping]],
    *,
    profile: str,
    seconds: float,
    lift_min: float = LIFT_MIN,
    runs: Mapping[str, int] | None = None,
    weights: str | Mapping[str, str] | None = None,
    depth: Mapping[str, Mapping[str, Any]] | None = None,
    per_seed: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    detectors: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict:
    """The numbers notebook 06 records (keys: :data:`KEYS`).

    Args:
        neuron_studies: one :class:`~.neuron_study.ModelScores` per dataset.
        attention: per dataset, ``(AttentionStudy, target_view(...))``.
        profile: the profile run.
        seconds: wall time of the notebook so far.
        lift_min: the lift a head needs in :func:`~shortcut_nb.attention.heads_beyond_area`.
        runs: ``ctx.run_log.as_record()`` (cached runs trained and loaded).
        weights: ``ctx.run_log.weights_record()`` (what the models started from).
        depth: ``{dataset: DepthProfile.record()}`` of the ViT (:func:`~.neuron_study.vit_depth_profiles`).
        per_seed: :func:`seed_record` of every trained seed (the s-score claim is decided on each).
        detectors: ``{dataset: DatasetDetectors.record()}`` of the ViT (:func:`~.detector_study.detector_studies`).

    Returns:
        ``{"profile", "seconds", "alpha", "sscore": {dataset: ModelScores.summary()},
        "mean_s": {"<dataset>/<arch>": mean}, "attention": {dataset: {..., "target": {...},
        "core": {...}}}, "runs", "weights", "depth_profile", "sscore_per_seed", "detectors"}``.
    """
    if not neuron_studies:
        raise ValueError("neuron_studies must hold at least one ModelScores")
    alphas = {st.alpha for st in neuron_studies}
    return {
        "profile": profile,
        "seconds": float(seconds),
        "alpha": alphas.pop() if len(alphas) == 1 else sorted(alphas),
        "sscore": {st.dataset: st.summary() for st in neuron_studies},
        "mean_s": {f"{st.dataset}/{arch}": st.stats(arch)["mean"] for st in neuron_studies for arch in st.archs},
        "attention": {ds: attention_record(study, view, lift_min) for ds, (study, view) in attention.items()},
        "runs": dict(runs or {}),
        "weights": weights if isinstance(weights, str) or weights is None else dict(weights),
        "depth_profile": {ds: dict(d) for ds, d in (depth or {}).items()},
        "sscore_per_seed": {ds: [dict(e) for e in entries] for ds, entries in (per_seed or {}).items()},
        "detectors": {ds: dict(e) for ds, e in (detectors or {}).items()},
    }
