"""Paper §3.3 / §5.1: neuron spurious scores of a CNN's penultimate neurons (Figs. 2, 4) and pruning them (Table 4).

For each dataset the trained CNN's penultimate neurons are scored with the s-score
(:mod:`shortcut_nb.sscore`) on ``N`` random *training* images whose spurious mask is
non-empty (the paper: 50 training images; an ISIC image without a colour patch has an
empty mask, on which every neuron scores 0 whatever it looks at, so we draw only images
that show the spurious feature; for the Waterbirds-like set that is every image, the mask
being the background).

The heatmaps of all neurons on the ``N`` samples are computed once (in neuron chunks, so
memory stays bounded at any image size) and binarised at every threshold of a grid of
``alpha`` values: :class:`NeuronStudy` keeps the per-sample scores ``(A, N, d)``, so a new
``alpha`` is a lookup, never a new Grad-CAM pass. The paper does not state its ``alpha``
(§3.3 and Appendix A leave it open); we default to :data:`DEFAULT_ALPHA` = 0.5 and expose it.

The s-score is a precision, so it has a chance level: the mean mask area (a heatmap that
ignores the image lands on the mask in proportion to its area). Every figure shows it with
the lift ``s / area``.

Table 4 (pruning): zero the classifier weights of the neurons with ``s > tau``
(:func:`shortcut_nb.lastlayer.dfr.zero_neurons`, no retraining), then refit the last layer on a
group-balanced subsample of the **validation split** (:func:`shortcut_nb.lastlayer.dfr.refit_last_layer`,
a logistic regression; the paper says "fine-tune last-layer weights with a group balanced
set"), for the baseline and for the pruned neuron set. Accuracies are on the **test split**,
computed from cached penultimate features (:func:`shortcut_nb.features.extract_features`)
and the head, which equals running the model.
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from . import sscore
from .bands import BAND_HIGH, BAND_LOW, BANDS, PickBy, band_counts, band_representatives, pick_neuron, select_neurons  # noqa: F401
from .sscore.grid import ALPHA_GRID, CAM_BUDGET_BYTES, alpha_grid, check_alphas, grid_scores, score_grid  # noqa: F401
from .claims import claim
from .paper import PAPER_SSCORE_RANGE, PAPER_TABLE4
from .vocab import GROUP_NAMES
from .data.transforms import denormalize
from .lastlayer.dfr import refit_last_layer, zero_neurons
from .metrics import summarize
from .data.samples import draw_masked_samples
from .progress import progress

DatasetName = Literal["waterbirds", "isic"]
Row = Literal["baseline", "pruned", "refit", "refit_pruned"]

DATASETS: tuple[DatasetName, ...] = ("waterbirds", "isic")
DATASET_LABELS = {"waterbirds": "Waterbirds-like", "isic": "ISIC-like"}
#: Grad-CAM binarisation threshold. The paper does not state it; 0.5 keeps the upper half of each min-max
#: normalised heatmap, its "highly focused region" (§3.3).
DEFAULT_ALPHA = 0.5
#: Pruning threshold of Table 4 ("Pruning (s-score > 0.7)").
DEFAULT_TAU = 0.7
#: Samples shown per neuron in Fig. 4 and the widget (the paper shows five).
N_SHOW = 5
#: Heatmaps of all neurons on the shown samples are kept when they take at most this many bytes.
SHOWN_BUDGET_BYTES = 2**26

ROWS: tuple[Row, ...] = ("baseline", "pruned", "refit", "refit_pruned")
ROW_LABELS: dict[str, str] = {
    "baseline": "CNN (trained head)",
    "pruned": "Pruning (s-score > τ)",
    "refit": "Group-balanced refit (val)",
    "refit_pruned": "Group-balanced refit, pruned",
}

SAMPLE_CHOICE = ("random training images with a non-empty spurious mask (Waterbirds-like: every image, the mask is "
                 "the background; ISIC-like: only images with a colour patch)")
REFIT_SET = "validation split, group-balanced subsample (every group cut to the smallest group's size)"
ACCURACY_SPLIT = "test"


# --------------------------------------------------------------------------- samples


def nonempty_mask_samples(dataset: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Up to ``n`` random items of ``dataset`` whose spurious mask has at least one pixel.

    Walks a seeded permutation of the dataset and stops once ``n`` are found, so only
    about ``n / (fraction with a mask)`` items are loaded. Fewer than ``n`` are returned
    when fewer exist.

    Args:
        dataset: map-style dataset of dicts with ``image`` (3, H, W) and ``mask`` (H, W).
        n: number of samples wanted (>= 1).
        seed: seed of the permutation (same seed, same samples).

    Returns:
        ``images`` (k, 3, H, W) float, ``masks`` (k, H, W) bool, ``indices`` int64 (k,) into ``dataset``,
        with ``1 <= k <= n``.

    Raises:
        ValueError: ``n`` not a positive int, or no item with a non-empty mask.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    samples = draw_masked_samples(dataset, n, seed)
    return samples.images, samples.masks, samples.indices


# --------------------------------------------------------------------------- scores on an alpha grid


# --------------------------------------------------------------------------- the study of one dataset


@dataclass
class Features:
    """Penultimate features of one split with labels: ``z`` float32 (n, d), ``y`` and ``g`` int64 (n,)."""

    z: np.ndarray
    y: np.ndarray
    g: np.ndarray

    @classmethod
    def of(cls, feature_set: Mapping[str, Any]) -> "Features":
        """From :func:`shortcut_nb.features.extract_features`'s result."""
        return cls(np.asarray(feature_set["z"], dtype=np.float32), np.asarray(feature_set["y"], dtype=np.int64),
                   np.asarray(feature_set["g"], dtype=np.int64))


@dataclass
class NeuronStudy:
    """Everything notebook 03 needs about one dataset's CNN: s-score samples, per-sample scores, features.

    Attributes:
        dataset: ``"waterbirds"`` or ``"isic"``.
        model_name: the model's name (e.g. ``resnet_mini``).
        model: the trained SplitModel (eval mode), used again only for the heatmaps shown.
        images: (N, 3, H, W) s-score samples (cpu).
        masks: (N, H, W) bool spurious masks (cpu).
        sample_index: int64 (N,) indices of the samples in the training split.
        alphas: float64 (A,) thresholds of the grid.
        per_sample: float32 (A, N, d) per-sample s-scores at each alpha.
        area: the chance level, mean mask area of the samples.
        head: a cpu copy of the trained classifier ``nn.Linear(d, 2)``.
        test, val: penultimate features of the test and validation splits.
        train_group_counts: training samples per group (for the weighted average).
        seconds: wall time of the steps (``scores``, ``features``).
    """

    dataset: str
    model_name: str
    model: nn.Module
    images: torch.Tensor
    masks: torch.Tensor
    sample_index: np.ndarray
    alphas: np.ndarray
    per_sample: np.ndarray
    area: float
    head: nn.Linear
    test: Features
    val: Features
    train_group_counts: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def d(self) -> int:
        """Number of penultimate neurons."""
        return int(self.per_sample.shape[2])

    @property
    def n_samples(self) -> int:
        return int(self.per_sample.shape[1])

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(GROUP_NAMES.get(self.dataset, ("G0", "G1", "G2", "G3")))

    def alpha_index(self, alpha: float) -> int:
        """Position of ``alpha`` in the grid (within 1e-6; sliders give 0.30000000000000004)."""
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha must be a number, got {alpha!r}")
        hits = np.flatnonzero(np.abs(self.alphas - float(alpha)) < 1e-6)
        if hits.size == 0:
            raise ValueError(f"alpha must be one of the precomputed thresholds "
                             f"{[round(a, 4) for a in self.alphas.tolist()]}, got {alpha!r}")
        return int(hits[0])

    def per_sample_at(self, alpha: float) -> np.ndarray:
        """(N, d) per-sample scores at ``alpha`` (a grid value)."""
        return self.per_sample[self.alpha_index(alpha)]

    def scores(self, alpha: float) -> np.ndarray:
        """(d,) s-scores at ``alpha``: the mean over samples of the per-sample scores."""
        return self.per_sample_at(alpha).astype(np.float64).mean(0)


def build_study(*, dataset: str, model: nn.Module, images: torch.Tensor, masks: torch.Tensor,
                sample_index: Sequence[int], test: Features, val: Features, train_group_counts: Sequence[int],
                alphas: Sequence[float] = ALPHA_GRID, budget_bytes: int = CAM_BUDGET_BYTES,
                progress_bar: bool = False) -> NeuronStudy:
    """A :class:`NeuronStudy` from its parts (scores the neurons; no data loading).

    Args:
        dataset: dataset name (``"waterbirds"``/``"isic"``; names the groups).
        model: a trained SplitModel with ``.head`` an ``nn.Linear``.
        images, masks: s-score samples (N, 3, H, W) and (N, H, W) bool.
        sample_index: their indices in the training split.
        test, val: features of the test split (accuracies) and validation split (refit).
        train_group_counts: training samples per group.
        alphas: the alpha grid.
        budget_bytes, progress_bar: see :func:`score_grid`.
    """
    if not isinstance(getattr(model, "head", None), nn.Linear):
        raise TypeError("model must be a SplitModel whose .head is an nn.Linear")
    tic = time.perf_counter()
    per_sample = score_grid(model, images, masks, alphas, budget_bytes=budget_bytes,
                            chunks=lambda starts: progress(starts, desc="s-scores (neuron chunks)",
                                                           enabled=progress_bar and len(starts) > 1))
    seconds = time.perf_counter() - tic
    head = copy.deepcopy(model.head).cpu().float().eval()
    return NeuronStudy(dataset=dataset, model_name=getattr(model, "name", type(model).__name__), model=model,
                       images=images.cpu(), masks=masks.cpu().bool(), sample_index=np.asarray(sample_index),
                       alphas=check_alphas(alphas), per_sample=per_sample, area=sscore.mask_area(masks.cpu()),
                       head=head, test=test, val=val, train_group_counts=[int(c) for c in train_group_counts],
                       seconds={"scores": seconds})


def neuron_study(profile: str, dataset: DatasetName, *, seed: int = 0, sample_seed: int = 0,
                 n_samples: int | None = None, alphas: Sequence[float] = ALPHA_GRID,
                 root: str | os.PathLike | None = None, progress_bar: bool = True,
                 folder: str | os.PathLike | None = None) -> NeuronStudy:
    """Load (or train) the profile's CNN on ``dataset`` and score its penultimate neurons.

    Args:
        profile: ``"smoke"``, ``"cpu"`` or ``"paper"``.
        dataset: ``"waterbirds"`` or ``"isic"``.
        seed: training seed of the model (and the refit's subsample).
        sample_seed: seed of the draw of s-score samples.
        n_samples: s-score samples (default: the profile's ``sscore_samples``, 50 outside smoke).
        alphas: the alpha grid.
        root: runs root (models, data, feature cache).
        progress_bar: show progress bars.
        folder: a real dataset folder used instead of the synthetic benchmark (None: the benchmark).
    """
    from .config import profile_settings
    from .pipeline.runs import get_split, run_spec, train_or_load
    from .pipeline.feature_cache import extract_features

    spec = run_spec(profile, dataset, arch="cnn", seed=seed, folder=folder)
    model, info = train_or_load(spec, root=root, progress_bar=progress_bar)
    n = n_samples or profile_settings(profile).sscore_samples
    train = get_split(spec.data, "train", root=root)
    images, masks, index = nonempty_mask_samples(train, n, sample_seed)
    tic = time.perf_counter()
    feats = {split: Features.of(extract_features(model, get_split(spec.data, split, root=root), root=root,
                                                 progress_bar=progress_bar)) for split in ("val", "test")}
    feature_seconds = time.perf_counter() - tic
    study = build_study(dataset=dataset, model=model, images=images, masks=masks, sample_index=index,
                        test=feats["test"], val=feats["val"], train_group_counts=info["train_group_counts"],
                        alphas=alphas, progress_bar=progress_bar)
    study.seconds["features"] = feature_seconds
    return study


# --------------------------------------------------------------------------- Table 4


def head_summary(head: nn.Linear, feats: Features, *, train_group_counts: Sequence[int] | None = None) -> dict:
    """Per-group accuracy, AVG, WGA, GAP of ``head`` applied to cached features (see :func:`metrics.summarize`)."""
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    if feats.z.ndim != 2 or feats.z.shape[1] != head.in_features:
        raise ValueError(f"features must have shape (n, {head.in_features}), got {feats.z.shape}")
    with torch.no_grad():
        w = head.weight.detach().cpu().double()
        b = head.bias.detach().cpu().double() if head.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        logits = torch.from_numpy(feats.z).double() @ w.T + b
    pred = logits.argmax(1).numpy()
    out = summarize(pred, feats.y, feats.g, train_group_counts=train_group_counts)
    out["pred_class1"] = float((pred == 1).mean())  # a degenerate head predicts one class
    return out


def _used(head: nn.Linear) -> int:
    return int((head.weight.detach() != 0).any(dim=0).sum())


def prune_and_refit(head: nn.Linear, scores: np.ndarray | Sequence[float], *, tau: float, test: Features,
                    val: Features, seed: int = 0, train_group_counts: Sequence[int] | None = None,
                    n_groups: int = 4, memo: dict | None = None) -> dict[str, Any]:
    """The four rows of the paper's Table 4 on cached features.

    * ``baseline``: the trained head.
    * ``pruned``: the head with the columns of the neurons with ``s > tau`` zeroed (no retraining).
    * ``refit``: a logistic-regression head refit on a group-balanced subsample of ``val`` (all neurons).
    * ``refit_pruned``: the same refit restricted to the neurons that survive pruning.

    Args:
        head: the trained classifier ``nn.Linear(d, 2)``; not modified.
        scores: (d,) s-scores.
        tau: pruning threshold (strict: ``s > tau``).
        test: features where accuracies are measured.
        val: features of the refit set.
        seed: seed of the group-balanced subsample and the solver.
        train_group_counts: for the train-weighted average.
        n_groups: groups the balanced subsample must hold (a group missing from ``val`` fails the refit).
        memo: optional dict reused across calls (refits keyed by the neuron set and seed).

    Returns:
        ``{row: summary | None}`` for the four rows, plus ``"pruned_neurons"`` (ids, highest s first)
        and ``"errors"`` (``{row: reason}``). A summary is :func:`head_summary`'s dict plus ``n_zeroed``
        and ``n_used`` (neurons with a non-zero weight); a refit that cannot be made (a group missing
        from ``val``, every neuron pruned) is None, with the reason in ``errors``.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape != (head.in_features,):
        raise ValueError(f"scores must have shape ({head.in_features},) (one per neuron), got {s.shape}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating)) or not 0.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be a number in [0, 1], got {tau!r}")
    memo = {} if memo is None else memo
    pruned = select_neurons(torch.from_numpy(s), float(tau)).numpy()
    keep = np.setdiff1d(np.arange(len(s)), pruned)
    out: dict[str, Any] = {"errors": {}}

    def summary(h: nn.Linear, n_zeroed: int) -> dict:
        r = head_summary(h, test, train_group_counts=train_group_counts)
        r.update(n_zeroed=int(n_zeroed), n_used=_used(h))
        return r

    def refit(neurons: np.ndarray, n_zeroed: int, row: str) -> dict | None:
        key = ("refit", tuple(neurons.tolist()), int(seed), int(n_groups))
        if key not in memo:
            try:
                memo[key] = refit_last_layer(val.z, val.y, val.g, seed=int(seed), neuron_mask=neurons,
                                             n_groups=n_groups)
            except ValueError as err:
                memo[key] = err
        h = memo[key]
        if isinstance(h, Exception):
            out["errors"][row] = str(h)
            return None
        return summary(h, n_zeroed)

    out["baseline"] = summary(head, 0)
    out["pruned"] = summary(zero_neurons(head, pruned), len(pruned)) if len(pruned) else dict(out["baseline"])
    out["refit"] = refit(np.arange(len(s)), 0, "refit")
    if keep.size:
        out["refit_pruned"] = refit(keep, len(pruned), "refit_pruned")
    else:
        out["refit_pruned"] = None
        out["errors"]["refit_pruned"] = f"every neuron has s > {tau}: nothing left to refit"
    out["pruned_neurons"] = pruned.tolist()
    return out


def table4_frame(table: Mapping[str, Any], dataset: str, *, tau: float) -> pd.DataFrame:
    """One dataset's Table 4 as a DataFrame (rows: the four heads; ISIC also shows the paper's numbers)."""
    names = list(GROUP_NAMES.get(dataset, ("G0", "G1", "G2", "G3")))
    rows = []
    for row in ROWS:
        r = table.get(row)
        label = ROW_LABELS[row].replace("τ", f"{tau:g}")
        entry: dict[str, Any] = {"head": label}
        if r is None:
            entry.update({n: None for n in names})
            entry.update(AVG=None, WGA=None, zeroed=None, note=table.get("errors", {}).get(row, ""))
        else:
            entry.update({n: round(v, 3) for n, v in zip(names, r["groups"])})
            entry.update(AVG=round(r["avg"], 3), WGA=round(r["wga"], 3), zeroed=r["n_zeroed"], note="")
        if dataset == "isic":
            p = PAPER_TABLE4[row]
            entry.update({"paper WGA (MwP)": p[3], "paper AVG": p[4]})
        rows.append(entry)
    return pd.DataFrame(rows).set_index("head")


# --------------------------------------------------------------------------- bands and neurons


def neuron_heatmaps(study: NeuronStudy, neuron: int, samples: Sequence[int]) -> np.ndarray:
    """Grad-CAM heatmaps (len(samples), H, W) of one neuron on some of the study's samples (memoised)."""
    if not 0 <= int(neuron) < study.d:
        raise ValueError(f"neuron must lie in [0, {study.d}), got {neuron}")
    samples = [int(j) for j in samples]
    if not samples or min(samples) < 0 or max(samples) >= study.n_samples:
        raise ValueError(f"samples must be a non-empty list of indices in [0, {study.n_samples}), got {samples}")
    device = next(study.model.parameters()).device
    shown = list(range(min(N_SHOW, study.n_samples)))
    h, w = study.images.shape[-2:]
    if set(samples) <= set(shown) and len(shown) * study.d * h * w * 4 <= SHOWN_BUDGET_BYTES:
        # One pass gives every neuron's maps on the shown samples (the analytic CNN path costs one
        # forward for all neurons), so the picker and Figs. 2 and 4 need no further forward pass.
        if "shown_cams" not in study._memo:
            cams = sscore.neuron_cams(study.model, study.images[shown].to(device))
            study._memo["shown_cams"] = cams.cpu().numpy()
        return study._memo["shown_cams"][samples, int(neuron)]
    key = ("cams", int(neuron), tuple(samples))
    if key not in study._memo:
        cams = sscore.neuron_cams(study.model, study.images[samples].to(device), neurons=[int(neuron)])
        study._memo[key] = cams[:, 0].cpu().numpy()
    return study._memo[key]


def score_stats(scores: np.ndarray | Sequence[float], area: float, *, tau: float = DEFAULT_TAU,
                low: float = BAND_LOW, high: float = BAND_HIGH) -> dict:
    """Summary of one set of s-scores against the chance level ``area`` (the mean mask area).

    Returns:
        ``{"min", "max", "mean", "median", "area", "lift_mean", "lift_max", "band_counts", "n_above_tau",
        "n_above_chance", "n_high", "n_high_above_chance", "top"}`` (``top``: the 5 highest neurons).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    area = float(area)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1], got {area}")
    counts = band_counts(s, low, high)
    order = np.argsort(-s, kind="stable")
    return {
        "min": float(s.min()), "max": float(s.max()), "mean": float(s.mean()), "median": float(np.median(s)),
        "area": area, "lift_mean": float(s.mean() / area), "lift_max": float(s.max() / area),
        "band_counts": counts, "n_above_tau": int((s > tau).sum()), "n_above_chance": int((s > area).sum()),
        "n_high": int((s > high).sum()), "n_high_above_chance": int(((s > high) & (s > area)).sum()),
        "top": [{"neuron": int(i), "s": float(s[i])} for i in order[:5]],
    }


def neuron_experiment(study: NeuronStudy, *, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
                      seed: int = 0, sensitivity_alphas: Sequence[float] = (0.3, 0.5, 0.7)) -> dict:
    """Scores, bands and Table 4 of one dataset at ``alpha`` / ``tau``: the JSON-able numbers the notebook records."""
    s = study.scores(alpha)
    table = prune_and_refit(study.head, s, tau=tau, test=study.test, val=study.val, seed=seed,
                            train_group_counts=study.train_group_counts, memo=study._memo)
    sens = {}
    for a in sensitivity_alphas:
        if np.any(np.abs(study.alphas - a) < 1e-6):
            st = score_stats(study.scores(a), study.area, tau=tau)
            sens[f"{a:g}"] = {k: st[k] for k in ("mean", "max", "band_counts", "n_above_chance")}
    return {
        "dataset": study.dataset, "model": study.model_name, "d": study.d, "n_samples": study.n_samples,
        "sample_index": study.sample_index.tolist(), "alpha": float(alpha), "tau": float(tau),
        "scores": [round(float(v), 6) for v in s], **score_stats(s, study.area, tau=tau),
        "table4": {row: table[row] for row in ROWS}, "table4_errors": table["errors"],
        "pruned_neurons": table["pruned_neurons"], "alpha_sensitivity": sens,
        "group_names": list(study.group_names), "seconds": dict(study.seconds),
    }


def alpha_sensitivity_frame(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """How the bands move with alpha (the paper does not state it): per dataset and alpha, counts and mean s."""
    rows = []
    for name, res in results.items():
        for a, st in res["alpha_sensitivity"].items():
            c = st["band_counts"]
            rows.append({"dataset": DATASET_LABELS.get(name, name), "α": float(a), "mean s": round(st["mean"], 3),
                         "max s": round(st["max"], 3), "low": c["low"], "mid": c["mid"], "high": c["high"],
                         "above chance": st["n_above_chance"], "chance (mask area)": round(res["area"], 3)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def _overlay(ax, image: np.ndarray, cam: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
    ax.imshow(image)
    if cam is not None:
        ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if mask is not None and mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def overlap_image(binary: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB picture of ``b`` against ``m``: red ``b ∩ m``, blue ``b`` outside ``m``, grey ``m`` alone, white else."""
    b, m = np.asarray(binary, dtype=bool), np.asarray(mask, dtype=bool)
    if b.shape != m.shape or b.ndim != 2:
        raise ValueError(f"binary and mask must be (H, W) of one shape, got {b.shape} and {m.shape}")
    img = np.ones((*b.shape, 3))
    img[m & ~b] = (0.82, 0.82, 0.82)
    img[b & ~m] = (0.25, 0.45, 0.95)
    img[b & m] = (0.90, 0.15, 0.15)
    return img


def _images_np(study: NeuronStudy, samples: Sequence[int]) -> np.ndarray:
    return denormalize(study.images[list(samples)]).permute(0, 2, 3, 1).numpy()


def plot_sscore_derivation(studies: Mapping[str, NeuronStudy], *, alpha: float = DEFAULT_ALPHA,
                           neurons: Mapping[str, int] | None = None, sample: int = 0):
    """Fig. 2: per dataset, the image, its spurious mask, a neuron's heatmap and the binarised map ∩ mask.

    Args:
        studies: ``{dataset: NeuronStudy}`` (one row each).
        alpha: binarisation threshold.
        neurons: neuron per dataset (default: its highest s-score at ``alpha``).
        sample: which s-score sample to show.
    """
    fig, axes = plt.subplots(len(studies), 4, figsize=(12, 3.3 * len(studies)), squeeze=False, layout="constrained")
    for row, (name, st) in zip(axes, studies.items()):
        s = st.scores(alpha)
        neuron = int((neurons or {}).get(name, int(np.argmax(s))))
        cam = neuron_heatmaps(st, neuron, [sample])[0]
        image = _images_np(st, [sample])[0]
        mask = st.masks[sample].numpy()
        binary = cam >= np.float32(alpha)
        score = float(st.per_sample_at(alpha)[sample, neuron])
        _overlay(row[0], image)
        row[0].set_title(f"{DATASET_LABELS.get(name, name)}: training image", fontsize=9)
        row[1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        row[1].set_xticks([]), row[1].set_yticks([])
        row[1].set_title(f"spurious mask m (area {mask.mean():.2f})", fontsize=9)
        _overlay(row[2], image, cam, mask)
        row[2].set_title(f"Grad-CAM of neuron {neuron} (s = {s[neuron]:.2f})", fontsize=9)
        row[3].imshow(overlap_image(binary, mask))
        row[3].set_xticks([]), row[3].set_yticks([])
        lift = score / mask.mean() if mask.mean() > 0 else float("nan")
        row[3].set_title(f"b (cam ≥ {alpha:g}) ∩ m: {score:.2f} (lift {lift:.1f})", fontsize=9)
    fig.suptitle("s-score derivation (paper Fig. 2): red = focus inside the mask, blue = outside, grey = rest of mask",
                 fontsize=10)
    return fig


def plot_neuron_rows(study: NeuronStudy, neurons: Mapping[str, int | None], *, alpha: float = DEFAULT_ALPHA,
                     samples: Sequence[int] | None = None, overlap_row: bool = False):
    """Fig. 4 (and the widget's view): rows = neurons, columns = samples; heatmap overlays with per-sample scores.

    Args:
        study: the dataset's study.
        neurons: ``{row label: neuron or None}`` (None draws an empty row saying the band is empty).
        alpha: binarisation threshold of the per-sample scores shown.
        samples: sample positions (default the first :data:`N_SHOW`).
        overlap_row: after each heatmap row, add a row of binarised maps ∩ mask (the widget's view).
    """
    samples = list(range(min(N_SHOW, study.n_samples))) if samples is None else [int(j) for j in samples]
    s = study.scores(alpha)
    per = study.per_sample_at(alpha)
    images = _images_np(study, samples)
    n_rows = len(neurons) * (2 if overlap_row else 1)
    fig, axes = plt.subplots(n_rows, len(samples), figsize=(2.2 * len(samples) + 0.8, 2.3 * n_rows), squeeze=False,
                             layout="constrained")
    r = 0
    for label, neuron in neurons.items():
        rows = axes[r:r + (2 if overlap_row else 1)]
        r += len(rows)
        if neuron is None:
            for ax_row in rows:
                for ax in ax_row:
                    ax.axis("off")
            note = rows[0][0].text(0.0, 0.5, f"{label}: no neuron in this band at α = {alpha:g}", fontsize=9,
                                   transform=rows[0][0].transAxes)
            note.set_in_layout(False)  # a long note in an empty row must not widen the first column
            continue
        cams = neuron_heatmaps(study, int(neuron), samples)
        for k, j in enumerate(samples):
            mask = study.masks[j].numpy()
            _overlay(rows[0][k], images[k], cams[k], mask)
            rows[0][k].set_title(f"sample {j}: s = {per[j, neuron]:.2f}", fontsize=8)
            if overlap_row:
                rows[1][k].imshow(overlap_image(cams[k] >= np.float32(alpha), mask))
                rows[1][k].set_xticks([]), rows[1][k].set_yticks([])
        rows[0][0].set_ylabel(f"{label}\nneuron {neuron}\ns = {s[neuron]:.2f}, lift {s[neuron] / study.area:.1f}",
                              fontsize=8)
        if overlap_row:
            rows[1][0].set_ylabel(f"b (cam ≥ {alpha:g}) ∩ m\nred inside, blue outside", fontsize=8)
    return fig


def plot_band_neurons(study: NeuronStudy, *, alpha: float = DEFAULT_ALPHA, low: float = BAND_LOW,
                      high: float = BAND_HIGH, samples: Sequence[int] | None = None):
    """Fig. 4: one neuron from each of the low / mid / high bands (its median-ranked one) over five samples."""
    reps = band_representatives(study.scores(alpha), low=low, high=high)
    labels = {"low": f"low (s < {low:g})", "mid": f"mid ({low:g}–{high:g})", "high": f"high (s > {high:g})"}
    fig = plot_neuron_rows(study, {labels[b]: reps[b] for b in BANDS}, alpha=alpha, samples=samples)
    fig.suptitle(f"{DATASET_LABELS.get(study.dataset, study.dataset)}: neurons from the three s-score bands "
                 f"(white outline = spurious mask; chance level {study.area:.2f})", fontsize=10)
    return fig


def plot_histogram(scores: np.ndarray | Sequence[float], area: float, *, alpha: float, tau: float,
                   title: str = "", low: float = BAND_LOW, high: float = BAND_HIGH, ax=None):
    """Histogram of s-scores with the bands, the pruning threshold, the chance level and a lift axis on top."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    area = float(area)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    ax.axvspan(0, low, color="tab:green", alpha=0.08)
    ax.axvspan(high, 1, color="tab:red", alpha=0.08)
    ax.hist(s, bins=np.linspace(0, 1, 41), color="tab:blue", alpha=0.85)
    ax.axvline(area, color="black", ls="--", lw=1.2, label=f"chance = mean mask area {area:.2f}")
    ax.axvline(tau, color="tab:red", ls=":", lw=1.5, label=f"τ = {tau:g} (pruned: s > τ)")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"s-score (α = {alpha:g})")
    ax.set_ylabel("neurons")
    top = ax.secondary_xaxis("top", functions=(lambda x: x / area, lambda x: x * area))
    top.set_xlabel("lift = s / chance", fontsize=8)
    c = band_counts(s, low, high)
    ax.set_title(f"{title}\nlow {c['low']} · mid {c['mid']} · high {c['high']}; mean s {s.mean():.2f} "
                 f"(lift {s.mean() / area:.1f}), max {s.max():.2f} (lift {s.max() / area:.1f})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return ax.figure


def plot_histograms(studies: Mapping[str, NeuronStudy], *, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU):
    """The s-score histogram of every dataset, side by side."""
    fig, axes = plt.subplots(1, len(studies), figsize=(6.2 * len(studies), 4.0), squeeze=False, layout="constrained")
    for ax, (name, st) in zip(axes[0], studies.items()):
        plot_histogram(st.scores(alpha), st.area, alpha=alpha, tau=tau, ax=ax,
                       title=f"{DATASET_LABELS.get(name, name)} {st.model_name}, d = {st.d}, N = {st.n_samples}")
    return fig


def plot_table4(results: Mapping[str, Mapping[str, Any]]):
    """Table 4 as bars: per dataset, the accuracy of each head on each test group; paper values as ticks (ISIC)."""
    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 3.8), squeeze=False, layout="constrained")
    colours = ("tab:gray", "tab:red", "tab:blue", "tab:purple")
    for ax, (name, res) in zip(axes[0], results.items()):
        width = 0.8 / len(ROWS)
        for k, (row, colour) in enumerate(zip(ROWS, colours)):
            r = res["table4"].get(row)
            if r is None:
                continue
            x = np.arange(4) + k * width
            label = ROW_LABELS[row].replace("τ", f"{res['tau']:g}") + f": WGA {r['wga']:.2f}"
            ax.bar(x, r["groups"], width, color=colour, label=label)
            if name == "isic":
                ax.scatter(x, PAPER_TABLE4[row][:4], marker="_", color="black", s=120, zorder=3,
                           label="paper (ResNet-18)" if k == 0 else None)
        ax.set_xticks(np.arange(4) + width * (len(ROWS) - 1) / 2)
        ax.set_xticklabels(res["group_names"], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{DATASET_LABELS.get(name, name)}: {len(res['pruned_neurons'])} neurons with s > {res['tau']:g} "
                     f"zeroed", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    return fig


# --------------------------------------------------------------------------- record, takeaways, claims


def record_payload(results: Mapping[str, Mapping[str, Any]], *, profile: str, seconds: float,
                   alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> dict:
    """The numbers notebook 03 records; ``headline`` is the ISIC-like set (the paper's Table 4) when present."""
    headline = "isic" if "isic" in results else next(iter(results))
    h = results[headline]
    return {
        "profile": profile, "seconds": float(seconds), "alpha": float(alpha), "tau": float(tau),
        "band_edges": [BAND_LOW, BAND_HIGH], "alpha_grid": list(ALPHA_GRID), "sample_choice": SAMPLE_CHOICE,
        "refit_set": REFIT_SET, "accuracy_split": ACCURACY_SPLIT, "headline": headline,
        "min": h["min"], "max": h["max"], "area": h["area"],
        "wga": {row: (None if h["table4"][row] is None else h["table4"][row]["wga"]) for row in ROWS},
        "datasets": {name: dict(r) for name, r in results.items()},
        "paper_table4": PAPER_TABLE4, "paper_sscore_range": list(PAPER_SSCORE_RANGE),
    }


def _wgas(res: Mapping[str, Any]) -> dict[str, float | None]:
    return {row: (None if res["table4"][row] is None else res["table4"][row]["wga"]) for row in ROWS}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def chance_remark(res: Mapping[str, Any]) -> str:
    """Whether the high neurons beat the chance level (the mean mask area)."""
    n_high, above = res["n_high"], res["n_high_above_chance"]
    if n_high == 0:
        return f"no neuron above {BAND_HIGH:g}; chance level {res['area']:.2f}, max lift {res['lift_max']:.1f}"
    if res["area"] >= BAND_HIGH:
        return (f"but chance (mask area) is {res['area']:.2f}, so 'high' is no better than a heatmap ignoring the "
                f"image: {above} of {n_high} high neurons exceed chance, max lift {res['lift_max']:.2f}")
    return (f"chance (mask area) {res['area']:.2f}: all {n_high} high neurons exceed it, max lift "
            f"{res['lift_max']:.1f}")


def takeaways(recorded: Mapping[str, Any]) -> str:
    """A short text stating the result in the run's own numbers."""
    lines = []
    for name, r in recorded["datasets"].items():
        c = r["band_counts"]
        lines.append(f"- {DATASET_LABELS.get(name, name)} ({r['model']}, d = {r['d']}, N = {r['n_samples']}, "
                     f"α = {r['alpha']:g}): s-scores {r['min']:.2f}–{r['max']:.2f} (paper, ISIC: 0.0–0.8); bands "
                     f"low {c['low']} · mid {c['mid']} · high {c['high']}; {chance_remark(r)}.")
        w = _wgas(r)
        lines.append(f"  Table 4: WGA {_fmt(w['baseline'])} → {_fmt(w['pruned'])} after zeroing "
                     f"{len(r['pruned_neurons'])} neurons with s > {r['tau']:g}; group-balanced refit "
                     f"{_fmt(w['refit'])}, refit after pruning {_fmt(w['refit_pruned'])} "
                     f"(paper, ISIC: 0.37 → 0.40; 0.51, 0.56).")
    lines.append(f"- Refit set: {recorded['refit_set']}; accuracies on the {recorded['accuracy_split']} split.")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


SPREAD_MIN = 0.5  # "a wide range": max - min at least half the scale (paper 0.0-0.8)


@claim("neurons.spread", "03_cnn_neurons", "CNN s-scores spread over a wide range, some neurons high (s > 0.7)",
       "§5.1: ResNet-18 on ISIC, s-scores from 0.0 to 0.8; some neurons above 0.7 (pruned in Table 4)")
def _spread(rec: dict):
    isic = rec["datasets"]["isic"]
    parts = [f"ISIC-like: {isic['min']:.2f}–{isic['max']:.2f}, {isic['n_high']} > 0.7 ({chance_remark(isic)})"]
    wb = rec["datasets"].get("waterbirds")
    if wb is not None:
        parts.append(f"Waterbirds-like: {wb['min']:.2f}–{wb['max']:.2f}, {wb['n_high']} > 0.7 ({chance_remark(wb)})")
    holds = isic["max"] - isic["min"] >= SPREAD_MIN and isic["n_high"] >= 1
    return f"α = {rec['alpha']:g}; " + "; ".join(parts), holds


@claim("neurons.prune_refit", "03_cnn_neurons",
       "Zeroing neurons with s > 0.7 raises WGA a little; a group-balanced last-layer refit raises it more",
       "Table 4 (ResNet-18, ISIC): WGA 0.37 → 0.40 pruned; refit 0.51, refit after pruning 0.56")
def _prune_refit(rec: dict):
    isic = rec["datasets"]["isic"]
    w = _wgas(isic)
    n = len(isic["pruned_neurons"])
    ours = (f"ISIC-like: WGA {_fmt(w['baseline'])} → {_fmt(w['pruned'])} ({n} neurons zeroed); refit "
            f"{_fmt(w['refit'])}, refit after pruning {_fmt(w['refit_pruned'])} (refit on {rec['refit_set'].split(',')[0]})")
    if n == 0 or any(v is None for v in w.values()):
        return ours + ("; no neuron above τ, nothing pruned" if n == 0 else ""), False
    holds = w["pruned"] > w["baseline"] and min(w["refit"], w["refit_pruned"]) > w["pruned"]
    return ours, holds
