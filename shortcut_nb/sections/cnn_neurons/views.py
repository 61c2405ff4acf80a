"""Notebook 03's frames and figures (Figs. 2 and 4, the s-score histograms, Table 4), read from studies and records.

Nothing here trains or scores: the figures read a :class:`~.study.NeuronStudy` (its per-sample scores and
memoised heatmaps), the frames a study's Table 4 or the recorded entries of :mod:`.record`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ... import figures
from ...bands import BAND_HIGH, BAND_LOW, BANDS, band_counts, band_representatives
from ...data.transforms import denormalize
from ...lastlayer.table4 import DEFAULT_TAU, ROWS
from ...paper import PAPER_TABLE4
from ...vocab import DATASET_LABELS, DETECTOR_LABELS, GROUP_NAMES
from ...sscore.depth import DepthProfile
from ...sscore.variants import dilate_masks
from .study import DEFAULT_ALPHA, N_SHOW, NeuronStudy

#: What the s-score views say when no dataset has masks (notebook 03 then ranks neurons without them).
NO_MASKED_DATASET = ("No dataset analysed has spurious masks: the s-score needs a mask of the spurious region per "
                     "image, so this s-score view is empty (the mask-free ranking near the end covers such data).")

ROW_LABELS: dict[str, str] = {
    "baseline": "CNN (trained head)",
    "pruned": "Pruning (s-score > τ)",
    "refit": "Group-balanced refit (val)",
    "refit_pruned": "Group-balanced refit, pruned",
}


def table4_frame(table: Mapping[str, Any], dataset: str, *, tau: float,
                 group_names: Sequence[str] | None = None) -> pd.DataFrame:
    """One dataset's Table 4 as a DataFrame (rows: the four heads; ISIC also shows the paper's numbers).

    ``group_names``: the data's own (:attr:`NeuronStudy.group_names`); None: the paper's for its datasets."""
    names = list(group_names or GROUP_NAMES.get(dataset, ("G0", "G1", "G2", "G3")))
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


def seed_frame(per_seed: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per dataset and seed: the s-score range, high neurons and Table 4's WGAs (``record.seed_entry``)."""
    if not per_seed:
        return figures.indexed_frame([], ("dataset",), NO_MASKED_DATASET)
    rows = [{"dataset": name, "seed": e["seed"], "min s": round(e["min"], 3), "max s": round(e["max"], 3),
             "mean s": round(e["mean"], 3), "chance": round(e["area"], 3), "high": e["n_high"],
             "zeroed": e["n_pruned"],
             **{f"WGA {row}": None if e["wga"][row] is None else round(e["wga"][row], 3)
                for row in ROWS}}
            for name, entries in per_seed.items() for e in entries]
    return pd.DataFrame(rows).set_index(["dataset", "seed"])


def alpha_sensitivity_frame(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """How the bands move with alpha (the paper does not state it): per dataset and alpha, counts and mean s."""
    if not results:
        return figures.indexed_frame([], ("dataset",), NO_MASKED_DATASET)
    rows = []
    for name, res in results.items():
        for a, st in res["alpha_sensitivity"].items():
            c = st["band_counts"]
            rows.append({"dataset": DATASET_LABELS.get(name, name), "α": float(a), "mean s": round(st["mean"], 3),
                         "max s": round(st["max"], 3), "low": c["low"], "mid": c["mid"], "high": c["high"],
                         "above chance": st["n_above_chance"], "chance (mask area)": round(res["area"], 3)})
    return pd.DataFrame(rows)


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
    if not studies:
        return figures.notice_figure(NO_MASKED_DATASET)
    fig, axes = plt.subplots(len(studies), 4, figsize=(12, 3.3 * len(studies)), squeeze=False, layout="constrained")
    for row, (name, st) in zip(axes, studies.items()):
        s = st.scores(alpha)
        neuron = int((neurons or {}).get(name, int(np.argmax(s))))
        cam = st.heatmaps(neuron, [sample])[0]
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
        cams = study.heatmaps(int(neuron), samples)
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
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    ax.axvspan(0, low, color=figures.BAND_COLOURS["low"], alpha=0.08)
    ax.axvspan(high, 1, color=figures.BAND_COLOURS["high"], alpha=0.08)
    figures.sscore_histogram(ax, s, area)
    ax.axvline(tau, color=figures.THRESHOLD_COLOUR, ls=":", lw=1.5, label=f"τ = {tau:g} (pruned: s > τ)")
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
    if not studies:
        return figures.notice_figure(NO_MASKED_DATASET)
    fig, axes = plt.subplots(1, len(studies), figsize=(6.2 * len(studies), 4.0), squeeze=False, layout="constrained")
    for ax, (name, st) in zip(axes[0], studies.items()):
        plot_histogram(st.scores(alpha), st.area, alpha=alpha, tau=tau, ax=ax,
                       title=f"{DATASET_LABELS.get(name, name)} {st.model_name}, d = {st.d}, N = {st.n_samples}")
    return fig


def plot_table4(results: Mapping[str, Mapping[str, Any]]):
    """Table 4 as bars: per dataset, the accuracy of each head on each test group; paper values as ticks (ISIC)."""
    if not results:
        return figures.notice_figure(NO_MASKED_DATASET)
    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 3.8), squeeze=False, layout="constrained")
    colours = ("tab:gray", "tab:red", "tab:blue", "tab:purple")
    for ax, (name, res) in zip(axes[0], results.items()):
        width = 0.8 / len(ROWS)
        for k, (row, colour) in enumerate(zip(ROWS, colours)):
            r = res["table4"].get(row)
            if r is None:
                continue
            x = np.arange(len(r["groups"])) + k * width
            label = ROW_LABELS[row].replace("τ", f"{res['tau']:g}") + f": WGA {r['wga']:.2f}"
            ax.bar(x, r["groups"], width, color=colour, label=label)
            if name == "isic":
                ax.scatter(x, PAPER_TABLE4[row][:4], marker="_", color="black", s=120, zorder=3,
                           label="paper (ResNet-18)" if k == 0 else None)
        n_groups = len(res["group_names"])
        ax.set_xticks(np.arange(n_groups) + width * (len(ROWS) - 1) / 2)
        ax.set_xticklabels(res["group_names"], fontsize=8, rotation=30 if n_groups > 4 else 0,
                           ha="right" if n_groups > 4 else "center")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{DATASET_LABELS.get(name, name)}: {len(res['pruned_neurons'])} neurons with s > {res['tau']:g} "
                     f"zeroed", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    return fig


# --------------------------------------------------------------------------- beyond the penultimate layer (issue 17)


def plot_depth_profile(profiles: Mapping[str, DepthProfile], *, high: float = BAND_HIGH):
    """The CNN's depth profile: per dataset, every block's unit s-scores, their chance level and the shares."""
    if not profiles:
        return figures.notice_figure(NO_MASKED_DATASET)
    return figures.plot_depth_profile(
        profiles, high=high,
        title=lambda name: f"{DATASET_LABELS.get(name, name)}: where the shortcut lives, block by block")


def depth_frame(profiles: Mapping[str, DepthProfile]) -> pd.DataFrame:
    """The depth profile's numbers, one row per dataset and block (:func:`~shortcut_nb.figures.depth_frame`)."""
    return figures.depth_frame(profiles) if profiles else figures.indexed_frame([], ("dataset",), NO_MASKED_DATASET)


def dilation_caption(dataset: str | None, example: Mapping[str, Any] | None) -> str:
    """One line on Appendix A's edge neuron (:func:`~.study.dilation_example` of ``dataset``)."""
    if example is None:
        return NO_MASKED_DATASET
    return (f"{dataset}: neuron {example['neuron']}: s {example['s']:.3f} -> {example['s_dilated']:.3f} with the mask "
            f"grown by {example['dilation']} px (chance {example['chance']:.3f} -> {example['chance_dilated']:.3f})")


def method_variant_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """How the bands move with the CAM method and the score variant (rows of :func:`~.study.method_variant_bands`)."""
    if not rows:
        return figures.indexed_frame([], ("dataset",), NO_MASKED_DATASET)
    out = []
    for r in rows:
        c = r["band_counts"]
        label = r["variant"] + (f" (mask + {r['dilation']} px)" if r["dilation"] else "")
        out.append({"varied": r["factor"], "method": r["method"], "variant": label, "low": c["low"], "mid": c["mid"],
                    "high": c["high"], "mean s": round(r["mean"], 3), "max s": round(r["max"], 3),
                    "chance": round(r["chance"], 3), "above chance": r["n_above_chance"]})
    return pd.DataFrame(out)


def plot_dilation_example(study: NeuronStudy | None, example: Mapping[str, Any] | None, *, alpha: float = DEFAULT_ALPHA,
                          samples: Sequence[int] | None = None):
    """Appendix A: the neuron whose score rises most under dilation, with the exact (white) and grown (cyan) masks
    (``example`` None: no dataset has masks, said in the figure)."""
    if not example:
        return figures.notice_figure(NO_MASKED_DATASET)
    samples = list(range(min(N_SHOW, study.n_samples))) if samples is None else [int(j) for j in samples]
    neuron, r = int(example["neuron"]), int(example["dilation"])
    cams = study.heatmaps(neuron, samples)
    grown = dilate_masks(study.masks[samples], r).numpy()
    images = _images_np(study, samples)
    fig, axes = plt.subplots(1, len(samples), figsize=(2.3 * len(samples) + 0.6, 2.6), squeeze=False,
                             layout="constrained")
    for ax, k, j in zip(axes[0], range(len(samples)), samples):
        _overlay(ax, images[k], cams[k], study.masks[j].numpy())
        if grown[k].any() and not grown[k].all():
            ax.contour(grown[k].astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"sample {j}", fontsize=8)
    fig.suptitle(f"{DATASET_LABELS.get(study.dataset, study.dataset)}: neuron {neuron}, s = {example['s']:.2f} → "
                 f"{example['s_dilated']:.2f} with the mask grown by {r} px (α = {alpha:g}; chance "
                 f"{example['chance']:.2f} → {example['chance_dilated']:.2f}); white: mask, cyan: grown mask",
                 fontsize=9)
    return fig


# --------------------------------------------------------------------------- detectors against the ground truth (issue 29)

detector_frame = figures.detector_frame
randomisation_frame = figures.randomisation_frame


def plot_detector_scatter(entries: Mapping[str, Mapping[str, Any]], *, tau: float = DEFAULT_TAU):
    """Each CNN neuron's s-score against its spurious share (recorded ``detectors`` entries), chance and τ marked."""
    if not entries:
        return figures.notice_figure(NO_MASKED_DATASET)
    return figures.plot_detector_scatter(entries, key="sscore", tau=tau, model="CNN")


def _wga(row: Mapping[str, Any] | None) -> float | None:
    return None if row is None else round(row["wga"], 3)


def _avg(row: Mapping[str, Any] | None) -> float | None:
    return None if row is None else round(row["avg"], 3)


def detector_pruning_frame(entries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Table 4's pruning with each detector's top-k neurons (recorded ``detectors.<dataset>.pruning``): WGA and
    AVG with the k neurons zeroed (no retraining) and after the group-balanced refit without them; the first rows
    are the trained head and the refit with every neuron."""
    rows = []
    for name, entry in entries.items():
        p = entry.get("pruning")
        if not p:
            continue
        dataset = DATASET_LABELS.get(name, name)
        rows.append({"dataset": dataset, "neurons picked by": "none (trained head; refit with all)", "k": 0,
                     "shared with truth": None, "WGA zeroed": _wga(p["baseline"]), "AVG zeroed": _avg(p["baseline"]),
                     "WGA refit": _wga(p["refit"]), "AVG refit": _avg(p["refit"])})
        for key in figures.detector_order(p["rows"]):
            r = p["rows"][key]
            rows.append({"dataset": dataset, "neurons picked by": DETECTOR_LABELS.get(key, key), "k": p["k"],
                         "shared with truth": r["overlap_truth"], "WGA zeroed": _wga(r["pruned"]),
                         "AVG zeroed": _avg(r["pruned"]), "WGA refit": _wga(r["refit_pruned"]),
                         "AVG refit": _avg(r["refit_pruned"])})
    return figures.indexed_frame(rows, ("dataset", "neurons picked by"), "no dataset has a counterfactual ground truth")


def mask_free_frame(entries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Datasets without masks (recorded ``mask_free`` entries): the top neurons of each mask-free detector, with
    their scores, and how far the two rankings agree."""
    rows = []
    for name, e in entries.items():
        for key, top in e["top"].items():
            scores = e["scores"][key]
            rows.append({"dataset": DATASET_LABELS.get(name, name), "detector": DETECTOR_LABELS.get(key, key),
                         "top neurons": ", ".join(f"n{i} ({scores[i]:.2f})" for i in top),
                         "Spearman of the two rankings": round(e["agreement"], 2), "images": e["n_images"]})
    return figures.indexed_frame(rows, ("dataset", "detector"), "every dataset has masks: nothing to rank without them")


def mask_free_caption(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """What the mask-free ranking below covers: the datasets without masks and why, or that there is none."""
    if not entries:
        return "Every dataset analysed has spurious masks: none is ranked by the mask-free detectors alone."
    return "\n".join(f"{DATASET_LABELS.get(name, name)}: {e['reason']}. The s-score needs that mask; its "
                     f"{len(e['scores']['group_gap'])} neurons are ranked by the mask-free detectors on {e['n_images']} "
                     "validation images instead." for name, e in entries.items())


def detector_pruning_caption(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """Which k each dataset's pruning used, and why (the rule recorded with it)."""
    lines = [f"{DATASET_LABELS.get(name, name)}: {e['pruning']['rule']}." for name, e in entries.items()
             if e.get("pruning")]
    return "\n".join(lines) or "No dataset has a counterfactual ground truth: no detector's neurons to prune."
