"""Notebook 04's frames and figures: Tables 5-6, the C sweep, the edit, Fig. 5 and one DFR head's view.

Everything reads :func:`~.study.entanglement_study`'s results (``{"<dataset>/<arch>": ModelResults}``);
nothing here trains or fits.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ... import figures
from ...paper import PAPER_TABLES
from .study import ModelResults

__all__ = ["table_frame", "sweep_frame", "edit_frame", "dfr_view", "view_text", "plot_dfr_view", "plot_fig5",
           "plot_kept_vs_zeroed"]


def _fmt(m, sd=None, pct: bool = False) -> str:
    if m is None:
        return "—"
    if pct:
        return f"{m:.0%}" if not sd else f"{m:.0%} ± {sd:.0%}"
    return f"{m:.2f}" if not sd else f"{m:.2f} ± {sd:.2f}"


def table_frame(results: Mapping[str, ModelResults]) -> pd.DataFrame:
    """Tables 5-6: per model and dataset, baseline / DFR / single-weight edit, ours (mean ± std) next to the paper's.

    Columns: WGA, AVG, Prune_h (per refit: the mean sparsity of DFR's L1 fits), Prune_h of the averaged head
    (the one deployed), mean s-score of the neurons used (per refit for DFR), the influence-weighted mean s, the
    chance level (mean mask area) and the paper's WGA, Prune_h and mean s.
    """
    rows = []
    for key, r in results.items():
        sm = r.summary
        paper = PAPER_TABLES.get((r.dataset, r.arch), {})
        for head, label in (("baseline", "baseline"), ("dfr", "DFR"), ("edit", "single-weight edit")):
            h = sm[head]
            p = paper.get(head, {})
            ph = (h["prune_h_refits"], h["prune_h_refits_std"]) if head == "dfr" else (h["prune_h"], h["prune_h_std"])
            ms = (h["mean_s_refits"], h["mean_s_refits_std"]) if head == "dfr" else (h["mean_s"], h["mean_s_std"])
            rows.append({
                "dataset": r.dataset, "model": r.model, "head": label,
                "WGA": _fmt(h["wga"], h["wga_std"]), "AVG": _fmt(h["avg"], h["avg_std"]),
                "Prune_h (per refit)": _fmt(*ph, pct=True),
                "Prune_h (averaged head)": _fmt(h["prune_h_average"], pct=True) if head == "dfr" else "—",
                "mean s (used neurons)": _fmt(*ms),
                "mean s (influence-weighted)": _fmt(h["mean_s_influence"]),
                "chance s (mask area)": round(sm["area"], 2),
                "paper WGA": p.get("wga"), "paper Prune_h": p.get("prune_h"), "paper mean s": p.get("mean_s"),
            })
    return pd.DataFrame(rows)


def sweep_frame(results: Mapping[str, ModelResults], *, seed_index: int = 0) -> pd.DataFrame:
    """DFR at every C of the grid (and the tuned one) for one seed: how sparsity, WGA and the kept s-scores move."""
    rows = []
    for key, r in results.items():
        run = r.runs[seed_index]
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


def edit_frame(results: Mapping[str, ModelResults]) -> pd.DataFrame:
    """The single-weight edit per model and seed: which weight, its neuron's s-score, WGA on val and test."""
    rows = []
    for key, r in results.items():
        for run in r.runs:
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


def dfr_view(results: Mapping[str, ModelResults], key: str, choice: str = "tuned", *, seed_index: int = 0) -> dict:
    """One DFR head of one model, ready to print and draw: the widget's selection, a pure function.

    Args:
        results: :func:`~.study.entanglement_study`'s output.
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
    runs = results[key].runs
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
    label_all = f"{labels[0]} (n={s_all.size}, mean {s_all.mean():.2f})"
    label_sel = f"{labels[1]} (n={s_sel.size}, mean {s_sel.mean():.2f})" if s_sel.size else labels[1]
    figures.sscore_histogram(ax, {label_all: s_all, label_sel: s_sel}, area, bins=20, stat="density", alpha=0.5,
                             colour={label_all: figures.KEPT_COLOURS["all"], label_sel: figures.KEPT_COLOURS["kept"]},
                             chance_label=f"chance (mask area {area:.2f})")
    if s_sel.size:
        ax.axvline(s_sel.mean(), color=figures.KEPT_COLOURS["kept"], lw=1.5)
    else:
        ax.text(0.5, 0.5, f"{labels[1]}: none", transform=ax.transAxes, ha="center")
    ax.axvline(s_all.mean(), color=figures.KEPT_COLOURS["all"], lw=1.5)
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


def plot_fig5(results: Mapping[str, ModelResults], *, seed_index: int = 0):
    """Fig. 5: per model and dataset, s-scores of the neurons the baseline uses (all) and those DFR keeps.

    One panel per ``"<dataset>/<arch>"`` (rows: architectures, columns: datasets), one seed.
    """
    keys = list(results)
    archs = list(dict.fromkeys(results[k].arch for k in keys))
    datasets = list(dict.fromkeys(results[k].dataset for k in keys))
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
                       title=f"{ds} · {results[key].model} · DFR C={v['C']:g}, "
                             f"Prune_h {v['prune_h_refits']:.0%}")
    fig.tight_layout()
    return fig


def plot_kept_vs_zeroed(results: Mapping[str, ModelResults], *, seed_index: int = 0):
    """s-scores of the neurons DFR zeroes vs keeps, per model, with the random-subset band of the kept mean.

    The grey band is where the mean of a *random* neuron set of the kept size falls 95 % of the time: a kept
    mean inside it means DFR's choice looks unrelated to the s-score.
    """
    keys = list(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(keys)), 3.8))
    neurons, ticks = [], []
    for i, key in enumerate(keys):
        run = results[key].runs[seed_index]
        s = np.asarray(run["sscore"]["scores"], dtype=float)
        kept = np.zeros(s.size, dtype=bool)
        kept[run["dfr"]["kept"]] = True
        neurons.append(pd.DataFrame({"model": key, "neurons": np.where(kept, "kept", "zeroed"), "s": s}))
        sel = run["dfr"]["selection"]
        if sel["lo"] is not None:  # the kept neurons' column: seaborn dodges the two hue levels to ± 0.2
            ax.fill_between([i + 0.07, i + 0.33], sel["lo"], sel["hi"], color="0.8", zorder=0)
        ax.plot([i - 0.4, i + 0.4], [run["sscore"]["area"]] * 2, **figures.CHANCE_STYLE)
        p = "—" if sel["p"] is None else f"{sel['p']:.2f}"
        ticks.append(f"{key}\nzeroed {int((~kept).sum())} | kept {int(kept.sum())}\np = {p}")
    style = dict(data=pd.concat(neurons, ignore_index=True), x="model", y="s", hue="neurons", order=keys,
                 hue_order=["zeroed", "kept"], ax=ax, legend=False)
    sns.stripplot(**style, palette=figures.KEPT_COLOURS, dodge=True, jitter=0.07, size=2.5, alpha=0.6)
    sns.pointplot(**style, palette={"zeroed": "k", "kept": "k"}, dodge=0.4, errorbar=None, markers="_",
                  markersize=16, markeredgewidth=2, linestyle="none")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(ticks, fontsize=7)
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.set_ylabel("neuron s-score")
    ax.set_title("Neurons DFR zeroes (grey) vs keeps (orange); bars: means, band: random-subset 95 %, "
                 "dashed: chance", fontsize=9)
    fig.tight_layout()
    return fig
