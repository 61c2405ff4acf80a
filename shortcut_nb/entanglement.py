"""Paper §5.2 and §6.1 (Tables 5-6, Fig. 5): what Deep Feature Reweighting changes in the last layer.

DFR (:func:`shortcut_nb.lastlayer.dfr.fit_dfr`) keeps ``f_enc`` frozen and refits the
classifier as an L1 logistic regression on the group-labelled validation set.
The paper reads three numbers off it: worst-group accuracy goes up a lot, many
classifier weights become zero (Prune_h), and the mean s-score of the neurons
the classifier still uses barely moves. Because ``f_enc`` is unchanged, every
neuron keeps its s-score; DFR can only change *which* neurons the head reads and
with what weight. This module measures exactly that, per trained model:

* **Baseline** -- the trained head (dense: Prune_h 0, all ``d`` neurons used).
* **DFR** -- tuned C (with a fixed-C fallback when the tuning halves of a small
  validation set miss a group) and a sweep over the C grid, each with Prune_h of
  the deployed, *averaged* head and the mean Prune_h of the individual L1 refits.
* **Single-weight edit** -- the one weight of the trained head whose edit most
  raises validation worst-group accuracy (our reading of Hakemi et al., [9]).
* For every head: mean s-score of the neurons it uses, an *influence-weighted*
  mean (each neuron weighted by how much it moves the decision score), and a
  random-subset test of whether the kept neurons differ in s-score from a random
  set of the same size (the paper's "same s-score distribution", as a test).

All heads are evaluated on the test split's penultimate features (cached by
:func:`shortcut_nb.features.extract_features`), which is exact because
``model(x) == head(f_enc(x))``.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from .claims import claim
from .paper import PAPER_TABLES
from .lastlayer.dfr import DFR_C_GRID, DFRResult, fit_dfr, prune_h, single_weight_edit, used_neurons
from .metrics import mean_std, summarize

Arch = Literal["cnn", "vit"]
N_GROUPS = 4

__all__ = [
    "PAPER_TABLES",
    "WGA_GAIN_MIN",
    "PRUNE_MANY_MIN",
    "S_UNCHANGED_TOL",
    "c_key",
    "default_n_refits",
    "fit_dfr_checked",
    "head_metrics",
    "influence_weighted_sscore",
    "selection_test",
    "model_sscores",
    "sscore_summary",
    "collect_results",
    "analyze_heads",
    "analyze_model",
    "entanglement_experiment",
    "aggregate_runs",
    "table_frame",
    "sweep_frame",
    "edit_frame",
    "dfr_view",
    "view_text",
    "plot_dfr_view",
    "plot_fig5",
    "plot_kept_vs_zeroed",
    "record_payload",
    "takeaways",
]


# Verdict thresholds of the claims rows. The paper's smallest WGA gain is +0.20
# (ViT Waterbirds), its smallest Prune_h 37 %, its largest s change 0.03.
WGA_GAIN_MIN = 0.10  # "raises WGA a lot"
PRUNE_MANY_MIN = 0.30  # "zeroes many weights" (per-refit Prune_h)
S_UNCHANGED_TOL = 0.05  # "mean s-score about unchanged": |after - before| <= this


# --------------------------------------------------------------------------- small helpers


def c_key(C: float) -> str:
    """The string key of a C value in results and JSON: ``1.0 -> "1"``, ``0.07 -> "0.07"``."""
    return f"{float(C):g}"


def default_n_refits(profile: str) -> int:
    """DFR refits averaged per head: the authors' 20, 5 in the smoke profile (its validation set is tiny)."""
    return 5 if profile == "smoke" else 20


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _scores_np(scores, d: int | None = None) -> np.ndarray:
    s = _np(scores)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array of s-scores (d,), got shape {np.shape(scores)}")
    if d is not None and s.size != d:
        raise ValueError(f"scores must have one s-score per neuron (d={d}), got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain nan or inf")
    return s


def _features(fs: Mapping, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, y, g)`` of a FeatureSet-like mapping, checked."""
    if not isinstance(fs, Mapping) or not {"z", "y", "g"} <= set(fs):
        raise TypeError(f"{name} must be a mapping with 'z' (N, d), 'y' (N,) and 'g' (N,) (a FeatureSet)")
    z = _np(fs["z"])
    y, g = _np(fs["y"], np.int64).reshape(-1), _np(fs["g"], np.int64).reshape(-1)
    if z.ndim != 2 or len(z) != len(y) or len(y) != len(g):
        raise ValueError(f"{name}: z must be (N, d) with y and g of length N, got {z.shape}, {y.shape}, {g.shape}")
    return z, y, g


# --------------------------------------------------------------------------- DFR with a fallback


def fit_dfr_checked(
    features,
    y,
    g,
    *,
    seed: int,
    c_grid: Sequence[float] = DFR_C_GRID,
    n_refits: int = 20,
    C: float | None = None,
    fallback_C: float = 1.0,
    n_groups: int = N_GROUPS,
    verbose: bool = True,
) -> tuple[DFRResult, list[str]]:
    """:func:`~shortcut_nb.lastlayer.dfr.fit_dfr` that degrades with a note instead of failing on a small validation set.

    * A group absent from the whole validation set: balancing is done over the
      groups present (their ids renumbered 0..k-1 for the fit) -- a real ISIC
      validation set may have no malignant image with a patch.
    * Tuning (``C is None``) needs every group in both random halves (a
      balanced subsample of one half, worst-group accuracy on the other). With 12
      images per group (smoke) a half can miss one; then C is not tuned and
      ``fallback_C`` is used.

    Args:
        features: validation features (N, d).
        y: classes (N,).
        g: groups (N,), ``2 * y + a``.
        seed: DFR's seed (split, subsamples, solver).
        c_grid: tuning grid, tried in order.
        n_refits: refits averaged into the head.
        C: fixed C (no tuning), or None to tune.
        fallback_C: C used when tuning is impossible.
        n_groups: groups expected (4).
        verbose: print each note as it happens (notebooks show it).

    Returns:
        ``(result, notes)``: the DFR head and the notes (empty when nothing degraded).
    """
    if not (isinstance(fallback_C, (int, float)) and fallback_C > 0):
        raise ValueError(f"fallback_C must be a positive number, got {fallback_C!r}")
    g = _np(g, np.int64).reshape(-1)
    notes: list[str] = []
    present = np.unique(g)
    g_fit = g
    if len(present) < n_groups:
        missing = sorted(set(range(n_groups)) - set(present.tolist()))
        g_fit = np.searchsorted(present, g).astype(np.int64)
        notes.append(f"validation set has no sample of group(s) {missing}: balanced over the "
                     f"{len(present)} groups present")
    result = None
    if C is None:
        try:
            result = fit_dfr(features, y, g_fit, seed=seed, c_grid=c_grid, n_refits=n_refits)
        except ValueError as err:
            notes.append(f"C not tuned ({err}); used the fixed C={fallback_C:g} instead")
            C = fallback_C
    if result is None:
        result = fit_dfr(features, y, g_fit, seed=seed, n_refits=n_refits, C=float(C))
    if verbose:
        for note in notes:
            print(f"DFR note: {note}")
    return result, notes


# --------------------------------------------------------------------------- measuring a head


def head_metrics(weight, bias, features, y, g, *, train_group_counts=None, n_groups: int = N_GROUPS) -> dict:
    """Test metrics of a linear head ``logits = z @ W.T + b`` (float64), as :func:`~shortcut_nb.metrics.summarize`.

    Args:
        weight: (K, d) head weights (K >= 2 logits).
        bias: (K,) biases.
        features: (N, d) penultimate features.
        y: (N,) classes.
        g: (N,) groups.
        train_group_counts: training samples per group, for ``avg_weighted``.
        n_groups: groups.

    Returns:
        ``{"groups", "avg", "avg_weighted", "wga", "gap", "n", "pred_class1"}``; ``pred_class1`` is the share of
        class-1 predictions (a degenerate head predicts one class).
    """
    W, b, z = _np(weight), _np(bias).reshape(-1), _np(features)
    if W.ndim != 2 or W.shape[0] < 2 or b.shape != (W.shape[0],) or z.ndim != 2 or z.shape[1] != W.shape[1]:
        raise ValueError(f"weight (K>=2, d), bias (K,) and features (N, d) must agree, got {W.shape}, {b.shape}, "
                         f"{z.shape}")
    pred = (z @ W.T + b).argmax(axis=1)
    out = summarize(pred, y, g, train_group_counts=train_group_counts, n_groups=n_groups)
    out["pred_class1"] = float((pred == 1).mean())
    return out


def _decision_weights(weight) -> np.ndarray:
    """Per neuron, how strongly its weights separate the classes: ``sum_k |W[k] - mean_k W|`` (|w| for one row).

    Logits are shift-invariant across classes, so only the centred rows matter; for
    a two-logit head this is ``|W[1] - W[0]|``, the weight in the decision score.
    """
    W = _np(weight)
    if W.ndim == 1:
        W = W[None, :]
    if W.shape[0] == 1:
        return np.abs(W[0])
    return np.abs(W - W.mean(axis=0, keepdims=True)).sum(axis=0)


def influence_weighted_sscore(weight, scores, feature_std) -> float | None:
    """Mean s-score with each neuron weighted by its influence on the decision score (beyond the paper).

    The influence of neuron i is ``u_i = |w_i| * std(z_i)`` with ``w`` the decision
    weights (:func:`_decision_weights`) over raw features, i.e. how much the score
    moves when ``z_i`` moves by one standard deviation. The paper's "Avg. s-score"
    counts a neuron with a tiny weight as much as the most important one; this
    does not.

    Args:
        weight: head weights over raw features, (K, d) or (d,).
        scores: s-scores (d,).
        feature_std: per-neuron standard deviation of the features (d,), e.g. on the validation set.

    Returns:
        ``sum u_i s_i / sum u_i``, or None when every influence is zero.
    """
    u = _decision_weights(weight)
    s = _scores_np(scores, u.size)
    sd = _np(feature_std).reshape(-1)
    if sd.shape != u.shape or np.any(sd < 0):
        raise ValueError(f"feature_std must be non-negative with shape {u.shape}, got {sd.shape}")
    u = u * sd
    total = u.sum()
    return float((u * s).sum() / total) if total > 0 else None


def selection_test(scores, kept, *, draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Is the kept set's mean s-score different from that of a random neuron set of the same size?

    Null hypothesis: the head picked its ``k`` neurons without regard to their
    s-scores. ``draws`` random ``k``-subsets (without replacement) give the null
    distribution of the subset mean; ``p`` is the two-sided Monte-Carlo p-value
    of ``|mean_kept - mean_all|`` (with the +1 correction, so never 0).

    Args:
        scores: s-scores (d,).
        kept: bool mask (d,) of the neurons the head uses.
        draws: random subsets.
        seed: seed of the draws.
        level: central mass of the reported band ``[lo, hi]``.

    Returns:
        ``{"k", "d", "mean_all", "mean_kept", "delta", "lo", "hi", "p"}``; with ``k == 0`` the kept-set
        entries are None, with ``k == d`` the band collapses to the mean and ``p == 1``.
    """
    s = _scores_np(scores)
    kept = np.asarray(kept)
    if kept.dtype != np.bool_ or kept.shape != s.shape:
        raise ValueError(f"kept must be a bool mask of shape {s.shape}, got {kept.dtype} {kept.shape}")
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d, k, mean_all = s.size, int(kept.sum()), float(s.mean())
    out = {"k": k, "d": d, "mean_all": mean_all}
    if k == 0:
        return {**out, "mean_kept": None, "delta": None, "lo": None, "hi": None, "p": None}
    mean_kept = float(s[kept].mean())
    if k == d:
        return {**out, "mean_kept": mean_kept, "delta": 0.0, "lo": mean_all, "hi": mean_all, "p": 1.0}
    rng = np.random.default_rng(seed)
    # argsort of uniform keys = a random permutation per row; the first k columns are a random k-subset
    idx = np.argsort(rng.random((draws, d)), axis=1)[:, :k]
    means = s[idx].mean(axis=1)
    delta = mean_kept - mean_all
    extreme = np.abs(means - mean_all) >= abs(delta) - 1e-12
    tail = (1 - level) / 2
    return {**out, "mean_kept": mean_kept, "delta": float(delta), "lo": float(np.quantile(means, tail)),
            "hi": float(np.quantile(means, 1 - tail)), "p": float((1 + extreme.sum()) / (1 + draws))}


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


def analyze_heads(
    *,
    head: nn.Linear,
    scores,
    val: Mapping,
    test: Mapping,
    seed: int,
    c_grid: Sequence[float] = DFR_C_GRID,
    n_refits: int = 20,
    fallback_C: float = 1.0,
    edit_scales: Sequence[float] = (0.0,),
    train_group_counts=None,
    band_draws: int = 2000,
    verbose: bool = True,
) -> dict:
    """Baseline head vs DFR (tuned and every C of the grid) vs a single-weight edit, on fixed features.

    DFR and the edit are fit on the validation features (group labels used),
    every head is scored on the test features. The s-scores belong to the
    neurons, not to a head (``f_enc`` is shared), so "mean s-score of a head" is
    the mean over the neurons it uses.

    Args:
        head: the trained classifier ``nn.Linear(d, 2)``.
        scores: s-score per neuron (d,).
        val: validation features, a mapping with ``z`` (N, d), ``y``, ``g`` (a FeatureSet).
        test: test features, same layout.
        seed: DFR seed (also seeds the random-subset test).
        c_grid: DFR's C grid; every C is also fit on its own (the sweep).
        n_refits: DFR refits per head.
        fallback_C: C when tuning is impossible (see :func:`fit_dfr_checked`).
        edit_scales: factors the single-weight edit tries (0 = remove the weight).
        train_group_counts: training samples per group, for ``avg_weighted``.
        band_draws: random subsets in :func:`selection_test`.
        verbose: print DFR's fallback notes.

    Returns:
        JSON-able dict: ``d``, ``baseline``, ``dfr`` (tuned), ``sweep`` (``{c_key(C): summary}``) and ``edit``.
        Every head summary has ``wga``, ``avg``, ``groups``, Prune_h and mean s-score entries.
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear (the model's classifier), got {type(head).__name__}")
    zv, yv, gv = _features(val, "val")
    zt, yt, gt = _features(test, "test")
    d = head.in_features
    if zv.shape[1] != d or zt.shape[1] != d:
        raise ValueError(f"features must have d={d} columns like the head, got val {zv.shape}, test {zt.shape}")
    s = _scores_np(scores, d)
    std = zv.std(axis=0)  # StandardScaler's scale (ddof=0), before its zero -> 1 guard
    grid = [float(c) for c in c_grid]
    common = dict(scores=s, test=(zt, yt, gt), feature_std=std, train_group_counts=train_group_counts,
                  band_draws=band_draws, seed=seed)

    W0, b0 = head.weight.detach().cpu().double().numpy(), head.bias.detach().cpu().double().numpy()
    baseline = head_metrics(W0, b0, zt, yt, gt, train_group_counts=train_group_counts)
    used0 = used_neurons(W0)
    baseline.update({"prune_h": prune_h(W0), "n_used": int(used0.sum()), "mean_s": _mean_s(s, used0),
                     "mean_s_influence": influence_weighted_sscore(W0, s, std)})

    res, notes = fit_dfr_checked(zv, yv, gv, seed=seed, c_grid=grid, n_refits=n_refits, fallback_C=fallback_C,
                                 verbose=verbose)
    dfr = _dfr_summary(res, notes, tuned=bool(res.tuning_wga), **common)  # empty table: C was not tuned
    sweep = {}
    for c in grid:
        r, n = fit_dfr_checked(zv, yv, gv, seed=seed, C=c, n_refits=n_refits, verbose=False)
        sweep[c_key(c)] = _dfr_summary(r, n, tuned=False, **common)

    edited, info = single_weight_edit(head, zv, yv, gv, scales=tuple(edit_scales))
    W1, b1 = edited.weight.detach().cpu().double().numpy(), edited.bias.detach().cpu().double().numpy()
    edit = head_metrics(W1, b1, zt, yt, gt, train_group_counts=train_group_counts)
    used1 = used_neurons(W1)
    edit.update({"applied": info is not None, "prune_h": prune_h(W1), "n_used": int(used1.sum()),
                 "mean_s": _mean_s(s, used1), "mean_s_influence": influence_weighted_sscore(W1, s, std),
                 "scales": [float(x) for x in edit_scales]})
    if info is not None:
        edit.update({"neuron": info.neuron, "class_index": info.class_index, "scale": info.scale,
                     "old_value": info.old_value, "new_value": info.new_value,
                     "val_wga_before": info.wga_before, "val_wga_after": info.wga_after,
                     "neuron_s": float(s[info.neuron]),
                     # share of neurons with a lower s-score: 1.0 = the most spurious-looking neuron
                     "neuron_s_rank": float((s < s[info.neuron]).mean())})
    return {"d": int(d), "baseline": baseline, "dfr": dfr, "sweep": sweep, "edit": edit}


# --------------------------------------------------------------------------- from a trained model


def model_sscores(model: nn.Module, dataset: Dataset, *, n: int, seed: int, alpha: float,
                  target_layer: nn.Module | None = None, chunk_size: int = 128, batch_size: int = 16) -> dict:
    """s-scores of every penultimate neuron of ``model`` on ``n`` training images that show the spurious feature.

    Images come from :func:`shortcut_nb.neurons.nonempty_mask_samples`, as in notebook 03
    (ISIC-like: patched images only; an empty mask would score 0 whatever the neuron
    looks at), so the same ``seed`` scores the same images there and here. The
    target layer defaults to the model's (CNN: last block; ViT: last block's
    ``norm1``, whose tokens :func:`~shortcut_nb.sscore.s_scores` reshapes to the
    patch grid). Runs on the model's device.

    Args:
        model: a SplitModel.
        dataset: the training split (items with ``image`` and ``mask``).
        n: images (fewer if fewer show the spurious feature).
        seed: seed of the draw.
        alpha: Grad-CAM binarisation threshold.
        target_layer: Grad-CAM layer (None: the model's default).
        chunk_size: neurons per batched gradient pass.
        batch_size: images per forward pass.

    Returns:
        ``{"scores": float64 array (d,), "area": mean mask area (the chance level), "n", "alpha", "seconds"}``.
    """
    from .neurons import nonempty_mask_samples
    from .sscore import mask_area, s_scores

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    tic = time.perf_counter()
    images, masks, _ = nonempty_mask_samples(dataset, n, seed)
    device = next(model.parameters()).device
    scores = s_scores(model, images.to(device), masks.to(device), alpha=alpha, target_layer=target_layer,
                      chunk_size=chunk_size, batch_size=batch_size)
    return {"scores": scores.detach().cpu().double().numpy(), "area": mask_area(masks), "n": int(images.shape[0]),
            "alpha": float(alpha), "seconds": time.perf_counter() - tic}


def sscore_summary(scores, *, area: float, n: int, alpha: float, seconds: float = 0.0) -> dict:
    """The ``sscore`` block of a run: scores (rounded to 5 digits), chance level, mean, lift over chance.

    Args:
        scores: s-score per neuron (d,).
        area: mean spurious-mask area of the scored images (the chance level), in (0, 1].
        n: images scored.
        alpha: binarisation threshold used.
        seconds: time the s-scores took.
    """
    s = _scores_np(scores)
    if not 0 <= area <= 1:
        raise ValueError(f"area must be a fraction in [0, 1], got {area}")
    return {"scores": s.round(5).tolist(), "area": float(area), "mean": float(s.mean()),
            "lift": float(s.mean() / area) if area > 0 else None, "n": int(n), "alpha": float(alpha),
            "seconds": float(seconds)}


def collect_results(runs: Sequence[Mapping]) -> dict[str, dict]:
    """Group analysed runs (each with ``dataset``, ``arch``, ``model``, ``seed``) by ``"<dataset>/<arch>"``.

    Returns:
        ``{"<dataset>/<arch>": {"dataset", "arch", "model", "seeds", "runs", "summary": aggregate_runs(runs)}}``
        in the order the runs came.
    """
    results: dict[str, dict] = {}
    for run in runs:
        missing = {"dataset", "arch", "model", "seed", "baseline", "dfr", "sweep", "edit", "sscore"} - set(run)
        if missing:
            raise ValueError(f"each run needs the keys of analyze_model plus dataset/arch/model/seed; "
                             f"missing {sorted(missing)}")
        entry = results.setdefault(f"{run['dataset']}/{run['arch']}", {
            "dataset": run["dataset"], "arch": run["arch"], "model": run["model"], "seeds": [], "runs": []})
        entry["seeds"].append(int(run["seed"]))
        entry["runs"].append(run)
    for entry in results.values():
        entry["summary"] = aggregate_runs(entry["runs"])
    return results


def analyze_model(model: nn.Module, *, train: Dataset, val: Dataset, test: Dataset, seed: int, alpha: float,
                  sscore_samples: int, sample_seed: int = 0, c_grid: Sequence[float] = DFR_C_GRID,
                  n_refits: int = 20, fallback_C: float = 1.0, edit_scales: Sequence[float] = (0.0,),
                  band_draws: int = 2000,
                  root: str | os.PathLike | None = None, progress_bar: bool = True) -> dict:
    """:func:`analyze_heads` for a trained model: features of val/test (disk-cached) and s-scores on training images.

    ``seed`` seeds DFR; ``sample_seed`` draws the s-score images (0, as notebook 03, so every model is scored
    on the same images).

    Returns:
        :func:`analyze_heads`'s dict plus ``sscore`` (``scores`` list, ``area``, ``lift``, ``n``, ``alpha``,
        ``seconds``) and ``seconds`` of the whole analysis.
    """
    from .pipeline.feature_cache import extract_features

    tic = time.perf_counter()
    fv = extract_features(model, val, root=root, progress_bar=progress_bar)
    ft = extract_features(model, test, root=root, progress_bar=progress_bar)
    ss = model_sscores(model, train, n=sscore_samples, seed=sample_seed, alpha=alpha)
    counts = train.group_counts() if hasattr(train, "group_counts") else None
    out = analyze_heads(head=model.head, scores=ss["scores"], val=fv, test=ft, seed=seed, c_grid=c_grid,
                        n_refits=n_refits, fallback_C=fallback_C, edit_scales=edit_scales,
                        train_group_counts=counts, band_draws=band_draws)
    out["sscore"] = sscore_summary(ss["scores"], area=ss["area"], n=ss["n"], alpha=ss["alpha"], seconds=ss["seconds"])
    out["n_val"], out["n_test"] = int(len(fv["z"])), int(len(ft["z"]))
    out["val_group_counts"] = np.bincount(fv["g"], minlength=N_GROUPS).tolist()
    out["seconds"] = time.perf_counter() - tic
    return out


def entanglement_experiment(
    profile: str,
    *,
    datasets: Sequence[str] = ("waterbirds", "isic"),
    archs: Sequence[Arch] = ("cnn", "vit"),
    seeds: Sequence[int] | None = None,
    alpha: float = 0.5,
    sscore_samples: int | None = None,
    sample_seed: int = 0,
    c_grid: Sequence[float] | None = None,
    n_refits: int | None = None,
    fallback_C: float = 1.0,
    edit_scales: Sequence[float] = (0.0,),
    band_draws: int = 2000,
    root: str | os.PathLike | None = None,
    progress_bar: bool = True,
    folders: Mapping[str, str | os.PathLike] | None = None,
) -> dict[str, dict]:
    """Tables 5-6 for the profile's trained models (trained on first use, else loaded from the run root).

    Args:
        profile: ``smoke``, ``cpu`` or ``paper``.
        datasets: ``waterbirds`` and/or ``isic``.
        archs: ``cnn`` (Table 5) and/or ``vit`` (Table 6).
        seeds: trained runs to analyse (None: the profile's seeds).
        alpha: s-score binarisation threshold.
        sscore_samples: training images per s-score (None: the profile's, 50 outside smoke).
        sample_seed: seed of the draw of s-score images (the same images for every model and seed).
        c_grid: DFR's grid (None: the authors').
        n_refits: DFR refits (None: :func:`default_n_refits`).
        fallback_C: C when tuning is impossible.
        edit_scales: factors of the single-weight edit.
        band_draws: random subsets of :func:`selection_test`.
        root: run root.
        progress_bar: show bars.
        folders: dataset name -> a real dataset folder used instead of the synthetic benchmark.

    Returns:
        ``{"<dataset>/<arch>": {"dataset", "arch", "model", "seeds", "runs": [per-seed analyze_model dicts],
        "summary": aggregate_runs(runs)}}``.
    """
    from .config import profile_settings
    from .pipeline.runs import get_split, run_spec, train_or_load
    from .progress import progress

    ps = profile_settings(profile)
    seeds = tuple(ps.seeds if seeds is None else seeds)
    if not seeds:
        raise ValueError("seeds must name at least one trained run")
    n_s = int(sscore_samples or ps.sscore_samples)
    grid = tuple(DFR_C_GRID if c_grid is None else c_grid)
    refits = int(n_refits or default_n_refits(ps.profile))
    jobs = [(ds, arch, seed) for ds in datasets for arch in archs for seed in seeds]
    runs = []
    loaded: dict[tuple, Dataset] = {}  # one dataset object per (data, split): the CNN and the ViT share decoded images
    for ds, arch, seed in progress(jobs, desc="DFR per model", enabled=progress_bar):
        spec = run_spec(profile, ds, arch=arch, seed=seed, folder=(folders or {}).get(ds))
        model, _ = train_or_load(spec, root=root, progress_bar=progress_bar)
        for split in ("train", "val", "test"):
            if (spec.data, split) not in loaded:
                loaded[(spec.data, split)] = get_split(spec.data, split, root=root)
        splits = {split: loaded[(spec.data, split)] for split in ("train", "val", "test")}
        run = analyze_model(model, **splits, seed=seed, alpha=alpha, sscore_samples=n_s, sample_seed=sample_seed,
                            c_grid=grid, n_refits=refits, fallback_C=fallback_C, edit_scales=edit_scales,
                            band_draws=band_draws, root=root, progress_bar=False)
        run.update({"dataset": ds, "arch": arch, "model": spec.model, "seed": int(seed)})
        runs.append(run)
    return collect_results(runs)


# --------------------------------------------------------------------------- aggregation and tables

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
        "dfr_p": [per-seed selection p], "n_seeds"}``; a number undefined in every seed is None.
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


def _fmt(m, sd=None, pct: bool = False) -> str:
    if m is None:
        return "—"
    if pct:
        return f"{m:.0%}" if not sd else f"{m:.0%} ± {sd:.0%}"
    return f"{m:.2f}" if not sd else f"{m:.2f} ± {sd:.2f}"


def table_frame(results: Mapping[str, Mapping]) -> pd.DataFrame:
    """Tables 5-6: per model and dataset, baseline / DFR / single-weight edit, ours (mean ± std) next to the paper's.

    Columns: WGA, AVG, Prune_h (per refit: the mean sparsity of DFR's L1 fits), Prune_h of the averaged head
    (the one deployed), mean s-score of the neurons used (per refit for DFR), the influence-weighted mean s, the
    chance level (mean mask area) and the paper's WGA, Prune_h and mean s.
    """
    rows = []
    for key, r in results.items():
        sm = r["summary"]
        paper = PAPER_TABLES.get((r["dataset"], r["arch"]), {})
        for head, label in (("baseline", "baseline"), ("dfr", "DFR"), ("edit", "single-weight edit")):
            h = sm[head]
            p = paper.get(head, {})
            ph = (h["prune_h_refits"], h["prune_h_refits_std"]) if head == "dfr" else (h["prune_h"], h["prune_h_std"])
            ms = (h["mean_s_refits"], h["mean_s_refits_std"]) if head == "dfr" else (h["mean_s"], h["mean_s_std"])
            rows.append({
                "dataset": r["dataset"], "model": r["model"], "head": label,
                "WGA": _fmt(h["wga"], h["wga_std"]), "AVG": _fmt(h["avg"], h["avg_std"]),
                "Prune_h (per refit)": _fmt(*ph, pct=True),
                "Prune_h (averaged head)": _fmt(h["prune_h_average"], pct=True) if head == "dfr" else "—",
                "mean s (used neurons)": _fmt(*ms),
                "mean s (influence-weighted)": _fmt(h["mean_s_influence"]),
                "chance s (mask area)": round(sm["area"], 2),
                "paper WGA": p.get("wga"), "paper Prune_h": p.get("prune_h"), "paper mean s": p.get("mean_s"),
            })
    return pd.DataFrame(rows)


def sweep_frame(results: Mapping[str, Mapping], *, seed_index: int = 0) -> pd.DataFrame:
    """DFR at every C of the grid (and the tuned one) for one seed: how sparsity, WGA and the kept s-scores move."""
    rows = []
    for key, r in results.items():
        run = r["runs"][seed_index]
        entries = [("tuned", run["dfr"])] + [(f"C={c}", e) for c, e in run["sweep"].items()]
        for label, e in entries:
            rows.append({"model": key, "DFR": f"tuned (C={e['C']:g})" if label == "tuned" else label,
                         "WGA": round(e["wga"], 3), "AVG": round(e["avg"], 3),
                         "Prune_h per refit": round(e["prune_h_refits"], 3),
                         "Prune_h averaged": round(e["prune_h_average"], 3),
                         "kept neurons": e["n_used_average"],
                         "mean s kept": None if e["mean_s_average"] is None else round(e["mean_s_average"], 3),
                         "mean s all": round(run["sscore"]["mean"], 3),
                         "p (random subset)": e["selection"]["p"]})
    return pd.DataFrame(rows)


def edit_frame(results: Mapping[str, Mapping]) -> pd.DataFrame:
    """The single-weight edit per model and seed: which weight, its neuron's s-score, WGA on val and test."""
    rows = []
    for key, r in results.items():
        for run in r["runs"]:
            e, b = run["edit"], run["baseline"]
            row = {"model": key, "seed": run["seed"], "applied": e["applied"],
                   "test WGA before": round(b["wga"], 3), "test WGA after": round(e["wga"], 3),
                   "test AVG after": round(e["avg"], 3)}
            if e["applied"]:
                row.update({"edited weight": f"W[{e['class_index']}, {e['neuron']}] × {e['scale']:g}",
                            "val WGA before": round(e["val_wga_before"], 3),
                            "val WGA after": round(e["val_wga_after"], 3),
                            "neuron s": round(e["neuron_s"], 3), "neuron s rank": round(e["neuron_s_rank"], 2)})
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- one view (widget and static)


def dfr_view(results: Mapping[str, Mapping], key: str, choice: str = "tuned", *, seed_index: int = 0) -> dict:
    """One DFR head of one model, ready to print and draw: the widget's selection, a pure function.

    Args:
        results: :func:`entanglement_experiment`'s output.
        key: ``"<dataset>/<arch>"``.
        choice: ``"tuned"`` or a C key of the sweep (``c_key(C)``, e.g. ``"0.1"``).
        seed_index: which seed's run.

    Returns:
        ``{"key", "choice", "label", "C", "wga", "avg", "prune_h_refits", "prune_h_average", "n_kept", "d",
        "mean_s_kept", "mean_s_all", "area", "baseline_wga", "baseline_avg", "scores", "kept" (bool list), "p",
        "notes"}``.
    """
    if key not in results:
        raise ValueError(f"key must be one of {sorted(results)}, got {key!r}")
    runs = results[key]["runs"]
    if not 0 <= seed_index < len(runs):
        raise ValueError(f"seed_index must be in [0, {len(runs) - 1}], got {seed_index}")
    run = runs[seed_index]
    if choice == "tuned":
        e = run["dfr"]
        label = f"DFR C={e['C']:g} ({'tuned' if e['tuned'] else 'fallback, not tuned'})"
    elif choice in run["sweep"]:
        e = run["sweep"][choice]
        label = f"DFR C={e['C']:g}"
    else:
        raise ValueError(f"choice must be 'tuned' or one of {list(run['sweep'])}, got {choice!r}")
    scores = list(run["sscore"]["scores"])
    kept = np.zeros(len(scores), dtype=bool)
    kept[e["kept"]] = True
    return {"key": key, "choice": choice, "label": label, "C": e["C"], "wga": e["wga"], "avg": e["avg"],
            "prune_h_refits": e["prune_h_refits"], "prune_h_average": e["prune_h_average"],
            "n_kept": int(kept.sum()), "d": len(scores), "mean_s_kept": e["mean_s_average"],
            "mean_s_all": run["sscore"]["mean"], "area": run["sscore"]["area"],
            "baseline_wga": run["baseline"]["wga"], "baseline_avg": run["baseline"]["avg"],
            "scores": scores, "kept": kept.tolist(), "p": e["selection"]["p"], "notes": list(e["notes"])}


def view_text(view: Mapping) -> str:
    """The numbers of one view in one line (the widget's text, asserted on by browser tests)."""
    kept = "no neuron kept" if view["mean_s_kept"] is None else \
        f"mean s {view['mean_s_kept']:.2f} (all neurons {view['mean_s_all']:.2f}, chance {view['area']:.2f})"
    text = (f"{view['key']} · {view['label']}: WGA {view['wga']:.2f} (baseline {view['baseline_wga']:.2f}) · "
            f"AVG {view['avg']:.2f} (baseline {view['baseline_avg']:.2f}) · "
            f"Prune_h {view['prune_h_refits']:.1%} per refit, {view['prune_h_average']:.1%} averaged head · "
            f"kept {view['n_kept']}/{view['d']} neurons, {kept}")
    if view["notes"]:
        text += " · note: " + "; ".join(view["notes"])
    return text


def _hist_pair(ax, s_all: np.ndarray, s_sel: np.ndarray, *, area: float, labels: tuple[str, str], title: str) -> None:
    # densities, not counts: DFR keeps a small share of the neurons, and the question is about shape
    bins = np.linspace(0, 1, 21)
    ax.hist(s_all, bins=bins, density=True, alpha=0.45, color="0.45",
            label=f"{labels[0]} (n={s_all.size}, mean {s_all.mean():.2f})")
    if s_sel.size:
        ax.hist(s_sel, bins=bins, density=True, histtype="step", lw=2, color="tab:orange",
                label=f"{labels[1]} (n={s_sel.size}, mean {s_sel.mean():.2f})")
        ax.axvline(s_sel.mean(), color="tab:orange", lw=1.5)
    else:
        ax.text(0.5, 0.5, f"{labels[1]}: none", transform=ax.transAxes, ha="center")
    ax.axvline(s_all.mean(), color="0.3", lw=1.5)
    ax.axvline(area, color="k", ls=":", lw=1.2, label=f"chance (mask area {area:.2f})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("neuron s-score")
    ax.set_ylabel("density of neurons")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def plot_dfr_view(view: Mapping):
    """Histogram of the s-scores of all neurons (the dense baseline head) and of those one DFR head keeps."""
    s = np.asarray(view["scores"], dtype=float)
    kept = np.asarray(view["kept"], dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    _hist_pair(ax, s, s[kept], area=view["area"], labels=("baseline: all neurons", "kept by DFR"),
               title=f"{view['key']}: {view['label']}, WGA {view['wga']:.2f}, Prune_h {view['prune_h_refits']:.0%}")
    fig.tight_layout()
    return fig


def plot_fig5(results: Mapping[str, Mapping], *, seed_index: int = 0):
    """Fig. 5: per model and dataset, s-scores of the neurons the baseline uses (all) and those DFR keeps.

    One panel per ``"<dataset>/<arch>"`` (rows: architectures, columns: datasets), one seed.
    """
    keys = list(results)
    archs = list(dict.fromkeys(results[k]["arch"] for k in keys))
    datasets = list(dict.fromkeys(results[k]["dataset"] for k in keys))
    fig, axes = plt.subplots(len(archs), len(datasets), figsize=(5.2 * len(datasets), 3.4 * len(archs)),
                             squeeze=False)
    for i, arch in enumerate(archs):
        for j, ds in enumerate(datasets):
            ax, key = axes[i][j], f"{ds}/{arch}"
            if key not in results:
                ax.set_axis_off()
                continue
            v = dfr_view(results, key, "tuned", seed_index=seed_index)
            s, kept = np.asarray(v["scores"]), np.asarray(v["kept"], dtype=bool)
            _hist_pair(ax, s, s[kept], area=v["area"], labels=("baseline (all)", "DFR kept"),
                       title=f"{ds} · {results[key]['model']} · DFR C={v['C']:g}, "
                             f"Prune_h {v['prune_h_refits']:.0%}")
    fig.tight_layout()
    return fig


def plot_kept_vs_zeroed(results: Mapping[str, Mapping], *, seed_index: int = 0):
    """s-scores of the neurons DFR zeroes vs keeps, per model, with the random-subset band of the kept mean.

    The grey band is where the mean of a *random* neuron set of the kept size falls 95 % of the time: a kept
    mean inside it means DFR's choice looks unrelated to the s-score.
    """
    keys = list(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(keys)), 3.8))
    rng = np.random.default_rng(0)
    ticks = []
    for i, key in enumerate(keys):
        run = results[key]["runs"][seed_index]
        s = np.asarray(run["sscore"]["scores"], dtype=float)
        kept = np.zeros(s.size, dtype=bool)
        kept[run["dfr"]["kept"]] = True
        sel = run["dfr"]["selection"]
        for offset, mask, colour in ((-0.18, ~kept, "0.5"), (0.18, kept, "tab:orange")):
            x = i + offset
            vals = s[mask]
            if vals.size:
                ax.scatter(x + rng.uniform(-0.07, 0.07, vals.size), vals, s=6, color=colour, alpha=0.6)
                ax.hlines(vals.mean(), x - 0.12, x + 0.12, color="k", lw=2)
        if sel["lo"] is not None:
            ax.fill_between([i + 0.05, i + 0.31], sel["lo"], sel["hi"], color="0.8", zorder=0)
        ax.hlines(run["sscore"]["area"], i - 0.4, i + 0.4, color="k", ls=":", lw=1)
        p = "—" if sel["p"] is None else f"{sel['p']:.2f}"
        ticks.append(f"{key}\nzeroed {int((~kept).sum())} | kept {int(kept.sum())}\np = {p}")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(ticks, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("neuron s-score")
    ax.set_title("Neurons DFR zeroes (grey) vs keeps (orange); bars: means, band: random-subset 95 %, "
                 "dotted: chance", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- record, takeaways, claims


def record_payload(results: Mapping[str, Mapping], *, profile: str, seconds: float, settings: Mapping) -> dict:
    """The numbers notebook 04 records (per-neuron arrays of the C sweep left out to keep the JSON small).

    Top-level ``wga_baseline``/``wga_dfr``/``prune_h_refits``/``prune_h_average``/``mean_s_baseline``/
    ``mean_s_dfr`` are the headline: the CNN on the Waterbirds-like set (or the first model present).
    """
    def slim_run(run: Mapping) -> dict:
        out = dict(run)
        out["sweep"] = {c: {k: v for k, v in e.items() if k not in ("kept", "keep_frequency")}
                        for c, e in run["sweep"].items()}
        return out

    head_key = "waterbirds/cnn" if "waterbirds/cnn" in results else next(iter(results))
    sm = results[head_key]["summary"]
    return {
        "profile": profile,
        "seconds": float(seconds),
        "settings": dict(settings),
        "headline": head_key,
        "wga_baseline": sm["baseline"]["wga"], "wga_dfr": sm["dfr"]["wga"],
        "prune_h_refits": sm["dfr"]["prune_h_refits"], "prune_h_average": sm["dfr"]["prune_h_average"],
        "mean_s_baseline": sm["baseline"]["mean_s"], "mean_s_dfr": sm["dfr"]["mean_s_refits"],
        "table": {k: {"dataset": r["dataset"], "arch": r["arch"], "model": r["model"], "seeds": r["seeds"],
                      **r["summary"]} for k, r in results.items()},
        "runs": {k: [slim_run(run) for run in r["runs"]] for k, r in results.items()},
        "notes": sorted({n for r in results.values() for n in r["summary"]["notes"]}),
    }


def _verdict(row: Mapping) -> tuple[str, bool]:
    b, d = row["baseline"], row["dfr"]
    gain = d["wga"] - b["wga"]
    s0, s1 = b["mean_s"], d["mean_s_refits"]
    ds = None if s0 is None or s1 is None else s1 - s0
    holds = gain >= WGA_GAIN_MIN and d["prune_h_refits"] >= PRUNE_MANY_MIN and ds is not None and \
        abs(ds) <= S_UNCHANGED_TOL
    s_txt = "s undefined (no neuron kept)" if ds is None else f"s {s0:.2f} → {s1:.2f}"
    text = (f"{row['dataset']}: WGA {b['wga']:.2f} → {d['wga']:.2f}, Prune_h {d['prune_h_refits']:.0%} per refit "
            f"({d['prune_h_average']:.0%} averaged head), {s_txt}")
    return text, holds


def _check_arch(rec: Mapping, arch: str) -> tuple[str, bool]:
    rows = [r for r in rec["table"].values() if r["arch"] == arch]
    if not rows:
        raise KeyError(f"no {arch} model in table")
    parts = [_verdict(r) for r in rows]
    return "; ".join(p for p, _ in parts), all(h for _, h in parts)


_CLAIM_TEXT = (f"DFR raises WGA a lot (≥ +{WGA_GAIN_MIN:.2f}), zeroes many weights (per-refit Prune_h ≥ "
               f"{PRUNE_MANY_MIN:.0%}), and leaves the mean s-score of the used neurons about unchanged "
               f"(within ±{S_UNCHANGED_TOL:.2f})")


@claim("entanglement.dfr_cnn", "04_entanglement", _CLAIM_TEXT + " — CNN",
       "Table 5 (ResNet-18): Waterbirds WGA 0.46 → 0.82, Prune_h 52 %, s 0.45 → 0.42; "
       "ISIC WGA 0.37 → 0.71, Prune_h 80 %, s 0.40 → 0.39")
def _claim_cnn(rec: dict):
    return _check_arch(rec, "cnn")


@claim("entanglement.dfr_vit", "04_entanglement", _CLAIM_TEXT + " — ViT",
       "Table 6 (ViT-B/16): Waterbirds WGA 0.66 → 0.86, Prune_h 37 %, s 0.14 → 0.14; "
       "ISIC WGA 0.16 → 0.76, Prune_h 89 %, s 0.23 → 0.26")
def _claim_vit(rec: dict):
    return _check_arch(rec, "vit")


def takeaways(recorded: Mapping) -> str:
    """A short text stating the result in the run's own numbers."""
    lines = []
    for key, r in recorded["table"].items():
        b, d, e = r["baseline"], r["dfr"], r["edit"]
        text, holds = _verdict(r)
        p = [x for x in r["dfr_p"] if x is not None]
        p_txt = f"; random-subset p {min(p):.2f}–{max(p):.2f}" if p else ""
        lines.append(f"- {key} ({r['model']}, {r['n_seeds']} seed(s)): {text.split(': ', 1)[1]}{p_txt}; "
                     f"single-weight edit WGA {e['wga']:.2f}. Paper's reading {'holds' if holds else 'does not hold'}.")
        if d["prune_h_average"] is not None and d["prune_h_refits"] is not None and \
                d["prune_h_refits"] - d["prune_h_average"] > 0.05:
            lines.append(f"  The averaged head is denser ({d['prune_h_average']:.0%}) than each L1 refit "
                         f"({d['prune_h_refits']:.0%}): refits zero different neurons.")
        if b.get("mean_s_influence") is not None and d.get("mean_s_influence") is not None:
            lines.append(f"  Influence-weighted mean s: {b['mean_s_influence']:.2f} → {d['mean_s_influence']:.2f} "
                         f"(chance {r['area']:.2f}).")
    if recorded.get("notes"):
        lines.append("- Notes: " + "; ".join(recorded["notes"]))
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)
