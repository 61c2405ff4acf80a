"""Figures more than one notebook draws: the depth profile of unit s-scores (notebooks 03 and 06)."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .bands import BAND_HIGH
from .sscore.depth import DepthProfile
from .vocab import DATASET_LABELS


def plot_depth_profile(profiles: Mapping[str, DepthProfile], *, title: Callable[[str], str],
                       tick: Callable[[str], str] = str, high: float = BAND_HIGH, width: float = 6.2):
    """Per dataset, every block's unit s-scores (boxes) with their chance level, and the shares that beat it.

    Left axis: the distribution of the block's unit s-scores (box and whiskers, median line) and the chance
    level (dashed). Right axis: the share of units significantly above chance (bootstrap, one-sided) and the
    share above the high band. ``title(dataset)`` and ``tick(block)`` label the panels.
    """
    fig, axes = plt.subplots(1, len(profiles), figsize=(width * len(profiles), 4.0), squeeze=False,
                             layout="constrained")
    for ax, (name, prof) in zip(axes[0], profiles.items()):
        x = np.arange(len(prof.blocks))
        ax.boxplot(prof.scores, positions=x, widths=0.5, showfliers=False)
        ax.plot(x, [r["chance"] for r in prof.rows], "k--", lw=1, label="chance (mask area)")
        ax.set_xticks(x)
        ax.set_xticklabels([tick(b) for b in prof.blocks], rotation=30, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"unit s-score (α = {prof.alpha:g}, {prof.variant})")
        right = ax.twinx()
        right.plot(x, [r["share_significant"] for r in prof.rows], "o-", color="tab:red",
                   label="share significantly above chance")
        right.plot(x, [r["share_high"] for r in prof.rows], "s:", color="tab:purple", label=f"share s > {high:g}")
        right.set_ylim(0, 1)
        right.set_ylabel("share of the block's units")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = right.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
        ax.set_title(title(name), fontsize=9)
    return fig


def depth_frame(profiles: Mapping[str, DepthProfile]) -> pd.DataFrame:
    """The depth profile's numbers, one row per dataset and block."""
    return pd.DataFrame([{"dataset": DATASET_LABELS.get(name, name),
                          **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}}
                         for name, prof in profiles.items() for r in prof.rows])
