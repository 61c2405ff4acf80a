"""Notebook 03's paper claims and takeaways, read from its recorded JSON only (keys: :mod:`.record`)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ...claims import Effect, claim, decide_effects, detector_claims, detector_lines, measured, verdict_lines
from ...claims import recorded_interval as _interval
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
        lines.extend(verdict_lines([("s-score spread (ISIC-like)", _spread(recorded)),
                                    ("Table 4 (ISIC-like)", _prune_refit(recorded))]))
    lines.extend(detector_takeaways(recorded))
    lines.append(f"- Refit set: {recorded['refit_set']}; accuracies on the {recorded['accuracy_split']} split.")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


def _seeds(rec: Mapping[str, Any], dataset: str) -> list[Mapping[str, Any]]:
    """The dataset's per-seed entries (``record.SEED_KEYS``); empty for a record of one seed."""
    entries = (rec.get("per_seed") or {}).get(dataset) or []
    return entries if len(entries) > 1 else []


def _per_seed_text(entries: list[Mapping[str, Any]], text: Callable[[Mapping[str, Any]], str]) -> str:
    """``; per seed (n): a / b / c`` with ``text(entry)`` for each seed (nothing for one seed)."""
    return f"; per seed ({len(entries)}): " + " / ".join(text(e) for e in entries) if entries else ""


def _headline_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The one run's numbers in the shape of a per-seed entry (``record.SEED_KEYS``)."""
    return {"min": entry["min"], "max": entry["max"], "n_pruned": len(entry["pruned_neurons"]), "wga": wgas(entry),
            "wga_change": entry.get("table4_change"), "refit_change": entry.get("table4_refit_change"),
            "range_interval": entry.get("range_interval"), "max_interval": entry.get("max_interval")}


def _spread_effects(rec: Mapping[str, Any]) -> list[Effect]:
    """The s-score range (max − min) and the highest neuron's s-score, one value per seed, each with its bootstrap
    interval over the scored images (``range_interval`` / ``max_interval``; None in older records)."""
    high = rec["band_edges"][1]
    isic, seeds = _headline_view(rec["datasets"]["isic"]), _seeds(rec, "isic")
    lo, hi = PAPER_SSCORE_RANGE
    return [measured("s-score range (max − min), ISIC-like CNN", "s-score", SPREAD_MIN, lambda v: v["max"] - v["min"],
                     isic, seeds, paper=hi - lo, within=lambda v: _interval(v.get("range_interval"))),
            measured("highest neuron s-score, ISIC-like CNN", "s-score", high, lambda v: v["max"], isic, seeds,
                     paper=hi, within=lambda v: _interval(v.get("max_interval")))]


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
    return decide_effects(f"α = {rec['alpha']:g}; " + "; ".join(parts), _spread_effects(rec))


def _delta(view: Mapping[str, Any], after: str, before: str) -> float | None:
    w = view["wga"]
    return None if w[after] is None or w[before] is None else w[after] - w[before]


def _prune_effects(rec: Mapping[str, Any]) -> list[Effect]:
    """ΔWGA of zeroing the neurons with s > τ (not measured for a seed where none is above τ), and the refits'
    further gain: the lower of the two refits' WGA minus the pruned WGA."""
    isic, seeds = _headline_view(rec["datasets"]["isic"]), _seeds(rec, "isic")
    tau = rec["datasets"]["isic"]["tau"]

    def refit_gain(v: Mapping[str, Any]) -> float | None:
        w = v["wga"]
        return None if None in (w["refit"], w["refit_pruned"], w["pruned"]) else min(w["refit"], w["refit_pruned"]) - w["pruned"]

    return [measured(f"ΔWGA after zeroing the neurons with s > {tau:g}, ISIC-like CNN", "ΔWGA", 0.0,
                     lambda v: _delta(v, "pruned", "baseline") if v["n_pruned"] > 0 else None, isic, seeds,
                     paper=_P["pruned"] - _P["baseline"], within=lambda v: _interval(v.get("wga_change"))),
            measured("ΔWGA of the group-balanced refits over pruning (the lower refit)", "ΔWGA", 0.0, refit_gain, isic,
                     seeds, paper=min(_P["refit"], _P["refit_pruned"]) - _P["pruned"],
                     within=lambda v: _interval(v.get("refit_change")))]


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
    return decide_effects(ours, _prune_effects(rec))


# --------------------------------------------------------------------------- detectors against the ground truth (issue 29)

#: The dataset the detector claims are decided on (the paper's Table 4 set); the others are reported beside it.
DETECTOR_DATASET = "isic"


detector_claims("detectors", NAME, "CNN", dataset=DETECTOR_DATASET)


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
