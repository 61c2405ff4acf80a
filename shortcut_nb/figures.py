"""Figures and colours more than one notebook uses: the project's palette, the s-score histogram with its chance
level (notebooks 03–06) and the depth profile of unit s-scores (notebooks 03 and 06), drawn with seaborn.

Sections never import each other: a colour two notebooks share, or one a notebook's figures share, lives here."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .bands import BAND_HIGH
from .sscore.depth import DepthProfile
from .vocab import DATASET_LABELS

# The project's colours, one place: every figure draws these concepts in these colours.
#: s-score distributions over neurons or units.
SSCORE_COLOUR = "tab:blue"
#: The low and high s-score bands (shaded behind a histogram).
BAND_COLOURS = {"low": "tab:green", "high": "tab:red"}
#: A threshold on the s-score (pruning τ, the selection threshold).
THRESHOLD_COLOUR = "tab:red"
#: The chance level of an s-score: the mean mask area.
CHANCE_STYLE = {"color": "black", "ls": "--", "lw": 1.2}
#: The shares of a depth profile: units significantly above chance, units in the high band.
SHARE_COLOURS = {"significant": "tab:red", "high": "tab:purple"}
#: Accuracy metrics: the average and the worst group's.
METRIC_COLOURS = {"AVG": "tab:blue", "WGA": "tab:red"}
#: The two architectures when their s-scores share a plot.
ARCH_COLOURS = {"cnn": "tab:blue", "vit": "tab:orange"}
#: A model before and after an intervention (the dense model and its PruSC-style mask).
BEFORE_AFTER_COLOURS = {"before": "tab:blue", "after": "tab:orange"}
#: Neurons a last-layer head keeps (DFR) against those it zeroes, or against all neurons.
KEPT_COLOURS = {"all": "0.45", "zeroed": "0.5", "kept": "tab:orange"}
# Notebook 02's groups (the paper's 2 × 2): hue = spurious attribute (brown/ochre: land or no patch; teal: water or
# patch), shade = class.
#: G0, G1, G2, G3 (g = 2y + a).
GROUP_COLOURS = ("#8c510a", "#35978f", "#dfc27d", "#01665e")
#: Spurious attribute a = 0, 1.
ATTRIBUTE_COLOURS = ("#bf812d", "#35978f")
#: Class y = 0, 1.
CLASS_COLOURS = ("#1b9e77", "#d95f02")


def sscore_histogram(ax, scores: np.ndarray | Sequence[float] | Mapping[str, np.ndarray | Sequence[float]],
                     area: float, *, bins: int = 40, colour: str | Mapping[str, str] = SSCORE_COLOUR,
                     alpha: float = 0.85, stat: Literal["count", "density"] = "count",
                     chance_label: str | None = None):
    """Draw on ``ax`` the histogram of ``scores`` over [0, 1] (``bins`` bins) and the chance level dashed.

    Args:
        ax: the matplotlib axes.
        scores: (K,) s-scores, or ``{legend label: (K_i,) s-scores}``: several distributions on the same bins, each
            its own seaborn histogram labelled for the axes' legend (an empty one draws nothing).
        area: the chance level (mean mask area).
        colour: the colour, or ``{legend label: colour}`` for several distributions.
        alpha: the bars' opacity (below 1 where distributions overlap).
        stat: ``"count"`` (neurons per bin) or ``"density"`` (each distribution normalised on its own, so shapes
            compare across sizes).
        chance_label: the chance line's legend label (default: ``chance = mean mask area <area>``).
    """
    groups = scores.items() if isinstance(scores, Mapping) else [(None, scores)]
    for label, values in groups:
        sns.histplot(x=np.asarray(values, dtype=np.float64).reshape(-1), bins=np.linspace(0, 1, bins + 1), stat=stat,
                     color=colour[label] if isinstance(colour, Mapping) else colour, alpha=alpha, ax=ax,
                     **({} if label is None else {"label": label}))
    ax.axvline(area, **CHANCE_STYLE, label=chance_label or f"chance = mean mask area {area:.2f}")
    ax.set_xlim(0, 1)
    return ax


def plot_depth_profile(profiles: Mapping[str, DepthProfile], *, title: Callable[[str], str],
                       tick: Callable[[str], str] = str, high: float = BAND_HIGH, width: float = 6.2):
    """Per dataset, every block's unit s-scores (boxes) with their chance level, and the shares that beat it.

    Left axis: the distribution of the block's unit s-scores (seaborn box and whiskers, median line) and the chance
    level (dashed). Right axis: the share of units significantly above chance (bootstrap, one-sided) and the
    share above the high band. ``title(dataset)`` and ``tick(block)`` label the panels.
    """
    fig, axes = plt.subplots(1, len(profiles), figsize=(width * len(profiles), 4.0), squeeze=False,
                             layout="constrained")
    for ax, (name, prof) in zip(axes[0], profiles.items()):
        x = np.arange(len(prof.blocks))
        units = pd.DataFrame({"block": np.repeat(prof.blocks, [len(s) for s in prof.scores]),
                              "s": np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1)
                                                   for s in prof.scores])})
        with warnings.catch_warnings():  # seaborn 0.13.2 passes bxp's vert=, deprecated by matplotlib 3.11; fixed
            # upstream, not yet released (mwaskom/seaborn#3804, #3820)
            warnings.filterwarnings("ignore", message="vert: bool", category=DeprecationWarning)
            sns.boxplot(data=units, x="block", y="s", order=prof.blocks, color=SSCORE_COLOUR, width=0.5,
                        showfliers=False, ax=ax)
        ax.plot(x, [r["chance"] for r in prof.rows], **CHANCE_STYLE, label="chance (mask area)")
        ax.set_xticks(x)
        ax.set_xticklabels([tick(b) for b in prof.blocks], rotation=30, fontsize=8)
        ax.set_xlabel("")
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"unit s-score (α = {prof.alpha:g}, {prof.variant})")
        right = ax.twinx()
        right.plot(x, [r["share_significant"] for r in prof.rows], "o-", color=SHARE_COLOURS["significant"],
                   label="share significantly above chance")
        right.plot(x, [r["share_high"] for r in prof.rows], "s:", color=SHARE_COLOURS["high"],
                   label=f"share s > {high:g}")
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
