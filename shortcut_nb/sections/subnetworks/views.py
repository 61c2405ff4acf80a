"""Notebook 05's frames and figures (Figs. 6–7, the subnetwork view), read from the recorded entries.

Every function here reads :func:`.record.prusc_entry` / :func:`.record.removal_entry` dicts (what the
notebook records, so a recorded JSON draws the same), never trains.
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ... import figures
from ...paper import PAPER_FIG6, PAPER_FIG7
from .record import subnet_key


def layers_lost_most(per_layer_keep: Mapping[str, float], n: int = 5) -> list[tuple[str, float]]:
    """The ``n`` layers with the lowest kept fraction, lowest first (ties: module order)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    items = list(per_layer_keep.items())
    order = sorted(range(len(items)), key=lambda i: (items[i][1], i))
    return [items[i] for i in order[:n]]


def subnetwork_view(removal: Mapping, *, removed_group: int, keep_fraction: float, top: int = 5) -> dict:
    """What the subnetwork widget shows for one choice: per-group accuracy and where weights went.

    Args:
        removal: a :func:`.record.removal_entry` (or its recorded JSON).
        removed_group: the group left out of the mask's training data.
        keep_fraction: the mask's keep target (one of the precomputed grid).
        top: how many layers to list under "lost most".

    Returns:
        ``{"dataset", "group_names", "removed_group", "removed_name", "keep_target", "full", "sub",
        "delta", "keep_fraction", "prune_h", "per_layer_keep", "lost_most"}`` (accuracies group 0 first).
    """
    key = subnet_key(removed_group, keep_fraction)
    subs = removal["subnetworks"]
    if key not in subs:
        raise ValueError(f"no precomputed subnetwork for removed_group={removed_group}, keep_fraction={keep_fraction}; "
                         f"available: {sorted(subs)}")
    entry = subs[key]
    full = [float(v) for v in removal["full"]["groups"]]
    sub = [float(v) for v in entry["summary"]["groups"]]
    names = list(removal["group_names"])
    return {
        "dataset": removal["dataset"],
        "group_names": names,
        "removed_group": int(removed_group),
        "removed_name": names[int(removed_group)],
        "keep_target": float(keep_fraction),
        "full": full,
        "sub": sub,
        "delta": [s - f for s, f in zip(sub, full)],
        "keep_fraction": float(entry["keep_fraction"]),
        "prune_h": float(entry["prune_h"]),
        "per_layer_keep": dict(entry["per_layer_keep"]),
        "lost_most": layers_lost_most(entry["per_layer_keep"], top),
    }


def view_summary(view: Mapping) -> str:
    """One line of text for a :func:`subnetwork_view` (the widget's caption)."""
    i = view["removed_group"]
    lost = ", ".join(f"{name} {k:.0%}" for name, k in view["lost_most"][:3])
    return (f"Mask trained without {view['removed_name']}, keeping {view['keep_fraction']:.1%} of the weights "
            f"(head {1 - view['prune_h']:.0%}): {view['removed_name']} accuracy {view['full'][i]:.2f} → "
            f"{view['sub'][i]:.2f}; largest change elsewhere "
            f"{max((abs(d) for k, d in enumerate(view['delta']) if k != i), default=0.0):.2f}. "
            f"Layers pruned most: {lost}.")


def fig6_frame(prusc: Mapping) -> pd.DataFrame:
    """Fig. 6's table: ours (baseline, PruSC-style) next to the paper's ResNet-18 / PruSC numbers."""
    b, p = prusc["baseline"], prusc["prusc"]
    rows = [
        ("WGA", b["wga"], p["wga"], PAPER_FIG6["baseline"]["wga"], PAPER_FIG6["prusc"]["wga"]),
        ("AVG", b["avg"], p["avg"], None, None),
        ("Avg. s-score (all neurons)", b["sscore"]["mean"], p["sscore"]["mean"],
         PAPER_FIG6["baseline"]["mean_s"], PAPER_FIG6["prusc"]["mean_s"]),
        ("Avg. s-score (neurons the head uses)", b["sscore"]["mean_used"], p["sscore"]["mean_used"], None, None),
        ("s-score lift over mask area", b["sscore"]["lift"], p["sscore"]["lift"], None, None),
        ("Prune_h", None, prusc["mask"]["prune_h"], None, PAPER_FIG6["prusc"]["prune_h"]),
        ("Prune_f", None, prusc["mask"]["prune_f"], None, PAPER_FIG6["prusc"]["prune_f"]),
    ]
    frame = pd.DataFrame(rows, columns=["metric", f"ours: {prusc['model']}", "ours: PruSC-style mask",
                                        "paper: ResNet-18", "paper: PruSC"]).set_index("metric")
    return frame.astype(float).round(3)


def fig7_frame(removal: Mapping, *, keep_fraction: float = 0.8) -> pd.DataFrame:
    """Fig. 7's numbers: per-group test accuracy of the full model and each subnetwork at ``keep_fraction``."""
    names = removal["group_names"]
    data = {"full model": removal["full"]["groups"]}
    for key, entry in removal["subnetworks"].items():
        if abs(entry["keep_target"] - keep_fraction) < 1e-9:
            data[f"without {names[entry['removed_group']]}"] = entry["summary"]["groups"]
    frame = pd.DataFrame(data, index=names).T.round(3)
    if removal["dataset"] == "isic" and abs(keep_fraction - 0.8) < 1e-9:
        for label, vals in PAPER_FIG7.items():
            frame.loc[f"paper: {label}" if label != "full" else "paper: full model"] = vals
    return frame


# --------------------------------------------------------------------------- plots


def plot_per_layer_keep(per_layer_keep: Mapping[str, float], *, ax=None, highlight: int = 3, title: str | None = None):
    """Horizontal bars: kept fraction per masked layer (module order), the ``highlight`` lowest in red."""
    names = list(per_layer_keep)
    vals = [per_layer_keep[n] for n in names]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 0.22 * len(names) + 1.2))
    low = {n for n, _ in layers_lost_most(per_layer_keep, max(1, min(highlight, len(names))))} if names else set()
    colors = ["tab:red" if n in low else "tab:blue" for n in names]
    ax.barh(np.arange(len(names)), vals, color=colors)
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("fraction of weights kept")
    ax.set_title(title or "Kept fraction per layer (red: pruned most)", fontsize=9)
    return fig if fig is not None else ax.figure


def plot_fig6(prusc: Mapping):
    """Fig. 6-like: s-score histograms before/after with the chance level, the headline numbers, per-layer keep."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.3, 1, 1.2]})
    ax = axes[0]
    b, p = prusc["baseline"]["sscore"], prusc["prusc"]["sscore"]
    named = {"before": f"{prusc['model']} (mean {b['mean']:.2f})", "after": f"PruSC-style mask (mean {p['mean']:.2f})"}
    figures.sscore_histogram(ax, {named["before"]: b["scores"], named["after"]: p["scores"]}, b["area"], bins=20,
                             colour={named[k]: c for k, c in figures.BEFORE_AFTER_COLOURS.items()}, alpha=0.6,
                             chance_label=f"chance level = mask area {b['area']:.2f}")
    ax.set_xlabel("neuron s-score")
    ax.set_ylabel("neurons")
    ax.set_title(f"s-score distribution ({prusc['dataset']}, α={prusc['alpha']:g})", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    labels = ["WGA", "AVG", "mean s", "mean s\n(used)"]
    before = [prusc["baseline"]["wga"], prusc["baseline"]["avg"], b["mean"], b["mean_used"]]
    after = [prusc["prusc"]["wga"], prusc["prusc"]["avg"], p["mean"], p["mean_used"]]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, before, 0.4, color=figures.BEFORE_AFTER_COLOURS["before"], label="before")
    ax.bar(x + 0.2, after, 0.4, color=figures.BEFORE_AFTER_COLOURS["after"], label="after")
    paper_b = [PAPER_FIG6["baseline"]["wga"], None, PAPER_FIG6["baseline"]["mean_s"], None]
    paper_a = [PAPER_FIG6["prusc"]["wga"], None, PAPER_FIG6["prusc"]["mean_s"], None]
    for xi, vb, va in zip(x, paper_b, paper_a):
        if vb is not None:
            ax.plot([xi - 0.2, xi + 0.2], [vb, va], "k_", ms=14, mew=2)
    ax.plot([], [], "k_", ms=10, mew=2, label="paper (ResNet-18 / PruSC)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    m = prusc["mask"]
    ax.set_title(f"Prune_h {m['prune_h']:.0%}, Prune_f {m['prune_f']:.0%} (paper 65 % / 48 %)", fontsize=9)
    ax.legend(fontsize=7)
    plot_per_layer_keep(m["per_layer_keep"], ax=axes[2], title="PruSC-style mask: kept fraction per layer")
    fig.tight_layout()
    return fig


def _fig7_panel(ax, removal: Mapping, keep_fraction: float) -> None:
    names = removal["group_names"]
    series = [("full model", removal["full"]["groups"])]
    for entry in removal["subnetworks"].values():
        if abs(entry["keep_target"] - keep_fraction) < 1e-9:
            series.append((f"without {names[entry['removed_group']]}", entry["summary"]["groups"]))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for i, (label, vals) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
    if removal["dataset"] == "isic" and abs(keep_fraction - 0.8) < 1e-9:
        for i, (label, _) in enumerate(series):
            paper = PAPER_FIG7.get("full" if label == "full model" else label)
            for k, v in enumerate(paper or []):
                if v is not None:
                    ax.plot(k + (i - (len(series) - 1) / 2) * width, v, "k_", ms=10, mew=2)
        ax.plot([], [], "k_", ms=10, mew=2, label="paper")
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{removal['dataset']} ({removal['model']}): masks keeping {keep_fraction:.0%}", fontsize=9)
    ax.legend(fontsize=7)


def plot_fig7(removals: Mapping[str, Mapping], *, keep_fraction: float = 0.8):
    """Fig. 7-like grouped bars: per-group test accuracy of the full model and each group-removal subnetwork."""
    if not removals:
        raise ValueError("removals is empty: run study.group_removal_experiment first")
    fig, axes = plt.subplots(1, len(removals), figsize=(6 * len(removals), 4), squeeze=False)
    for ax, removal in zip(axes[0], removals.values()):
        _fig7_panel(ax, removal, keep_fraction)
    fig.tight_layout()
    return fig


def plot_subnetwork_view(view: Mapping):
    """The widget's figure: per-group accuracy (full vs subnetwork) and kept fraction per layer."""
    n_layers = len(view["per_layer_keep"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(3.5, 0.2 * n_layers + 1.2)),
                                   gridspec_kw={"width_ratios": [1, 1.2]})
    names = view["group_names"]
    x = np.arange(len(names))
    ax1.bar(x - 0.2, view["full"], 0.4, label="full model")
    ax1.bar(x + 0.2, view["sub"], 0.4, label=f"without {view['removed_name']} ({view['keep_fraction']:.0%} kept)")
    ax1.set_xticks(x)
    ax1.set_xticklabels([f"{n}\n(removed)" if i == view["removed_group"] else n for i, n in enumerate(names)],
                        fontsize=8)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("test accuracy")
    ax1.set_title(f"{view['dataset']}: per-group accuracy", fontsize=9)
    ax1.legend(fontsize=7)
    plot_per_layer_keep(view["per_layer_keep"], ax=ax2)
    fig.tight_layout()
    return fig
