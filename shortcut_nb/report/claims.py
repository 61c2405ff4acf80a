"""The claims report: each of the paper's findings checked against the numbers our notebooks recorded.

A claim is a function of the recorded JSON of one notebook (``<name>.json`` in
the runner's output folder) returning the paper's number, ours and whether the
finding holds. Notebooks add claims here as they are built; a claim whose
notebook did not run is listed as "not run", never silently dropped.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import matplotlib.pyplot as plt

from ..artifacts import atomic_write_bytes, atomic_write_json, read_json
from ..claims import CLAIMS, Claim, as_verdict
from ..figures import FOREST_CAPTION, plot_claims_forest
from .outputs import save_figure
from .publish import earlier_records, last_runner_call


# Modules that register claims with @claim; each is imported before evaluation.
CLAIM_MODULES = (
    "shortcut_nb.sections.groups.claims",
    "shortcut_nb.sections.latent_space.claims",
    "shortcut_nb.sections.cnn_neurons.claims",
    "shortcut_nb.sections.entanglement.claims",
    "shortcut_nb.sections.subnetworks.claims",
    "shortcut_nb.sections.vit_heads.claims",
)


def load_claims() -> list[Claim]:
    """Import every topic module so its claims are registered; return them in notebook order."""
    for name in CLAIM_MODULES:
        importlib.import_module(name)
    return sorted(CLAIMS, key=lambda c: c.notebook)  # stable: a notebook's claims in the order they are declared


def evaluate_claims(out_dir: str | os.PathLike) -> list[dict]:
    """Check every registered claim against the JSON files in ``out_dir``."""
    out_dir = Path(out_dir)
    ran, failed = last_runner_call(out_dir) or ([], [])
    earlier = earlier_records(out_dir, ran) if ran else {}
    rows = []
    for c in load_claims():
        path = out_dir / f"{c.notebook}.json"
        row = {"id": c.id, "notebook": c.notebook, "claim": c.claim, "paper": c.paper}
        if not path.is_file():
            row.update({"ours": "not run" + (" (its notebook failed in this run)" if c.notebook in failed else ""),
                        "holds": None})
        else:
            rec = read_json(path)
            if c.notebook in earlier:  # a reused --out: this verdict is not from the last run
                row["earlier_run"] = earlier[c.notebook]
            if (rec.get("inputs") or {}).get("user_run"):
                row.update({"ours": "your own data or model: measured quantities in the notebook, no paper verdict",
                            "holds": None, "verdict": "not applicable", "profile": rec.get("profile")})
                rows.append(row)
                continue
            try:
                v = as_verdict(c.check(rec))
                row.update({"ours": v.ours, "holds": v.holds if v.decided else None, "verdict": v.label,
                            "per_seed": list(v.per_seed),
                            "seeds": v.effect.n_seeds if v.effect is not None else len(v.per_seed) or 1,
                            "margin": v.margin, "profile": rec.get("profile"),
                            "effect": None if v.effect is None else v.effect.record(),
                            "effects": [e.record() for e in v.effects]})
            except KeyError as missing:
                row.update({"ours": f"not recorded: {missing}", "holds": None, "profile": rec.get("profile")})
        rows.append(row)
    return rows


def verdict_text(row: dict) -> str:
    """A report row's verdict as the tables show it: ``yes`` / ``no`` / ``mixed (k of n seeds)``, ``—`` if not run;
    a verdict from an earlier runner call than the last says so, with the time it was recorded."""
    text = row.get("verdict") or {True: "yes", False: "no", None: "—"}[row["holds"]]
    return text + (f" (from an earlier run, recorded {row['earlier_run']})" if row.get("earlier_run") else "")


def margin_text(row: dict) -> str:
    """A report row's margin, signed (empty where the criterion has none)."""
    return "" if row.get("margin") is None else f"{row['margin']:+.3f}"


def _number(x: float | None, signed: bool) -> str:
    return "n/a" if x is None else f"{x:+.2f}" if signed else f"{x:.2f}"


def effect_cells(row: dict) -> tuple[str, str, str]:
    """A report row's deciding effect as three table cells: ``effect`` (what, value, unit, threshold), ``interval``
    (95 %, and how it was made) and ``paper's value``; empty where the row has no effect."""
    e = row.get("effect")
    if not e:
        return "", "", ""
    signed = e["unit"].startswith("Δ") or e["threshold"] == 0
    needs = f"{'>' if e['side'] == 'above' else '<'} {_number(e['threshold'], signed)}"
    effect = f"{e['name']}: {_number(e['value'], signed)} {e['unit']} (needs {needs})"
    interval = (f"[{_number(e['low'], signed)}, {_number(e['high'], signed)}] ({e['interval']})" if e["interval"]
                else "none (one seed, no interval)" if e["value"] is not None else "not measured")
    paper = "no paper value" if e["paper"] is None else _number(e["paper"], signed)
    return effect, interval, paper


def write_claims_report(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``claims.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    rows = evaluate_claims(out_dir)
    json_path = atomic_write_json(out_dir / "claims.json", {"claims": rows})
    lines = ["# Claims report", "",
             "Each row: a finding of the paper, the paper's number, ours (from the notebooks' recorded JSON), and whether it holds.",
             "At the `smoke` profile the numbers are sanity checks only; read verdicts at `cpu` or `paper`.", "",
             "Each claim is decided on its effects, each a number in a unit the paper uses, measured on every trained",
             "seed. `effect` is the one that decides the row (a failing one, else an undecided one, else the one with",
             "least room); its `interval` is the 95 % Student-t interval over seeds (two seeds or more), else the one",
             "seed's bootstrap interval over samples, else none. The verdict comes from the interval: `holds` when it",
             "lies wholly on the paper's side of the threshold, `fails` when wholly on the other side, `undecided`",
             "(holds: null) when it covers the threshold or there is none. `margin` is the distance from the",
             "interval's nearer end to the threshold (positive: holds with room); `seeds` how many seeds measured it.",
             "claims.json lists every effect of a row under `effects`.", "",
             "| claim | paper | ours | effect | 95 % interval | paper's value | verdict | margin | seeds | profile |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        effect, interval, paper_value = effect_cells(r)
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {effect} | {interval} | {paper_value} | "
                     f"{verdict_text(r)} | {margin_text(r)} | {r.get('seeds', '')} | {r.get('profile') or ''} |")
    measured = measured_on_own_data(out_dir)
    if measured:
        lines += ["", "## Measured on your own data or model", "",
                  "No paper verdict applies to a researcher's data or checkpoint; these are the quantities the notebooks "
                  "measured (± the spread over seeds where more than one model was analysed).", "",
                  "| notebook | what | measured |", "|---|---|---|"]
        lines += [f"| {m['notebook']} | {m['what']} | {m['measured']} |" for m in measured]
        atomic_write_json(out_dir / "claims.json", {"claims": rows, "measured": measured})
    forest = claims_forest(out_dir, rows)
    if forest is not None:
        lines[1:1] = ["", f"![Each claim's effect and its 95 % interval](figures/{forest.name})", "", FOREST_CAPTION]
    md_path = atomic_write_bytes(out_dir / "claims.md", ("\n".join(lines) + "\n").encode())
    return json_path, md_path


#: The forest figure's file name under ``<out>/figures/`` (index.html shows it first).
FOREST_NAME = "claims_forest"


def claims_forest(out_dir: str | os.PathLike, rows: list[dict]) -> Path | None:
    """Draw :func:`~shortcut_nb.figures.plot_claims_forest` of ``rows`` to ``<out_dir>/figures/claims_forest.png``
    (None, and any earlier figure removed, when no row has a measured effect)."""
    fig = plot_claims_forest(rows)
    if fig is None:
        (Path(out_dir) / "figures" / f"{FOREST_NAME}.png").unlink(missing_ok=True)
        return None
    try:
        return save_figure(fig, FOREST_NAME, out_dir)
    finally:
        plt.close(fig)


def _spread(value: float, std: float | None, n: int | None) -> str:
    return f"{value:.2f}" + (f" ± {std:.2f} ({n} seeds)" if std is not None and (n or 1) > 1 else "")


def measured_on_own_data(out_dir: str | os.PathLike) -> list[dict]:
    """The measured quantities of the notebooks that ran on a researcher's data or model (their JSON's
    ``inputs.user_run``): worst group and gap (01), spurious neurons and what pruning changes (03; a dataset without
    masks: its neurons ranked by the mask-free detectors), what DFR changes (04). One row per quantity: ``notebook``,
    ``what``, ``measured``."""
    out_dir = Path(out_dir)
    rows: list[dict] = []

    def user_record(name: str) -> dict | None:
        path = out_dir / f"{name}.json"
        rec = read_json(path) if path.is_file() else None
        return rec if rec is not None and (rec.get("inputs") or {}).get("user_run") else None

    if (rec := user_record("01_groups")) is not None:
        for key, r in rec["table2"].items():
            intervals = [s.get("wga_interval") for s in rec.get("table2_per_seed", {}).get(key, [])]
            test_ci = (f" [{intervals[0][0]:.2f}, {intervals[0][1]:.2f}] (95 % bootstrap over test images)"
                       if len(intervals) == 1 and intervals[0] else "")
            rows.append({"notebook": "01_groups", "what": f"{key} ({r['model']}): AVG, WGA, worst group, GAP",
                         "measured": f"AVG {_spread(r['avg'], r.get('avg_std'), r.get('n_seeds'))}, WGA "
                                     f"{_spread(r['wga'], r.get('wga_std'), r.get('n_seeds'))}{test_ci}, worst "
                                     f"{r.get('worst_group')}, GAP {r['gap']:.2f}"})
    if (rec := user_record("03_cnn_neurons")) is not None:
        for name, r in rec["datasets"].items():
            wga = {row: (r["table4"].get(row) or {}).get("wga") for row in ("baseline", "pruned", "refit")}
            rows.append({"notebook": "03_cnn_neurons", "what": f"{name} ({r['model']}): neurons with s > τ, Table 4 WGA",
                         "measured": f"{r['n_above_tau']} of {r['d']} above τ = {r['tau']:g} (s up to {r['max']:.2f}, "
                                     f"chance {r['area']:.2f}); WGA "
                                     + " → ".join(f"{k} {v:.2f}" for k, v in wga.items() if v is not None)})
        for name, m in (rec.get("mask_free") or {}).items():
            top = {key: ", ".join(f"n{i}" for i in ids[:5]) for key, ids in m["top"].items()}
            rows.append({"notebook": "03_cnn_neurons",
                         "what": f"{name} ({m['model']}): no masks, neurons ranked by the mask-free detectors",
                         "measured": f"top by group gap {top['group_gap']}; by spuriosity {top['spuriosity']} "
                                     f"(the rankings agree at Spearman {m['agreement']:.2f})"})
    if (rec := user_record("04_entanglement")) is not None:
        for key, r in rec["table"].items():
            base, dfr = r["baseline"], r["dfr"]
            rows.append({"notebook": "04_entanglement", "what": f"{key}: WGA before → after DFR, neurons DFR keeps",
                         "measured": f"WGA {base['wga']:.2f} → {dfr['wga']:.2f}, AVG {base['avg']:.2f} → "
                                     f"{dfr['avg']:.2f}, neurons used {dfr.get('n_used_average', float('nan')):.0f}"})
    return rows
