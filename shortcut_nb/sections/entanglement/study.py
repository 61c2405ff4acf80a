"""Notebook 04's study: baseline head vs DFR vs a single-weight edit, per trained model, on fixed features.

DFR (:func:`shortcut_nb.lastlayer.fit_dfr`) keeps ``f_enc`` frozen and refits the
classifier as an L1 logistic regression on the group-labelled validation set.
The paper reads three numbers off it: worst-group accuracy goes up a lot, many
classifier weights become zero (Prune_h), and the mean s-score of the neurons
the classifier still uses barely moves. Because ``f_enc`` is unchanged, every
neuron keeps its s-score; DFR can only change *which* neurons the head reads and
with what weight. This module measures exactly that, per trained model:

* **Baseline** -- the trained head (dense: Prune_h 0, all ``d`` neurons used).
* **DFR** -- tuned C (with a fixed-C fallback when the tuning halves of a small
  validation set miss a group, :func:`shortcut_nb.lastlayer.fit_dfr_checked`) and a
  sweep over the C grid, each with Prune_h of the deployed, *averaged* head and the
  mean Prune_h of the individual L1 refits.
* **Single-weight edit** -- the one weight of the trained head whose edit most
  raises validation worst-group accuracy (our reading of Hakemi et al., [9]).
* For every head: mean s-score of the neurons it uses, an *influence-weighted*
  mean and a random-subset test of the kept neurons
  (:mod:`shortcut_nb.lastlayer.selection`).

All heads are evaluated on the test split's penultimate features (the feature cache,
:meth:`Context.features`), which is exact because ``model(x) == head(f_enc(x))``.
Neuron s-scores: :meth:`Context.masked_samples` (the one draw) scored by
:func:`shortcut_nb.sscore.score_neurons`, summarised by :func:`shortcut_nb.sscore.summarize_scores`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...lastlayer import (
    DFR_C_GRID,
    DFRResult,
    check_scores,
    fit_dfr_checked,
    head_metrics,
    head_predictions,
    influence_weighted_sscore,
    prune_h,
    selection_test,
    single_weight_edit,
    used_neurons,
)
from ...metrics import mean_std, wga_change_interval
from ...pipeline.context import Context
from ...pipeline.feature_cache import FeatureSet
from ...pipeline.runs import RunSpec
from ...progress import progress
from ...sscore import score_neurons, summarize_scores
from ...vocab import ARCHS, DATASETS, N_GROUPS, Arch, DatasetName
from .record import c_key

__all__ = ["StudySettings", "ModelResults", "default_n_refits", "analyze_heads", "sscore_entry", "analyze_model",
           "collect_results", "aggregate_runs", "entanglement_study", "model_specs", "planned_runs"]


def default_n_refits(profile: str) -> int:
    """DFR refits averaged per head: the authors' 20, 5 in the smoke profile (its validation set is tiny)."""
    return 5 if profile == "smoke" else 20


@dataclass(frozen=True)
class StudySettings:
    """The notebook's parameters with the profile's defaults filled in (recorded as ``settings``)."""

    datasets: tuple[DatasetName, ...] = DATASETS
    archs: tuple[Arch, ...] = ARCHS
    seeds: tuple[int, ...] = (0,)
    alpha: float = 0.5
    sscore_samples: int = 50
    sample_seed: int = 0
    c_grid: tuple[float, ...] = DFR_C_GRID
    n_refits: int = 20
    fallback_C: float = 1.0
    edit_scales: tuple[float, ...] = (0.0,)
    band_draws: int = 2000

    @classmethod
    def resolve(cls, ctx: Context, *, datasets: Sequence[DatasetName] = DATASETS, archs: Sequence[Arch] = ARCHS,
                seeds: Sequence[int] | None = None, alpha: float = 0.5, sscore_samples: int | None = None,
                sample_seed: int = 0, c_grid: Sequence[float] | None = None, n_refits: int | None = None,
                fallback_C: float = 1.0, edit_scales: Sequence[float] = (0.0,),
                band_draws: int = 2000) -> "StudySettings":
        """None means the profile's: its seeds, its s-score samples, the authors' C grid, :func:`default_n_refits`."""
        ps = ctx.settings
        seeds = tuple(ps.seeds if seeds is None else seeds)
        if not seeds:
            raise ValueError("seeds must name at least one trained run")
        return cls(datasets=tuple(datasets), archs=tuple(archs), seeds=seeds, alpha=alpha,
                   sscore_samples=int(sscore_samples or ps.sscore_samples), sample_seed=sample_seed,
                   c_grid=tuple(DFR_C_GRID if c_grid is None else c_grid),
                   n_refits=int(n_refits or default_n_refits(ctx.profile)), fallback_C=fallback_C,
                   edit_scales=tuple(edit_scales), band_draws=band_draws)

    def as_record(self) -> dict:
        return {"datasets": list(self.datasets), "archs": list(self.archs), "seeds": list(self.seeds),
                "alpha": self.alpha, "sscore_samples": self.sscore_samples, "sample_seed": self.sample_seed,
                "c_grid": list(self.c_grid), "n_refits": self.n_refits, "fallback_C": self.fallback_C,
                "edit_scales": list(self.edit_scales), "band_draws": self.band_draws}


@dataclass
class ModelResults:
    """One ``"<dataset>/<arch>"`` model over its seeds: the per-seed runs (JSON-able) and their aggregate.

    Every run is :func:`analyze_model`'s dict plus ``dataset``, ``arch``, ``model``, ``seed``;
    ``summary`` is :func:`aggregate_runs` of them.
    """

    dataset: str
    arch: str
    model: str
    seeds: list[int] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.arch}"


Results = dict[str, ModelResults]


# --------------------------------------------------------------------------- measuring the heads


def _zyg(features: FeatureSet, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z float64 (N, d), y (N,), g (N,))`` of a FeatureSet, checked."""
    if not isinstance(features, Mapping) or not {"z", "y", "g"} <= set(features):
        raise TypeError(f"{name} must be a FeatureSet with 'z' (N, d), 'y' (N,) and 'g' (N,)")
    z = np.asarray(features["z"], dtype=np.float64)
    y = np.asarray(features["y"], dtype=np.int64).reshape(-1)
    g = np.asarray(features["g"], dtype=np.int64).reshape(-1)
    if z.ndim != 2 or len(z) != len(y) or len(y) != len(g):
        raise ValueError(f"{name}: z must be (N, d) with y and g of length N, got {z.shape}, {y.shape}, {g.shape}")
    return z, y, g


def _mean_s(scores: np.ndarray, used: np.ndarray) -> float | None:
    return float(scores[used].mean()) if used.any() else None


def _dfr_summary(res: DFRResult, notes: list[str], *, tuned: bool, scores: np.ndarray, test, feature_std,
                 train_group_counts, band_draws: int, seed: int) -> dict:
    lin = res.to_linear(dtype=torch.float64)
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    z, y, g = test
    out = head_metrics(W, b, z, y, g, train_group_counts=train_group_counts)
    kept = used_neurons(res.coef)
    refit_used = np.stack([used_neurons(c) for c in res.refit_coefs])  # (n_refits, d)
    refit_means = [m for m in (_mean_s(scores, u) for u in refit_used) if m is not None]
    out.update({
        "C": float(res.C),
        "tuned": bool(tuned),
        "tuning_wga": {c_key(c): float(v) for c, v in res.tuning_wga.items()},
        "notes": list(notes),
        "n_refits": int(len(res.refit_coefs)),
        "prune_h_average": res.prune_h(of="average"),
        "prune_h_refits": res.prune_h(of="refits"),
        "n_used_average": int(kept.sum()),
        "n_used_refits": float(refit_used.sum(axis=1).mean()),
        "mean_s_average": _mean_s(scores, kept),
        "mean_s_refits": float(np.mean(refit_means)) if refit_means else None,
        "mean_s_influence": influence_weighted_sscore(W, scores, feature_std),
        "kept": np.flatnonzero(kept).tolist(),
        "keep_frequency": refit_used.mean(axis=0).round(4).tolist(),
        "selection": selection_test(scores, kept, draws=band_draws, seed=seed),
    })
    return out


def _dense_summary(W: np.ndarray, b: np.ndarray, s: np.ndarray, std: np.ndarray, test, train_group_counts) -> dict:
    out = head_metrics(W, b, *test, train_group_counts=train_group_counts)
    used = used_neurons(W)
    out.update({"prune_h": prune_h(W), "n_used": int(used.sum()), "mean_s": _mean_s(s, used),
                "mean_s_influence": influence_weighted_sscore(W, s, std)})
    return out


def analyze_heads(*, head: nn.Linear, scores, val: FeatureSet, test: FeatureSet, seed: int,
                  c_grid: Sequence[float] = DFR_C_GRID, n_refits: int = 20, fallback_C: float = 1.0,
                  edit_scales: Sequence[float] = (0.0,), train_group_counts=None, band_draws: int = 2000,
                  verbose: bool = True) -> dict:
    """Baseline head vs DFR (tuned and every C of the grid) vs a single-weight edit, on fixed features.

    DFR and the edit are fit on the validation features (group labels used),
    every head is scored on the test features. The s-scores belong to the
    neurons, not to a head (``f_enc`` is shared), so "mean s-score of a head" is
    the mean over the neurons it uses.

    Args:
        head: the trained classifier ``nn.Linear(d, 2)``.
        scores: s-score per neuron (d,).
        val: validation features (``z`` (N, d), ``y``, ``g``).
        test: test features, same layout.
        seed: DFR seed (also seeds the random-subset test).
        c_grid: DFR's C grid; every C is also fit on its own (the sweep).
        n_refits: DFR refits per head.
        fallback_C: C when tuning is impossible (see :func:`~shortcut_nb.lastlayer.fit_dfr_checked`).
        edit_scales: factors the single-weight edit tries (0 = remove the weight).
        train_group_counts: training samples per group, for ``avg_weighted``.
        band_draws: random subsets in :func:`~shortcut_nb.lastlayer.selection_test`.
        verbose: print DFR's fallback notes (``DFR note: ...``).

    Returns:
        JSON-able dict: ``d``, ``baseline``, ``dfr`` (tuned), ``sweep`` (``{c_key(C): summary}``) and ``edit``.
        Every head summary has ``wga``, ``avg``, ``groups``, Prune_h and mean s-score entries; ``dfr`` also
        ``wga_change``, the 95 % paired bootstrap interval over test images of WGA(DFR) − WGA(baseline).
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear (the model's classifier), got {type(head).__name__}")
    zv, yv, gv = _zyg(val, "val")
    zt, yt, gt = _zyg(test, "test")
    d = head.in_features
    if zv.shape[1] != d or zt.shape[1] != d:
        raise ValueError(f"features must have d={d} columns like the head, got val {zv.shape}, test {zt.shape}")
    s = check_scores(scores, d)
    std = zv.std(axis=0)  # StandardScaler's scale (ddof=0), before its zero -> 1 guard
    grid = [float(c) for c in c_grid]
    common = dict(scores=s, test=(zt, yt, gt), feature_std=std, train_group_counts=train_group_counts,
                  band_draws=band_draws, seed=seed)

    W0, b0 = head.weight.detach().cpu().double().numpy(), head.bias.detach().cpu().double().numpy()
    baseline = _dense_summary(W0, b0, s, std, (zt, yt, gt), train_group_counts)

    res, notes = fit_dfr_checked(zv, yv, gv, seed=seed, c_grid=grid, n_refits=n_refits, fallback_C=fallback_C)
    if verbose:
        for note in notes:
            print(f"DFR note: {note}")
    dfr = _dfr_summary(res, notes, tuned=bool(res.tuning_wga), **common)  # empty table: C was not tuned
    lin = res.to_linear(dtype=torch.float64)
    n_groups = len(train_group_counts) if train_group_counts is not None else max(int(gt.max()) + 1, N_GROUPS)
    # ΔWGA of DFR within this seed: a paired bootstrap over the test images (both heads on each resample)
    dfr["wga_change"] = list(wga_change_interval(head_predictions(W0, b0, zt), head_predictions(lin.weight, lin.bias, zt),
                                                 yt, gt, n_groups=n_groups, seed=seed))
    sweep = {}
    for c in grid:
        r, n = fit_dfr_checked(zv, yv, gv, seed=seed, C=c, n_refits=n_refits)
        sweep[c_key(c)] = _dfr_summary(r, n, tuned=False, **common)

    edited, info = single_weight_edit(head, zv, yv, gv, scales=tuple(edit_scales))
    W1, b1 = edited.weight.detach().cpu().double().numpy(), edited.bias.detach().cpu().double().numpy()
    edit = _dense_summary(W1, b1, s, std, (zt, yt, gt), train_group_counts)
    edit.update({"applied": info is not None, "scales": [float(x) for x in edit_scales]})
    if info is not None:
        edit.update({"neuron": info.neuron, "class_index": info.class_index, "scale": info.scale,
                     "old_value": info.old_value, "new_value": info.new_value,
                     "val_wga_before": info.wga_before, "val_wga_after": info.wga_after,
                     "neuron_s": float(s[info.neuron]),
                     # share of neurons with a lower s-score: 1.0 = the most spurious-looking neuron
                     "neuron_s_rank": float((s < s[info.neuron]).mean())})
    return {"d": int(d), "baseline": baseline, "dfr": dfr, "sweep": sweep, "edit": edit}


# --------------------------------------------------------------------------- from a trained model


def sscore_entry(scores, area: float, *, n: int, alpha: float, seconds: float = 0.0) -> dict:
    """A run's ``sscore`` block: :func:`~shortcut_nb.sscore.summarize_scores` (``scores`` rounded to 6 digits,
    ``area`` the chance level, ``mean``, ``lift`` ...) plus the images scored ``n``, ``alpha`` and ``seconds``."""
    return {**summarize_scores(scores, area), "n": int(n), "alpha": float(alpha), "seconds": float(seconds)}


def analyze_model(ctx: Context, spec, model: nn.Module, settings: StudySettings, *, seed: int) -> dict:
    """:func:`analyze_heads` for a trained model: features of val/test (feature cache) and s-scores on training images.

    ``seed`` seeds DFR; ``settings.sample_seed`` draws the s-score images (0, as notebook 03, so every model is
    scored on the same images).

    Returns:
        :func:`analyze_heads`'s dict plus ``sscore`` (:func:`~shortcut_nb.sscore.summarize_scores` of the scores
        with ``n``, ``alpha``, ``seconds``), ``n_val``, ``n_test``, ``val_group_counts`` and ``seconds``.
    """
    tic = time.perf_counter()
    train = ctx.split(spec, "train")
    fv = ctx.features(model, ctx.split(spec, "val"))
    ft = ctx.features(model, ctx.split(spec, "test"))
    t0 = time.perf_counter()
    samples = ctx.masked_samples(spec, seed=settings.sample_seed, n=settings.sscore_samples)
    scores = score_neurons(model, samples, alpha=settings.alpha).double().numpy()
    s_seconds = time.perf_counter() - t0
    counts = train.group_counts() if hasattr(train, "group_counts") else None
    out = analyze_heads(head=model.head, scores=scores, val=fv, test=ft, seed=seed, c_grid=settings.c_grid,
                        n_refits=settings.n_refits, fallback_C=settings.fallback_C,
                        edit_scales=settings.edit_scales, train_group_counts=counts,
                        band_draws=settings.band_draws)
    out["sscore"] = sscore_entry(scores, samples.area, n=len(samples), alpha=settings.alpha, seconds=s_seconds)
    out["n_val"], out["n_test"] = int(len(fv["z"])), int(len(ft["z"]))
    out["val_group_counts"] = np.bincount(fv["g"], minlength=N_GROUPS).tolist()
    out["seconds"] = time.perf_counter() - tic
    return out


def entanglement_study(ctx: Context, settings: StudySettings) -> Results:
    """Tables 5-6 for the profile's trained models (trained on first use, else loaded from the run root).

    Returns:
        ``{"<dataset>/<arch>": ModelResults}`` in the order (dataset, arch) of the settings.
    """
    runs = []
    for (ds, arch, seed), spec in progress(model_specs(ctx, settings), desc="DFR per model", enabled=ctx.progress):
        model, _ = ctx.train_or_load(spec)
        run = analyze_model(ctx, spec, model, settings, seed=seed)
        run.update({"dataset": ds, "arch": arch, "model": spec.model, "seed": int(seed)})
        runs.append(run)
    return collect_results(runs)


def model_specs(ctx: Context, settings: StudySettings) -> list[tuple[tuple[str, str, int], RunSpec]]:
    """The trained runs the study reads, ``((dataset, arch, seed), spec)`` in the order it reads them."""
    return [((ds, arch, seed), ctx.run_spec(ds, arch=arch, seed=seed))
            for ds in settings.datasets for arch in settings.archs for seed in settings.seeds]


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[RunSpec]:
    """What notebook 04 trains with these parameters (its ``parameters`` cell): for ``sweep plan``."""
    settings = StudySettings.resolve(ctx, datasets=ctx.datasets(parameters.get("DATASETS")),
                                     archs=ctx.archs(parameters.get("ARCHS", ARCHS)), seeds=parameters.get("SEEDS"))
    return [spec for _, spec in model_specs(ctx, settings)]


# --------------------------------------------------------------------------- grouping and aggregation


def collect_results(runs: Sequence[Mapping]) -> Results:
    """Group analysed runs (each with ``dataset``, ``arch``, ``model``, ``seed``) by ``"<dataset>/<arch>"``."""
    results: Results = {}
    for run in runs:
        missing = {"dataset", "arch", "model", "seed", "baseline", "dfr", "sweep", "edit", "sscore"} - set(run)
        if missing:
            raise ValueError(f"each run needs the keys of analyze_model plus dataset/arch/model/seed; "
                             f"missing {sorted(missing)}")
        key = f"{run['dataset']}/{run['arch']}"
        entry = results.setdefault(key, ModelResults(dataset=run["dataset"], arch=run["arch"], model=run["model"]))
        entry.seeds.append(int(run["seed"]))
        entry.runs.append(dict(run))
    for entry in results.values():
        entry.summary = aggregate_runs(entry.runs)
    return results


_SUMMARY_KEYS = {
    "baseline": ("wga", "avg", "avg_weighted", "prune_h", "mean_s", "mean_s_influence", "n_used"),
    "dfr": ("wga", "avg", "avg_weighted", "prune_h_refits", "prune_h_average", "mean_s_refits", "mean_s_average",
            "mean_s_influence", "n_used_average", "n_used_refits", "C"),
    "edit": ("wga", "avg", "avg_weighted", "prune_h", "mean_s", "mean_s_influence"),
}


def aggregate_runs(runs: Sequence[Mapping]) -> dict:
    """Mean and sample std over seeds of every head number (undefined values are left out).

    Returns:
        ``{"baseline": {"wga": mean, "wga_std": std, ...}, "dfr": {...}, "edit": {...}, "area": mean,
        "dfr_p": [per-seed selection p], "notes", "n_seeds"}``; a number undefined in every seed is None.
    """
    if not runs:
        raise ValueError("runs must hold at least one analysed run")
    out: dict[str, Any] = {"n_seeds": len(runs)}
    for head, keys in _SUMMARY_KEYS.items():
        agg = {}
        for key in keys:
            vals = [r[head].get(key) for r in runs]
            vals = [float(v) for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
            m, sd = mean_std(vals) if vals else (None, None)
            agg[key], agg[f"{key}_std"] = m, sd
        out[head] = agg
    out["area"] = float(np.mean([r["sscore"]["area"] for r in runs]))
    out["dfr_p"] = [r["dfr"]["selection"]["p"] for r in runs]
    out["notes"] = sorted({n for r in runs for n in r["dfr"]["notes"]})
    return out
