"""Notebook 02's tables and figures: Fig. 3's projections, the purity bars and frames, read from the study's results."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...data.groups import GroupScheme
from ...embeddings import as_labels, check_choice
from ...figures import ATTRIBUTE_COLOURS, CLASS_COLOURS, GROUP_COLOURS
from ...vocab import CLASS_NAMES, group_names
from .study import COLOUR_BY, ColourBy, LatentSource, Picture, view_results

PROJECTION_LABELS = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}

# Styling: the colours are the project's (figures: hue = spurious attribute, shade = class), marker = class (o: class
# 0, ^: class 1). Every group is a distinct (colour, marker) pair.
CLASS_MARKERS = ("o", "^")
ATTRIBUTE_MARKERS = ("o", "s")
FEATURE_COLUMNS = ["dataset", "arch", "split", "model", "n", "d", "from_cache", "seconds", "extract_seconds"]


def _styles(groups: GroupScheme | None) -> tuple[tuple, tuple, tuple, tuple, tuple]:
    """(group, attribute, class colours; class, attribute markers): the paper's 2 × 2 palette, else tab20/tab10 and
    cycled markers for any number of classes and attribute values."""
    if groups is None or groups.n_groups == 4:
        return GROUP_COLOURS, ATTRIBUTE_COLOURS, CLASS_COLOURS, CLASS_MARKERS, ATTRIBUTE_MARKERS
    markers = ("o", "^", "s", "D", "v", "P", "X", "*")
    return (tuple(plt.cm.tab20(k % 20) for k in range(groups.n_groups)),
            tuple(plt.cm.tab10(k % 10) for k in range(groups.n_values)),
            tuple(plt.cm.tab10(k % 10) for k in range(groups.n_classes)),
            tuple(markers[k % len(markers)] for k in range(groups.n_classes)),
            tuple(markers[k % len(markers)] for k in range(groups.n_values)))


def scatter_panel(ax, coords: np.ndarray, y: np.ndarray, a: np.ndarray, *, dataset: str = "waterbirds",
                  colour_by: ColourBy = "group", title: str = "", point_size: float | None = None,
                  legend: bool = True, groups: GroupScheme | None = None) -> None:
    """Draw one projection (N, 2) on ``ax``: one (colour, marker) per group, minorities drawn on top.

    ``colour_by="group"``: one colour per group (the paper's 2 × 2: hue = spurious attribute, shade = class) and
    marker = class; ``"attribute"``: colour = attribute, marker = class; ``"class"``: colour = class, marker =
    attribute. ``groups``: the data's classes and attribute values (None: the paper's 2 × 2 of ``dataset``).
    """
    check_choice("colour_by", colour_by, COLOUR_BY)
    coords = np.asarray(coords)
    n = len(coords)
    y, a = as_labels(y, n, "y"), as_labels(a, n, "a")
    n_values = groups.n_values if groups is not None else 2
    g = y * n_values + a
    names = groups.names if groups is not None else group_names(dataset)
    group_colours, attribute_colours, class_colours, class_markers, attribute_markers = _styles(groups)
    size = point_size or float(np.clip(3000 / max(n, 1), 4, 30))
    order = sorted(range(len(names)), key=lambda k: -int((g == k).sum()))  # big groups first, minorities on top
    handles = {}
    for k in order:
        members = g == k
        if not members.any():
            continue
        cls, att = k // n_values, k % n_values
        colour = {"group": group_colours[k], "attribute": attribute_colours[att], "class": class_colours[cls]}[colour_by]
        marker = attribute_markers[att] if colour_by == "class" else class_markers[cls]
        handles[k] = ax.scatter(coords[members, 0], coords[members, 1], s=size, c=colour, marker=marker, alpha=0.75,
                                linewidths=0, label=f"{names[k]} (n={int(members.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if legend and handles:
        ax.legend(handles=[handles[k] for k in sorted(handles)], fontsize=7, markerscale=1.5, loc="best",
                  framealpha=0.8)  # legend in group order G0..G3


def purity_note(result: Mapping | None) -> str:
    """One line: a view's within-class attribute purity next to its shuffled baseline."""
    if not result or result.get("attribute", {}).get("purity") is None:
        return "within-class attribute purity: n/a"
    att = result["attribute"]
    return f"within-class attribute purity {att['purity']:.2f} (shuffled {att['baseline']:.2f})"


def render_view(picture: Picture, *, ax=None, result: Mapping | None = None):
    """The picture of one view (a :class:`~.study.Picture`); ``result`` adds its measured purity to the title.

    Returns:
        The matplotlib Figure drawn on (a new one when ``ax`` is None).
    """
    view = picture.view
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
    title = f"{picture.model} · {view.dataset}-like · {view.split} · {PROJECTION_LABELS[view.projection]}"
    if result is not None:
        title += "\n" + purity_note(result)
    scatter_panel(ax, picture.coords, picture.y, picture.a, dataset=view.dataset, colour_by=view.colour_by,
                  title=title, groups=picture.groups)
    return fig if fig is not None else ax.figure


def plot_fig3(pictures: Sequence[Sequence[Picture]], *, results: Mapping[str, Mapping] | None = None):
    """Paper Fig. 3: one projection per (dataset row, model column), CNN left and ViT right
    (from :func:`~.study.fig3_pictures`).

    ``results`` (from :func:`~.study.neighbourhood_analysis`) adds each panel's within-class attribute purity and
    its shuffled baseline to the title.
    """
    n_rows, n_cols = len(pictures), len(pictures[0])
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols, 4.6 * n_rows), squeeze=False)
    for i, row in enumerate(pictures):
        for j, picture in enumerate(row):
            render_view(picture, ax=axes[i, j], result=view_results(results, picture.view))
    first = pictures[0][0].view
    fig.suptitle(f"{PROJECTION_LABELS[first.projection]} of penultimate features f_enc(x), {first.split} split "
                 f"(colour: group; marker: class)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_purity(results: Mapping[str, Mapping], *, split: str = "train"):
    """Bars: within-class attribute purity and class purity per model/dataset, with the shuffled baselines.

    Returns:
        The Figure. Keys without an evaluable class are drawn empty.
    """
    keys = [key for key in results if key.endswith(f"/{split}")]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(keys) + 2), 3.8))
    x = np.arange(len(keys))
    att = [results[key]["attribute"] for key in keys]
    cls = [results[key].get("class") or {} for key in keys]
    nan = float("nan")
    ax.bar(x - 0.2, [r["purity"] if r["purity"] is not None else nan for r in att], 0.38, color="#35978f",
           label="attribute, within class")
    ax.bar(x + 0.2, [r.get("purity", nan) for r in cls], 0.38, color="#bdbdbd", label="class, all samples")
    for offset, rows in ((-0.2, att), (0.2, cls)):
        base = [r.get("baseline") if r.get("baseline") is not None else nan for r in rows]
        err = [2 * (r.get("baseline_std") or 0.0) for r in rows]
        ax.errorbar(x + offset, base, yerr=err, fmt="_", color="black", markersize=18, capsize=3,
                    label="shuffled baseline (± 2 sd)" if offset < 0 else None)
    ax.set_xticks(x)
    ax.set_xticklabels([key.rsplit("/", 1)[0] for key in keys], fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(f"balanced kNN purity (k={next(iter(results.values()))['k'] if results else '?'})")
    ax.set_title(f"Do neighbourhoods follow the spurious attribute? ({split} split)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def features_frame(rows: Sequence[Mapping]) -> pd.DataFrame:
    """One row per feature request (from :func:`~.study.extract_all`), with ``from_cache`` and seconds."""
    return pd.DataFrame(list(rows), columns=FEATURE_COLUMNS)


def log_frame(source: LatentSource) -> pd.DataFrame:
    """What each feature extraction and projection cost in this session (``from_cache``: loaded from disk)."""
    return pd.DataFrame(source.log)


def neighbourhood_frame(results: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per model/dataset/split: attribute purity within class vs its shuffled baseline (the lift, and its
    95 % bootstrap interval over the images: ``lift low`` / ``lift high``, None in older results), and class
    purity."""

    def r2(v):
        return None if v is None else round(float(v), 3)

    rows = []
    for r in results.values():
        att, cls = r["attribute"], r.get("class") or {}
        low, high = att.get("lift_interval") or (None, None)
        rows.append({
            "dataset": r["dataset"], "model": r["model"], "split": r["split"], "n": r["n"],
            "classes used": ", ".join((r.get("class_names") or CLASS_NAMES.get(r["dataset"], ("0", "1")))[int(c)]
                                  for c in r["evaluable"])
            or "none",
            "attr. purity": r2(att["purity"]), "shuffled": r2(att["baseline"]), "lift": r2(att["lift"]),
            "lift low": r2(low), "lift high": r2(high), "p (perm.)": r2(att["p_value"]),
            "attr. silhouette": r2(att["silhouette"]), "shuffled sil.": r2(att["silhouette_baseline"]),
            "class purity": r2(cls.get("purity")), "class shuffled": r2(cls.get("baseline")),
            "class silhouette": r2(cls.get("silhouette")),
        })
    return pd.DataFrame(rows)
