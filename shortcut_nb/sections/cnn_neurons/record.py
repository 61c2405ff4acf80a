"""What notebook 03 records (``03_cnn_neurons.json``): one entry per dataset and the headline (ISIC-like).

The record's keys are declared once here (:data:`KEYS`, :data:`DATASET_KEYS`); the claims and takeaways
read nothing else. The s-score summary of each dataset is :func:`shortcut_nb.sscore.summarize_scores`
(its mean lift is named ``lift``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...bands import BAND_HIGH, BAND_LOW
from ...lastlayer.table4 import ROWS
from ...paper import PAPER_SSCORE_RANGE, PAPER_TABLE4
from ...sscore import small_map_note, summarize_scores
from ...sscore.depth import ROW_KEYS
from ...sscore.grid import ALPHA_GRID
from ...sscore.uncertainty import spread_intervals

if TYPE_CHECKING:
    from .detector_study import DetectorStudy, MaskFreeRanking
    from .study import NeuronStudy

NAME = "03_cnn_neurons"
SAMPLE_CHOICE = ("random training images with a non-empty spurious mask (Waterbirds-like: every image, the mask is "
                 "the background; ISIC-like: only images with a colour patch)")
REFIT_SET = "validation split, group-balanced subsample (every group cut to the smallest group's size)"
ACCURACY_SPLIT = "test"
#: The alphas whose band counts are recorded beside the chosen one (those on the study's grid).
SENSITIVITY_ALPHAS: tuple[float, ...] = (0.3, 0.5, 0.7)
#: What is recorded of the summary at each sensitivity alpha.
SENSITIVITY_KEYS = ("mean", "max", "band_counts", "n_above_chance")
#: The s-score summary's keys (:func:`~shortcut_nb.sscore.summarize_scores`, without a head weight).
SUMMARY_KEYS = ("scores", "d", "min", "max", "mean", "median", "std", "area", "lift", "lift_max", "band_counts",
                "above_chance", "n_above_chance", "n_above_tau", "n_high", "n_high_above_chance", "top")
#: One dataset's entry under ``datasets``.
DATASET_KEYS = ("dataset", "model", "n_samples", "sample_index", "alpha", "tau", *SUMMARY_KEYS, "table4",
                "table4_change", "table4_refit_change", "table4_errors", "pruned_neurons", "alpha_sensitivity",
                "group_names", "seconds", "target_map", "target_map_warning", "range_interval", "max_interval")
#: The record's top-level keys.
KEYS = ("profile", "seconds", "alpha", "tau", "band_edges", "alpha_grid", "sample_choice", "refit_set",
        "accuracy_split", "headline", "min", "max", "area", "wga", "datasets", "paper_table4", "paper_sscore_range",
        "runs", "weights", "depth_profile", "method_bands", "dilation_example", "per_seed", "detectors", "mask_free")
#: One dataset's entry under ``detectors`` (:func:`detector_record`); without a ground truth only the first five,
#: ``tau`` and ``pruning``.
DETECTOR_KEYS = ("dataset", "model", "available", "reason", "split", "pair_seed", "alpha", "area", "n_pairs",
                 "threshold", "n_neurons", "n_spurious", "table", "randomised", "truth", "scores", "seconds", "n_seeds",
                 "seeds", "per_seed", "tau", "pruning")
#: ``detectors.<dataset>.pruning`` (:func:`~.detector_study.detector_pruning`) and one of its ``rows``.
PRUNING_KEYS = ("k", "rule", "baseline", "refit", "rows")
PRUNING_ROW_KEYS = ("neurons", "overlap_truth", "pruned", "refit_pruned", "errors")
#: One dataset's entry under ``mask_free`` (:func:`mask_free_record`): a dataset without masks.
MASK_FREE_KEYS = ("dataset", "model", "reason", "split", "n_images", "scores", "top", "agreement")
#: One seed's entry under ``per_seed.<dataset>`` (:func:`seed_entry`): what the claims are decided on per seed.
SEED_KEYS = ("seed", "min", "max", "mean", "area", "n_high", "n_high_above_chance", "n_pruned", "wga", "wga_change",
             "refit_change", "range_interval", "max_interval")
#: One row of ``method_bands`` (:func:`~.study.method_variant_bands`).
METHOD_BAND_KEYS = ("factor", "method", "variant", "dilation", "band_counts", "mean", "max", "chance", "n_above_chance")
#: ``depth_profile.<dataset>`` (:meth:`shortcut_nb.sscore.depth.DepthProfile.record`); its rows: ``ROW_KEYS``.
DEPTH_KEYS = ("alpha", "variant", "dilation", "method", "blocks")
DEPTH_ROW_KEYS = ROW_KEYS
#: ``dilation_example`` (:func:`~.study.dilation_example`, the ISIC-like headline).
DILATION_KEYS = ("neuron", "dilation", "s", "s_dilated", "gain", "chance", "chance_dilated")

__all__ = ["ACCURACY_SPLIT", "DATASET_KEYS", "DETECTOR_KEYS", "MASK_FREE_KEYS", "PRUNING_KEYS", "PRUNING_ROW_KEYS",
           "SEED_KEYS", "seed_entry", "seed_record", "DEPTH_KEYS", "DEPTH_ROW_KEYS", "DILATION_KEYS", "KEYS",
           "METHOD_BAND_KEYS", "NAME", "REFIT_SET", "ROWS", "SAMPLE_CHOICE", "SENSITIVITY_ALPHAS", "dataset_record",
           "detector_record", "mask_free_record", "record_payload", "wgas"]


def wgas(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """The worst-group accuracy of each Table-4 row of one dataset's entry (None: the head could not be made)."""
    return table_wgas(entry["table4"])


def table_wgas(table: Mapping[str, Any]) -> dict[str, float | None]:
    """The worst-group accuracy of each row of a Table 4 (None: the head could not be made)."""
    return {row: (None if table[row] is None else table[row]["wga"]) for row in ROWS}


def dataset_record(study: NeuronStudy, *, alpha: float, tau: float, seed: int = 0,
                   sensitivity_alphas: Sequence[float] = SENSITIVITY_ALPHAS) -> dict[str, Any]:
    """Scores, bands and Table 4 of one dataset at ``alpha`` / ``tau``: the JSON-able entry the notebook records.

    ``sensitivity_alphas`` not on the study's grid are skipped. ``range_interval`` / ``max_interval``: the 95 %
    bootstrap intervals over the scored images of max − min and of the max (:func:`spread_intervals`, seeded with
    ``seed``). Keys: :data:`DATASET_KEYS`.
    """
    s = study.scores(alpha)
    table = study.table4(alpha, tau, seed)
    sens = {}
    for a in sensitivity_alphas:
        if study.has_alpha(a):
            st = summarize_scores(study.scores(a), study.area, tau=tau)
            sens[f"{a:g}"] = {k: st[k] for k in SENSITIVITY_KEYS}
    return {
        "dataset": study.dataset, "model": study.model_name, "n_samples": study.n_samples,
        "sample_index": study.sample_index.tolist(), "alpha": float(alpha), "tau": float(tau),
        **summarize_scores(s, study.area, tau=tau),
        "table4": {row: table[row] for row in ROWS}, "table4_change": table["pruned_change"],
        "table4_refit_change": table["refit_change"], "table4_errors": table["errors"],
        "pruned_neurons": table["pruned_neurons"], "alpha_sensitivity": sens,
        "group_names": list(study.group_names), "seconds": dict(study.seconds), "target_map": list(study.target_map),
        "target_map_warning": small_map_note(study.target_map, study.images.shape[-1]),
        **_spread_record(study, alpha, seed),
    }


def _spread_record(study: NeuronStudy, alpha: float, seed: int) -> dict[str, list[float] | None]:
    """``{"range_interval", "max_interval"}`` of ``study``'s neurons at ``alpha`` as JSON ``[low, high]``."""
    spread = spread_intervals(study.per_sample_at(alpha), seed=seed)
    return {f"{key}_interval": None if pair is None else list(pair) for key, pair in spread.items()}



def seed_entry(study: NeuronStudy, *, alpha: float, tau: float, seed: int) -> dict[str, Any]:
    """One seed's s-score range, Table-4 WGAs, the bootstrap intervals over test images of the pruning's ΔWGA
    (``wga_change``) and of the refits' gain over pruning (``refit_change``) at ``alpha`` / ``tau``, and the range's
    and max's bootstrap intervals over the scored images (``range_interval``, ``max_interval``) (keys:
    :data:`SEED_KEYS`); the refit's subsample is seeded with the model's seed, as the notebook's own."""
    st = summarize_scores(study.scores(alpha), study.area, tau=tau)
    table = study.table4(alpha, tau, seed)
    return {"seed": int(seed), **{k: st[k] for k in SEED_KEYS[1:7]}, "n_pruned": len(table["pruned_neurons"]),
            "wga": table_wgas(table), "wga_change": table["pruned_change"], "refit_change": table["refit_change"],
            **_spread_record(study, alpha, seed)}


def seed_record(by_seed: Mapping[str, Mapping[int, NeuronStudy]], *, alpha: float,
                tau: float) -> dict[str, list[dict[str, Any]]]:
    """``{dataset: [seed_entry(...), ...]}`` of :func:`~.study.seed_studies`' result, in its seed order."""
    return {name: [seed_entry(st, alpha=alpha, tau=tau, seed=seed) for seed, st in seeds.items()]
            for name, seeds in by_seed.items()}


def detector_record(study: DetectorStudy) -> dict[str, Any]:
    """One dataset's detectors against the ground truth (keys: :data:`DETECTOR_KEYS`; a dataset without a ground
    truth records ``dataset``, ``model``, ``available`` False, ``reason``, ``split``, ``tau`` and ``pruning`` None)."""
    return study.record()


def mask_free_record(ranking: MaskFreeRanking) -> dict[str, Any]:
    """A dataset without masks: its neurons' mask-free scores and top neurons (keys: :data:`MASK_FREE_KEYS`)."""
    return {"dataset": ranking.dataset, "model": ranking.model_name, "reason": ranking.reason, "split": "val",
            "n_images": ranking.n_images, "scores": {k: [float(v) for v in s] for k, s in ranking.scores.items()},
            "top": {k: ranking.top(k) for k in ranking.scores}, "agreement": float(ranking.agreement)}


def headline_dataset(per_dataset: Mapping[str, Any]) -> str | None:
    """The dataset notebook 03 leads with: the ISIC-like set (the paper's Table 4) when present, else the first
    (None when no dataset has masks)."""
    return "isic" if "isic" in per_dataset else next(iter(per_dataset), None)


def record_payload(results: Mapping[str, Mapping[str, Any]], *, profile: str, seconds: float, alpha: float,
                   tau: float, runs: Mapping[str, int] | None = None, weights: str | Mapping[str, str] | None = None,
                   depth: Mapping[str, Mapping[str, Any]] | None = None,
                   method_bands: Sequence[Mapping[str, Any]] | None = None,
                   dilation: Mapping[str, Any] | None = None,
                   per_seed: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                   detectors: Mapping[str, Mapping[str, Any]] | None = None,
                   mask_free: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """The numbers notebook 03 records (keys: :data:`KEYS`).

    Args:
        results: ``{dataset: dataset_record(...)}``; ``headline`` is the ISIC-like set (the paper's Table 4)
            when present.
        profile, seconds: the run's profile and wall time.
        alpha, tau: the notebook's thresholds.
        runs: ``ctx.run_log.as_record()`` (cached runs trained and loaded).
        weights: ``ctx.run_log.weights_record()`` (what the models started from).
        depth: ``{dataset: DepthProfile.record()}`` (:func:`~.study.depth_profiles`).
        method_bands: :func:`~.study.method_variant_bands` of the headline dataset.
        dilation: :func:`~.study.dilation_example` of the headline dataset.
        per_seed: ``{dataset: [seed_entry(...), ...]}``, one per trained seed (the claims are decided on each).
        detectors: ``{dataset: detector_record(...)}`` (the detectors against the counterfactual ground truth).
        mask_free: ``{dataset: mask_free_record(...)}`` (datasets without masks, ranked by the mask-free detectors).
    """
    headline = headline_dataset(results)
    h = results[headline] if headline is not None else {"min": None, "max": None, "area": None}
    return {
        "profile": profile, "seconds": float(seconds), "alpha": float(alpha), "tau": float(tau),
        "band_edges": [BAND_LOW, BAND_HIGH], "alpha_grid": list(ALPHA_GRID), "sample_choice": SAMPLE_CHOICE,
        "refit_set": REFIT_SET, "accuracy_split": ACCURACY_SPLIT, "headline": headline,
        "min": h["min"], "max": h["max"], "area": h["area"], "wga": wgas(h) if headline is not None else {},
        "datasets": {name: dict(r) for name, r in results.items()},
        "paper_table4": PAPER_TABLE4, "paper_sscore_range": list(PAPER_SSCORE_RANGE),
        "runs": dict(runs or {}),
        "weights": weights if isinstance(weights, str) or weights is None else dict(weights),
        "depth_profile": {name: dict(d) for name, d in (depth or {}).items()},
        "method_bands": [dict(r) for r in (method_bands or [])],
        "dilation_example": None if dilation is None else dict(dilation),
        "per_seed": {name: [dict(e) for e in entries] for name, entries in (per_seed or {}).items()},
        "detectors": {name: dict(e) for name, e in (detectors or {}).items()},
        "mask_free": {name: dict(e) for name, e in (mask_free or {}).items()},
    }
