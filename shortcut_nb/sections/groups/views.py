"""Notebook 01's views: Table 2 and Table 3 as frames next to the paper's numbers, the figure, the seeds' spread."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ...figures import METRIC_COLOURS
from ...paper import PAPER_TABLE2, PAPER_TABLE2_MODELS, PAPER_TABLE3
from ...vocab import GROUP_NAMES
from .study import GroupResult, SweepPoint

__all__ = ["table2_frame", "table3_frame", "plot_groups", "seed_spread_frame", "plot_seed_spread"]


def table2_frame(results: Mapping[str, GroupResult]) -> pd.DataFrame:
    """Table 2 as a DataFrame: ours (mean ± std) next to the paper's numbers."""
    rows = []
    for r in results.values():
        row = {"dataset": r.dataset, "model": r.model,
               "AVG": f"{r['avg']:.2f} ± {r['avg_std']:.2f}", "WGA": f"{r['wga']:.2f} ± {r['wga_std']:.2f}",
               "worst group": r.worst_group, "GAP": round(r["gap"], 2),
               "AVG (train-weighted)": None if r["avg_weighted"] is None else round(r["avg_weighted"], 2)}
        if r.dataset in GROUP_NAMES:  # the paper's numbers for the paper's datasets only
            # the paper's own model where it has one (paper profile), else its ResNet-18 / ViT-B/16 row for the arch
            paper = PAPER_TABLE2_MODELS.get((r.dataset, r.model)) or PAPER_TABLE2.get((r.dataset, r.arch), {})
            row.update({"paper AVG": paper.get("avg"), "paper WGA": paper.get("wga"), "paper GAP": paper.get("gap")})
        rows.append(row)
    return pd.DataFrame(rows)


def table3_frame(results: Mapping[str, SweepPoint]) -> pd.DataFrame:
    """Table 3 as a DataFrame: per-group accuracy per minority ratio, ours next to the paper's."""
    rows = []
    for r in results.values():
        row = {"minority ratio": f"{r.ratio * 100:g}%"}
        row.update({f"G{k}": round(v, 2) for k, v in enumerate(r["groups"])})
        row.update({"AVG": round(r["avg"], 2), "WGA": round(r["wga"], 2), "GAP": round(r["gap"], 2)})
        paper = PAPER_TABLE3.get(round(r.ratio, 2))
        row["paper G0..G3"] = " / ".join(f"{v:.2f}" for v in paper) if paper else None
        rows.append(row)
    return pd.DataFrame(rows)


def plot_groups(table2: Mapping[str, GroupResult], sweep: Mapping[str, SweepPoint], *,
                dataset_names: Mapping[str, tuple[str, ...]] = GROUP_NAMES):
    """One figure: left, per-group test accuracy of every model/dataset (Table 2); right, the sweep (Table 3)."""
    points = list(sweep.values())
    fig, axes = plt.subplots(1, 2 if points else 1, figsize=(12 if points else 7, 4), squeeze=False)
    ax1 = axes[0, 0]
    keys = list(table2)
    width = 0.8 / max(len(keys), 1)
    n_groups = max((len(r["groups"]) for r in table2.values()), default=0)
    for i, key in enumerate(keys):
        r = table2[key]
        ax1.bar(np.arange(len(r["groups"])) + i * width, r["groups"], width, label=f"{key} ({r.model})")
    ax1.set_xticks(np.arange(n_groups) + width * (len(keys) - 1) / 2)
    names = {tuple(r.names) for r in table2.values()}
    ax1.set_xticklabels(list(names.pop()) if len(names) == 1 else
                        (["G0 / BwoP", "G1 / BwP", "G2 / MwoP", "G3 / MwP"] if n_groups == 4 else
                         [f"g{k}" for k in range(n_groups)]), rotation=30 if n_groups > 4 else 0, ha="right" if n_groups > 4 else "center", fontsize=8)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("test accuracy (mean over seeds)")
    ax1.set_title("Per-group accuracy (Table 2)")
    ax1.legend(fontsize=7)
    if not points:
        fig.tight_layout()
        return fig
    ax2 = axes[0, 1]
    for g in range(len(points[0]["groups"])):
        ax2.plot([p.ratio * 100 for p in points], [p["groups"][g] for p in points], marker="o",
                 label=dataset_names["waterbirds"][g])
    ax2.invert_xaxis()
    ax2.set_xlabel("minority ratio in training (%)")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("Minority-ratio sweep, Waterbirds-like (Table 3)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def seed_spread_frame(per_seed: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """Long form of recorded per-seed summaries (``table2_per_seed`` or ``sweep_per_seed``): one row per run,
    seed and metric, columns ``run`` (the record's key), ``seed``, ``metric`` (``AVG``/``WGA``) and ``accuracy``."""
    return pd.DataFrame([{"run": key, "seed": e.get("seed"), "metric": metric, "accuracy": e[metric.lower()]}
                         for key, entries in per_seed.items() for e in entries for metric in METRIC_COLOURS],
                        columns=["run", "seed", "metric", "accuracy"])


def _spread_panel(ax, frame: pd.DataFrame, order: Sequence[str], title: str) -> None:
    """Every seed as a point, the mean over seeds (diamond) ± its standard deviation, AVG and WGA side by side."""
    style = dict(data=frame, x="run", y="accuracy", hue="metric", order=order, hue_order=list(METRIC_COLOURS),
                 palette=METRIC_COLOURS, ax=ax)
    sns.stripplot(**style, dodge=True, jitter=0.08, size=5, alpha=0.7)
    sns.pointplot(**style, dodge=0.4, errorbar="sd", markers="D", markersize=4, linestyle="none", capsize=0.05,
                  err_kws={"linewidth": 1.2}, legend=False)
    ax.set_ylim(-0.05, 1.05)  # below 0: a seed at accuracy 0 shows its whole marker
    ax.set_ylabel("test accuracy (each seed; mean ± sd)")
    ax.set_title(title)
    ax.legend(title=None, fontsize=7)


def plot_seed_spread(table2_per_seed: Mapping[str, Sequence[Mapping[str, Any]]],
                     sweep_per_seed: Mapping[str, Sequence[Mapping[str, Any]]] | None = None):
    """The spread over seeds behind Tables 2 and 3: each seed's AVG and WGA, and their mean ± standard deviation.

    Args:
        table2_per_seed: ``{row key: [each seed's summary]}`` (the record's ``table2_per_seed``, or
            ``{k: r.per_seed for k, r in table2.items()}``).
        sweep_per_seed: ``{f"{ratio:g}": [each seed's summary]}`` (the record's ``sweep_per_seed``); None or empty:
            the Table 2 panel alone.
    """
    sweep_per_seed = sweep_per_seed or {}
    fig, axes = plt.subplots(1, 2 if sweep_per_seed else 1, figsize=(12 if sweep_per_seed else 7, 4), squeeze=False,
                             layout="constrained")
    keys = list(table2_per_seed)
    n_seeds = max((len(v) for v in table2_per_seed.values()), default=0)
    _spread_panel(axes[0, 0], seed_spread_frame(table2_per_seed), keys,
                  f"Spread over seeds (Table 2, {n_seeds} seed{'s' * (n_seeds != 1)})")
    axes[0, 0].set_xlabel("")
    axes[0, 0].tick_params(axis="x", labelsize=8, labelrotation=30 if len(keys) > 4 else 0)
    if sweep_per_seed:
        ratios = sorted(sweep_per_seed, key=float, reverse=True)  # 50 % first, as Table 3 reads
        frame = seed_spread_frame({f"{float(k) * 100:g}%": sweep_per_seed[k] for k in ratios})
        _spread_panel(axes[0, 1], frame, [f"{float(k) * 100:g}%" for k in ratios],
                      "Spread over seeds, minority-ratio sweep (Table 3)")
        axes[0, 1].set_xlabel("minority ratio in training")
    return fig
