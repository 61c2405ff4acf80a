"""Notebook 04's claims (Tables 5-6: DFR raises WGA, zeroes many weights, leaves the used neurons' mean s-score)
and its takeaways, read from the recorded JSON only."""
from __future__ import annotations

from collections.abc import Mapping

from ...claims import Effect, Verdict, claim, decide_effects, measured, verdict_lines
from ...paper import PAPER_TABLES
from .record import NAME

__all__ = ["WGA_GAIN_MIN", "PRUNE_MANY_MIN", "S_UNCHANGED_TOL", "takeaways"]

# Verdict thresholds of the claims rows. The paper's smallest WGA gain is +0.20
# (ViT Waterbirds), its smallest Prune_h 37 %, its largest s change 0.03.
WGA_GAIN_MIN = 0.10  # "raises WGA a lot"
PRUNE_MANY_MIN = 0.30  # "zeroes many weights" (per-refit Prune_h)
S_UNCHANGED_TOL = 0.05  # "mean s-score about unchanged": |after - before| <= this


def _s_change(view: Mapping) -> float | None:
    s0, s1 = view["baseline"]["mean_s"], view["dfr"]["mean_s_refits"]
    return None if s0 is None or s1 is None else abs(s1 - s0)  # undefined s (no neuron kept): not measured


def _dfr_within(view: Mapping) -> tuple[float, float] | None:
    """A seed's bootstrap interval over test images of DFR's ΔWGA (None: an aggregate row, or an older record)."""
    pair = view["dfr"].get("wga_change")
    return None if pair is None else (float(pair[0]), float(pair[1]))


def _effects(key: str, row: Mapping, seeds: list[Mapping]) -> list[Effect]:
    """One model's three effects: ΔWGA of DFR, its per-refit Prune_h, and |Δ mean s| of the used neurons."""
    paper = PAPER_TABLES.get((row["dataset"], row["arch"]))
    p_gain = None if paper is None else paper["dfr"]["wga"] - paper["baseline"]["wga"]
    p_prune = None if paper is None else paper["dfr"]["prune_h"]
    p_s = None if paper is None else abs(paper["dfr"]["mean_s"] - paper["baseline"]["mean_s"])
    return [measured(f"ΔWGA of DFR, {key}", "ΔWGA", WGA_GAIN_MIN, lambda v: v["dfr"]["wga"] - v["baseline"]["wga"],
                     row, seeds, paper=p_gain, within=_dfr_within),
            measured(f"per-refit Prune_h of DFR, {key}", "Prune_h", PRUNE_MANY_MIN,
                     lambda v: v["dfr"]["prune_h_refits"], row, seeds, paper=p_prune),
            measured(f"|Δ mean s-score| of the neurons DFR uses, {key}", "|Δ mean s|", S_UNCHANGED_TOL, _s_change, row,
                     seeds, side="below", paper=p_s)]


def _verdict(row: Mapping) -> str:
    b, d = row["baseline"], row["dfr"]
    s0, s1 = b["mean_s"], d["mean_s_refits"]
    s_txt = "s undefined (no neuron kept)" if s0 is None or s1 is None else f"s {s0:.2f} → {s1:.2f}"
    return (f"{row['dataset']}: WGA {b['wga']:.2f} → {d['wga']:.2f}, Prune_h {d['prune_h_refits']:.0%} per refit "
            f"({d['prune_h_average']:.0%} averaged head), {s_txt}")


def _check_arch(rec: Mapping, arch: str) -> Verdict:
    keys = [k for k, r in rec["table"].items() if r["arch"] == arch]
    if not keys:
        raise KeyError(f"no {arch} model in table")
    per_seed = rec.get("per_seed", {})
    effects = [e for k in keys for e in _effects(k, rec["table"][k], per_seed.get(k, []))]
    return decide_effects("; ".join(_verdict(rec["table"][k]) for k in keys), effects)


_PAPER_NAMES = {"waterbirds": "Waterbirds", "isic": "ISIC"}


def _paper_text(arch: str) -> str:
    """The paper's row of Table 5 (CNN) or 6 (ViT), from :data:`shortcut_nb.paper.PAPER_TABLES`."""
    rows = [PAPER_TABLES[(ds, arch)] for ds in _PAPER_NAMES]
    parts = [f"{_PAPER_NAMES[ds]} WGA {r['baseline']['wga']:.2f} → {r['dfr']['wga']:.2f}, "
             f"Prune_h {r['dfr']['prune_h'] * 100:.0f} %, s {r['baseline']['mean_s']:.2f} → {r['dfr']['mean_s']:.2f}"
             for ds, r in zip(_PAPER_NAMES, rows)]
    return f"Table {rows[0]['table']} ({rows[0]['model']}): " + "; ".join(parts)


_CLAIM_TEXT = (f"DFR raises WGA a lot (≥ +{WGA_GAIN_MIN:.2f}), zeroes many weights (per-refit Prune_h ≥ "
               f"{PRUNE_MANY_MIN:.0%}), and leaves the mean s-score of the used neurons about unchanged "
               f"(within ±{S_UNCHANGED_TOL:.2f})")


@claim("entanglement.dfr_cnn", NAME, _CLAIM_TEXT + " — CNN",
       _paper_text("cnn"))
def _claim_cnn(rec: dict):
    return _check_arch(rec, "cnn")


@claim("entanglement.dfr_vit", NAME, _CLAIM_TEXT + " — ViT",
       _paper_text("vit"))
def _claim_vit(rec: dict):
    return _check_arch(rec, "vit")


def takeaways(recorded: Mapping) -> str:
    """A short text stating the result in the run's own numbers."""
    lines = []
    for key, r in recorded["table"].items():
        b, d, e = r["baseline"], r["dfr"], r["edit"]
        text = _verdict(r)
        p = [x for x in r["dfr_p"] if x is not None]
        p_txt = f"; random-subset p {min(p):.2f}–{max(p):.2f}" if p else ""
        lines.append(f"- {key} ({r['model']}, {r['n_seeds']} seed(s)): {text.split(': ', 1)[1]}{p_txt}; "
                     f"single-weight edit WGA {e['wga']:.2f}.")
        s0, s1 = b["mean_s"], d["mean_s_refits"]
        if s0 is not None and s1 is not None and abs(s1 - s0) > S_UNCHANGED_TOL:
            paper = PAPER_TABLES.get((r["dataset"], r["arch"]))
            lines.append(f"  'About unchanged' is at stake: the neurons DFR keeps score {s1:.2f} against {s0:.2f} "
                         f"for all, beyond ±{S_UNCHANGED_TOL:.2f}; with Prune_h {d['prune_h_refits']:.0%} each refit "
                         "keeps few neurons, whose mean can sit far from the all-neuron mean"
                         + (f" (paper: Prune_h {paper['dfr']['prune_h']:.0%})." if paper else "."))
        if d["prune_h_average"] is not None and d["prune_h_refits"] is not None and \
                d["prune_h_refits"] - d["prune_h_average"] > 0.05:
            lines.append(f"  The averaged head is denser ({d['prune_h_average']:.0%}) than each L1 refit "
                         f"({d['prune_h_refits']:.0%}): refits zero different neurons.")
        if b.get("mean_s_influence") is not None and d.get("mean_s_influence") is not None:
            lines.append(f"  Influence-weighted mean s: {b['mean_s_influence']:.2f} → {d['mean_s_influence']:.2f} "
                         f"(chance {r['area']:.2f}).")
    archs = sorted({r["arch"] for r in recorded["table"].values()})
    lines.extend(verdict_lines([(f"DFR on the {arch.upper()}", _check_arch(recorded, arch)) for arch in archs]))
    if recorded.get("notes"):
        lines.append("- Notes: " + "; ".join(recorded["notes"]))
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)
