"""Notebook 03's paper claims and takeaways, read from its recorded JSON only (keys: :mod:`.record`)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ...claims import Verdict, claim, decide, detector_claim, detector_lines
from ...paper import PAPER_SSCORE_RANGE, PAPER_TABLE4
from ...vocab import DATASET_LABELS, DETECTOR_LABELS
from .record import NAME, ROWS, wgas

SPREAD_MIN = 0.5  # "a wide range": max - min at least half the scale (paper 0.0-0.8)
WGA = 3  # the worst group (MwP) in a row of PAPER_TABLE4
_P = {row: PAPER_TABLE4[row][WGA] for row in ROWS}
PAPER_TABLE4_TEXT = f"{_P['baseline']:.2f} → {_P['pruned']:.2f}; {_P['refit']:.2f}, {_P['refit_pruned']:.2f}"
PAPER_RANGE_TEXT = f"{PAPER_SSCORE_RANGE[0]:.1f}–{PAPER_SSCORE_RANGE[1]:.1f}"

__all__ = ["DETECTOR_DATASET", "SPREAD_MIN", "chance_remark", "detector_takeaways", "takeaways"]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def chance_remark(entry: Mapping[str, Any], high: float) -> str:
    """Whether one dataset's high neurons (``s > high``) beat the chance level (the mean mask area)."""
    n_high, above = entry["n_high"], entry["n_high_above_chance"]
    if n_high == 0:
        return f"no neuron above {high:g}; chance level {entry['area']:.2f}, max lift {entry['lift_max']:.1f}"
    if entry["area"] >= high:
        return (f"but chance (mask area) is {entry['area']:.2f}, so 'high' is no better than a heatmap ignoring the "
                f"image: {above} of {n_high} high neurons exceed chance, max lift {entry['lift_max']:.2f}")
    return (f"chance (mask area) {entry['area']:.2f}: all {n_high} high neurons exceed it, max lift "
            f"{entry['lift_max']:.1f}")


def takeaways(recorded: Mapping[str, Any]) -> str:
    """A short text stating the result in the run's own numbers."""
    high = recorded["band_edges"][1]
    lines = []
    for name, r in recorded["datasets"].items():
        c = r["band_counts"]
        lines.append(f"- {DATASET_LABELS.get(name, name)} ({r['model']}, d = {r['d']}, N = {r['n_samples']}, "
                     f"α = {r['alpha']:g}): s-scores {r['min']:.2f}–{r['max']:.2f} "
                     f"(paper, ISIC: {PAPER_RANGE_TEXT}); bands low {c['low']} · mid {c['mid']} · high {c['high']}; "
                     f"{chance_remark(r, high)}.")
        w = wgas(r)
        lines.append(f"  Table 4: WGA {_fmt(w['baseline'])} → {_fmt(w['pruned'])} after zeroing "
                     f"{len(r['pruned_neurons'])} neurons with s > {r['tau']:g}; group-balanced refit "
                     f"{_fmt(w['refit'])}, refit after pruning {_fmt(w['refit_pruned'])} "
                     f"(paper, ISIC: {PAPER_TABLE4_TEXT}).")
        if w["pruned"] is not None and w["baseline"] is not None and w["pruned"] <= w["baseline"]:
            floor = ", where the worst group is almost always misclassified," if w["baseline"] < 0.2 else ""
            lines.append(f"  Zeroing them does not raise WGA here: the paper's {_P['pruned'] - _P['baseline']:+.2f} starts "
                         f"from WGA {_P['baseline']:.2f}, ours from "
                         f"{w['baseline']:.2f}{floor} and the "
                         f"{len(r['pruned_neurons'])} zeroed neurons are not the only carriers of the spurious cue "
                         f"(the refit, which reweights all {r['d']}, reaches {_fmt(w['refit'])}).")
    for name, prof in (recorded.get("depth_profile") or {}).items():
        parts = ", ".join(f"{b['block']} {b['share_significant']:.0%}" for b in prof["blocks"])
        lines.append(f"- Depth profile, {DATASET_LABELS.get(name, name)}: share of units significantly above chance "
                     f"per block: {parts}.")
    ex = recorded.get("dilation_example")
    if ex:
        lines.append(f"- Dilating the mask by {ex['dilation']} px raises neuron {ex['neuron']}'s s-score "
                     f"{ex['s']:.2f} → {ex['s_dilated']:.2f} (chance {ex['chance']:.2f} → {ex['chance_dilated']:.2f}).")
    methods = [r for r in recorded.get("method_bands") or [] if r["factor"] == "method"]
    if methods:
        same = all(r["band_counts"] == methods[0]["band_counts"] for r in methods)
        lines.append(f"- CAM methods ({', '.join(r['method'] for r in methods)}) at the neurons' own layer: "
                     + ("identical bands (the gradient of a unit's mean is constant in space)." if same else
                        "bands differ: " + "; ".join(f"{r['method']} {r['band_counts']}" for r in methods) + "."))
    if "isic" in recorded["datasets"]:
        n = len(_seeds(recorded, "isic")) or 1
        lines.append(f"- The paper's readings on the ISIC-like set, decided on the mean over {n} seed(s) and per seed: "
                     f"s-score spread {_spread(recorded).summary()}; Table 4 {_prune_refit(recorded).summary()}.")
    lines.extend(detector_takeaways(recorded))
    lines.append(f"- Refit set: {recorded['refit_set']}; accuracies on the {recorded['accuracy_split']} split.")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


def _seeds(rec: Mapping[str, Any], dataset: str) -> list[Mapping[str, Any]]:
    """The dataset's per-seed entries (``record.SEED_KEYS``); empty for a record of one seed."""
    entries = (rec.get("per_seed") or {}).get(dataset) or []
    return entries if len(entries) > 1 else []


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if len(known) == len(values) and known else None


def _mean_entry(entries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over seeds of the numbers a claim reads (a WGA unknown for one seed is unknown for the mean)."""
    return {"min": _mean([e["min"] for e in entries]), "max": _mean([e["max"] for e in entries]),
            "wga": {row: _mean([e["wga"][row] for e in entries]) for row in ROWS}}


def _spread_margin(view: Mapping[str, Any], high: float) -> float:
    """The range over SPREAD_MIN, and the top neuron over the high edge (some neuron is high)."""
    return min(view["max"] - view["min"] - SPREAD_MIN, view["max"] - high)


def _refit_margin(w: Mapping[str, float | None]) -> float:
    """Pruning raises WGA, and both refits raise it further (-inf: a head could not be made)."""
    if any(v is None for v in w.values()):
        return -math.inf
    return min(w["pruned"] - w["baseline"], min(w["refit"], w["refit_pruned"]) - w["pruned"])


def _per_seed_text(entries: list[Mapping[str, Any]], text: Callable[[Mapping[str, Any]], str]) -> str:
    """``; per seed (n): a / b / c`` with ``text(entry)`` for each seed (nothing for one seed)."""
    return f"; per seed ({len(entries)}): " + " / ".join(text(e) for e in entries) if entries else ""


@claim("neurons.spread", NAME, "CNN s-scores spread over a wide range, some neurons high (s > 0.7)",
       f"§5.1: ResNet-18 on ISIC, s-scores from {PAPER_SSCORE_RANGE[0]:.1f} to {PAPER_SSCORE_RANGE[1]:.1f}; some "
       f"neurons above 0.7 (pruned in Table 4)")
def _spread(rec: dict):
    high = rec["band_edges"][1]
    isic = rec["datasets"]["isic"]
    parts = [f"ISIC-like: {isic['min']:.2f}–{isic['max']:.2f}, {isic['n_high']} > {high:g} "
             f"({chance_remark(isic, high)})"]
    wb = rec["datasets"].get("waterbirds")
    if wb is not None:
        parts.append(f"Waterbirds-like: {wb['min']:.2f}–{wb['max']:.2f}, {wb['n_high']} > {high:g} "
                     f"({chance_remark(wb, high)})")
    seeds = _seeds(rec, "isic")
    parts[0] += _per_seed_text(seeds, lambda e: f"{e['min']:.2f}–{e['max']:.2f} ({e['n_high']} high)")
    return decide(f"α = {rec['alpha']:g}; " + "; ".join(parts), lambda view: _spread_margin(view, high),
                  _mean_entry(seeds) if seeds else isic, seeds)


@claim("neurons.prune_refit", NAME,
       "Zeroing neurons with s > 0.7 raises WGA a little; a group-balanced last-layer refit raises it more",
       f"Table 4 (ResNet-18, ISIC): WGA {_P['baseline']:.2f} → {_P['pruned']:.2f} pruned; refit "
       f"{_P['refit']:.2f}, refit after pruning {_P['refit_pruned']:.2f}")
def _prune_refit(rec: dict):
    isic = rec["datasets"]["isic"]
    w = wgas(isic)
    n = len(isic["pruned_neurons"])
    ours = (f"ISIC-like: WGA {_fmt(w['baseline'])} → {_fmt(w['pruned'])} ({n} neurons zeroed); refit "
            f"{_fmt(w['refit'])}, refit after pruning {_fmt(w['refit_pruned'])} "
            f"(refit on {rec['refit_set'].split(',')[0]})")
    seeds = _seeds(rec, "isic")
    ours += _per_seed_text(seeds, lambda e: f"{_fmt(e['wga']['baseline'])} → {_fmt(e['wga']['pruned'])} "
                                            f"({e['n_pruned']} zeroed), refit {_fmt(e['wga']['refit'])}")
    if n == 0:
        ours += "; no neuron above τ, nothing pruned"
    # strict, and something zeroed: pruning that leaves WGA where it was does not raise it
    per_seed = tuple(e["n_pruned"] > 0 and _refit_margin(e["wga"]) > 0 for e in seeds)
    margin = _refit_margin(_mean_entry(seeds)["wga"] if seeds else w)
    zeroed = any(e["n_pruned"] > 0 for e in seeds) if seeds else n > 0
    return Verdict(ours=ours, holds=zeroed and margin > 0, per_seed=per_seed,
                   margin=None if math.isinf(margin) else margin)


# --------------------------------------------------------------------------- detectors against the ground truth (issue 29)

#: The dataset the detector claims are decided on (the paper's Table 4 set); the others are reported beside it.
DETECTOR_DATASET = "isic"


_sscore_auroc = detector_claim(
    "detectors", NAME, "sscore",
    "The CNN's s-score ranks the neurons the spurious attribute moves most (spurious share > 0.5) above the rest: "
    "AUROC > 0.5 (95 % interval above 0.5)", dataset=DETECTOR_DATASET)
_group_gap_auroc = detector_claim(
    "detectors", NAME, "group_gap",
    "The mask-free group gap (attribute labels, no masks) ranks the spurious neurons above the rest: AUROC > 0.5",
    dataset=DETECTOR_DATASET)
_spuriosity_auroc = detector_claim(
    "detectors", NAME, "spuriosity",
    "The mask-free spuriosity gap (class labels only) ranks the spurious neurons above the rest: AUROC > 0.5",
    dataset=DETECTOR_DATASET)


def _wga_text(row: Mapping[str, Any] | None) -> str:
    return "n/a" if row is None else f"{row['wga']:.2f}"


def detector_takeaways(recorded: Mapping[str, Any]) -> list[str]:
    """The detector section's lines of the takeaways: each dataset's table and randomisation
    (:func:`~shortcut_nb.claims.detector_lines`), the pruning with each detector's neurons, the data without masks."""
    entries = recorded.get("detectors") or {}
    lines = detector_lines(entries, "CNN")
    for name, e in entries.items():
        p = e.get("pruning")
        if p:
            lines.append(f"- Pruning with each detector's neurons, {DATASET_LABELS.get(name, name)} ({p['rule']}): WGA "
                         "zeroed / refit " + "; ".join(
                             f"{DETECTOR_LABELS.get(k, k)} {_wga_text(r['pruned'])} / {_wga_text(r['refit_pruned'])}"
                             for k, r in p["rows"].items())
                         + f" (trained head {_wga_text(p['baseline'])}, refit with all {_wga_text(p['refit'])}).")
    for name, m in (recorded.get("mask_free") or {}).items():
        lines.append(f"- {DATASET_LABELS.get(name, name)} has no masks: no s-score; the mask-free detectors rank its "
                     f"neurons (top by group gap: {', '.join(f'n{i}' for i in m['top']['group_gap'][:5])}; the two "
                     f"rankings agree at Spearman {m['agreement']:.2f}).")
    return lines
