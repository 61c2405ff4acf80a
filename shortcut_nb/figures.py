"""Figures and colours more than one notebook uses: the project's palette, the s-score histogram with its chance
level (notebooks 03–06), the depth profile of unit s-scores (notebooks 03 and 06) and the neuron detectors scored
against the counterfactual ground truth (notebooks 03 and 06: tables and the s-score / spurious-share scatter), drawn
with seaborn.

Sections never import each other: a colour two notebooks share, or one a notebook's figures share, lives here."""
from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .bands import BAND_HIGH
from .claims import METRIC_NAMES as METRIC_LABELS, interval_text
from .sscore.depth import DepthProfile
from .vocab import DATASET_LABELS, DETECTOR_LABELS, SCOPE_LABELS

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
#: Neurons by their counterfactual ground truth: spurious (the attribute moves them more than the core) or not.
TRUTH_COLOURS = {"spurious": "tab:red", "core": "tab:blue"}


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
    if not profiles:
        return notice_figure("No dataset has a depth profile.")
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
    """The depth profile's numbers, one row per dataset and block (a note without any)."""
    return indexed_frame([{"dataset": DATASET_LABELS.get(name, name),
                           **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}}
                          for name, prof in profiles.items() for r in prof.rows], ("dataset",),
                         "no dataset has a depth profile").reset_index()


def _label(key: str) -> str:
    return DETECTOR_LABELS.get(key, key)


def detector_order(keys) -> list[str]:
    """Detector keys in the project's order (:data:`~shortcut_nb.vocab.DETECTOR_LABELS`, then any other): a
    recorded JSON sorts its keys, the tables should not."""
    known = list(DETECTOR_LABELS)
    return sorted(keys, key=lambda k: (known.index(k) if k in known else len(known), k))


def notice_figure(text: str, *, width: float = 6.0):
    """A small figure that says why there is nothing to draw (a view given no dataset), so an executed notebook shows
    a sentence where the figure would be."""
    fig, ax = plt.subplots(figsize=(width, 1.0), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, textwrap.fill(text, 90), ha="center", va="center", fontsize=9, transform=ax.transAxes)
    return fig


def indexed_frame(rows: Sequence[Mapping], index: Sequence[str], empty: str) -> pd.DataFrame:
    """``rows`` as a frame indexed by ``index``; without rows, one row whose ``note`` says ``empty`` (so a notebook
    shows a sentence, not an empty table)."""
    if not rows:
        return pd.DataFrame([{**{k: "—" for k in index}, "note": empty}]).set_index(list(index))
    return pd.DataFrame(rows).set_index(list(index))


def detector_frame(entries: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per dataset and detector: Spearman, AUROC and precision@k against the ground truth with their 95 %
    intervals over neurons (bootstrap), and, where several seeds were evaluated, the mean over seeds with its
    t-interval. ``entries``: ``{dataset: recorded entry}`` (a dataset without a ground truth gets one row, its
    reason)."""
    rows = []
    for name, entry in entries.items():
        dataset = DATASET_LABELS.get(name, name)
        if not entry.get("available", True):
            rows.append({"dataset": dataset, "detector": "—", "note": entry.get("reason", "")})
            continue
        for key in detector_order(entry["table"]):
            m = entry["table"][key]
            row = {"dataset": dataset, "detector": _label(key)}
            row.update({METRIC_LABELS[metric]: interval_text(m[metric]) for metric in METRIC_LABELS})
            row.update({"k": m["k"], "chance p@k": round(m["chance"]["precision_at_k"], 2), "neurons": m["n"]})
            seeds = (entry.get("seeds") or {}).get(key)
            if seeds:
                n = entry["n_seeds"]
                row.update({f"{METRIC_LABELS[metric]} ({n} seeds)": interval_text(seeds[metric])
                            for metric in ("spearman", "auroc")})
            rows.append(row)
    return indexed_frame(rows, ("dataset", "detector"), "no dataset analysed")


def randomisation_frame(entries: Mapping[str, Mapping], metrics: Sequence[str] = ("spearman", "auroc")) -> pd.DataFrame:
    """The randomisation check: each detector's metrics on the trained model and on its randomised copies, all
    against the trained model's ground truth; ``survives`` names the copies whose interval stays off chance
    (Spearman 0, AUROC 0.5), where the detector reads the data or the architecture rather than the trained weights."""
    rows = []
    for name, entry in entries.items():
        if not entry.get("available", True):
            continue
        for key in detector_order(entry["table"]):
            m = entry["table"][key]
            row = {"dataset": DATASET_LABELS.get(name, name), "detector": _label(key)}
            row.update({f"{METRIC_LABELS[metric]}, trained": interval_text(m[metric]) for metric in metrics})
            kept = []
            for scope, table in entry["randomised"].items():
                r = table[key]
                row.update({f"{METRIC_LABELS[metric]}, {SCOPE_LABELS.get(scope, scope)}": interval_text(r[metric])
                            for metric in metrics})
                if any(r["survives"][metric] for metric in metrics if metric in r["survives"]):
                    kept.append(SCOPE_LABELS.get(scope, scope))
            row["survives randomisation"] = ", ".join(kept) or "no"
            rows.append(row)
    return indexed_frame(rows, ("dataset", "detector"), "no dataset has a counterfactual ground truth")


def plot_detector_scatter(entries: Mapping[str, Mapping], *, key: str = "sscore", tau: float | None = None,
                          model: str = "", width: float = 4.6):
    """Per dataset, each neuron's detector score (x; default the s-score) against its ground-truth spurious share
    (y), with the chance level of the s-score (the mean mask area ``entry["area"]``, dashed), τ (dotted red) and the
    spurious line (share = threshold). Points are coloured by the ground truth. A dataset without a truth gets a
    panel saying why."""
    if not entries:
        return notice_figure("No dataset is scored against a counterfactual ground truth.")
    fig, axes = plt.subplots(1, len(entries), figsize=(width * len(entries), 4.0), squeeze=False, layout="constrained")
    for ax, (name, entry) in zip(axes[0], entries.items()):
        if not entry.get("available", True):
            ax.axis("off")
            why = f"{DATASET_LABELS.get(name, name)}: no ground truth. {entry['reason']}"
            ax.text(0.5, 0.5, textwrap.fill(why, 48), ha="center", va="center", fontsize=8, transform=ax.transAxes)
            continue
        share = np.array([np.nan if v is None else v for v in entry["truth"]["spurious_share"]], dtype=np.float64)
        score = np.array([np.nan if v is None else v for v in entry["scores"][key]], dtype=np.float64)
        names = {"spurious": f"spurious (share > {entry['threshold']:g})",
                 "core": f"not spurious (share ≤ {entry['threshold']:g})"}
        kind = np.where(share > entry["threshold"], names["spurious"], names["core"])
        sns.scatterplot(x=score, y=share, hue=kind, palette={names[k]: c for k, c in TRUTH_COLOURS.items()},
                        hue_order=[names[k] for k in TRUTH_COLOURS], s=18, alpha=0.75, ax=ax, legend=True)
        if key.startswith("sscore") and entry.get("area") is not None:
            ax.axvline(entry["area"], **CHANCE_STYLE, label=f"chance = mask area {entry['area']:.2f}")
        if tau is not None and key.startswith("sscore"):
            ax.axvline(tau, color=THRESHOLD_COLOUR, ls=":", lw=1.2, label=f"τ = {tau:g}")
        ax.axhline(entry["threshold"], color="grey", lw=0.8)
        m = entry["table"][key]
        unmoved = int(np.isnan(share).sum())
        ax.set_title(f"{DATASET_LABELS.get(name, name)}{' ' + model if model else ''}: Spearman "
                     f"{interval_text(m['spearman'])}, AUROC {interval_text(m['auroc'])}"
                     + (f"\n({unmoved} neurons neither flip moves: no share, not shown)" if unmoved else ""),
                     fontsize=8)
        ax.set_xlabel(f"{_label(key)} (α = {entry['alpha']:g})" if key.startswith("sscore") else _label(key))
        ax.set_ylabel("spurious share (counterfactual ground truth)")
        ax.set_ylim(-0.02, 1.02)
        if key.startswith("sscore"):
            ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="best")
    return fig


#: A claim's verdict (the claims report's forest figure).
OUTCOME_COLOURS = {"holds": "tab:green", "fails": "tab:red", "undecided": "0.45"}
#: What the forest figure's caption says about its axes.
FOREST_CAPTION = ("Each claim's deciding effect, as its distance to the claim's threshold in the effect's own unit, "
                  "signed so that right is the paper's side (the dashed line at 0 is the threshold): dot the mean over "
                  "seeds, bar its 95 % interval (Student-t over seeds, or one seed's bootstrap), hollow diamond the "
                  "paper's value of the same effect. Effects on a 0–1 scale (accuracies, s-scores, AUROC, shares) "
                  "share the first panel; others (counts) get a panel of their own.")


def _toward_paper(e: Mapping, x: float | None) -> float | None:
    """``x`` (a value in the effect's unit) as its distance to the threshold, positive on the paper's side."""
    return None if x is None else (x - e["threshold"]) * (1 if e["side"] == "above" else -1)


def plot_claims_forest(rows: Sequence[Mapping]) -> plt.Figure | None:
    """A forest plot of the claims report (``claims.json``'s rows): one line per claim with an effect, coloured by
    its verdict (:data:`OUTCOME_COLOURS`); see :data:`FOREST_CAPTION`. None when no row has a measured effect."""
    shown = [r for r in rows if (r.get("effect") or {}).get("value") is not None]
    if not shown:
        return None

    def on_unit_scale(e: Mapping) -> bool:
        return all(abs(v) <= 1 for v in (e["value"], e["low"], e["high"], e["threshold"], e["paper"]) if v is not None)

    panels: dict[str, list[Mapping]] = {}
    for r in shown:
        e = r["effect"]
        panels.setdefault("0–1 scale" if on_unit_scale(e) else e["unit"], []).append(r)
    heights = [max(len(v), 1) for v in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 0.42 * sum(heights) + 1.2 * len(panels)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (unit, items) in zip(axes[:, 0], panels.items()):
        for y, r in enumerate(reversed(items)):
            e = r["effect"]
            colour = OUTCOME_COLOURS.get(e["outcome"], "0.45")
            value = _toward_paper(e, e["value"])
            if e["low"] is not None and e["high"] is not None:
                ends = sorted((_toward_paper(e, e["low"]), _toward_paper(e, e["high"])))
                ax.plot(ends, [y, y], color=colour, lw=2.2)
            ax.plot([value], [y], "o", color=colour, ms=6)
            if e["paper"] is not None:
                ax.plot([_toward_paper(e, e["paper"])], [y], "D", mfc="none", mec="black", ms=6)
        ax.axvline(0, **CHANCE_STYLE)
        ax.set_yticks(range(len(items)))
        ax.set_yticklabels([f"{r['id']} ({r['effect']['unit']})" for r in reversed(items)], fontsize=8)
        ax.set_xlabel(f"effect − threshold, toward the paper's side ({unit})")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2.2, label=k) for k, c in OUTCOME_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="black", marker="D", mfc="none", lw=0, label="paper's value"))
    axes[0, 0].legend(handles=handles, fontsize=8, loc="best")
    axes[0, 0].set_title("Claims: effect and 95 % interval against each claim's threshold")
    fig.tight_layout()
    return fig
