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

from ..artifacts import atomic_write_bytes, atomic_write_json, read_json
from ..claims import CLAIMS, Claim, as_verdict


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
    rows = []
    for c in load_claims():
        path = out_dir / f"{c.notebook}.json"
        row = {"id": c.id, "notebook": c.notebook, "claim": c.claim, "paper": c.paper}
        if not path.is_file():
            row.update({"ours": "not run", "holds": None})
        else:
            rec = read_json(path)
            if (rec.get("inputs") or {}).get("user_run"):
                row.update({"ours": "your own data or model: measured quantities in the notebook, no paper verdict",
                            "holds": None, "verdict": "not applicable", "profile": rec.get("profile")})
                rows.append(row)
                continue
            try:
                v = as_verdict(c.check(rec))
                row.update({"ours": v.ours, "holds": v.holds, "verdict": v.label, "per_seed": list(v.per_seed),
                            "seeds": len(v.per_seed) or 1, "margin": v.margin, "profile": rec.get("profile")})
            except KeyError as missing:
                row.update({"ours": f"not recorded: {missing}", "holds": None, "profile": rec.get("profile")})
        rows.append(row)
    return rows


def verdict_text(row: dict) -> str:
    """A report row's verdict as the tables show it: ``yes`` / ``no`` / ``mixed (k of n seeds)``, ``—`` if not run."""
    return row.get("verdict") or {True: "yes", False: "no", None: "—"}[row["holds"]]


def margin_text(row: dict) -> str:
    """A report row's margin, signed (empty where the criterion has none)."""
    return "" if row.get("margin") is None else f"{row['margin']:+.3f}"


def write_claims_report(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``claims.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    rows = evaluate_claims(out_dir)
    json_path = atomic_write_json(out_dir / "claims.json", {"claims": rows})
    lines = ["# Claims report", "",
             "Each row: a finding of the paper, the paper's number, ours (from the notebooks' recorded JSON), and whether it holds.",
             "At the `smoke` profile the numbers are sanity checks only; read verdicts at `cpu` or `paper`.", "",
             "`holds` checks the paper's statement on the mean over seeds; `mixed (k of n seeds)` says the same criterion",
             "held on only k of the n seeds alone; `margin` is the distance of the deciding number to its threshold",
             "(positive: holds with room); `seeds` is how many trained seeds the row was decided on (1: one run).", "",
             "| claim | paper | ours | holds | margin | seeds | profile |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {verdict_text(r)} | {margin_text(r)} | "
                     f"{r.get('seeds', '')} | {r.get('profile') or ''} |")
    md_path = atomic_write_bytes(out_dir / "claims.md", ("\n".join(lines) + "\n").encode())
    return json_path, md_path
