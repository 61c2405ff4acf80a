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
from ..claims import CLAIMS, Claim


# Modules that register claims with @claim; each is imported before evaluation.
CLAIM_MODULES = (
    "shortcut_nb.groups",
    "shortcut_nb.latent",
    "shortcut_nb.neurons",
    "shortcut_nb.entanglement",
    "shortcut_nb.components",
    "shortcut_nb.vit_heads",
)


def load_claims() -> list[Claim]:
    """Import every topic module so its claims are registered; return them in notebook order."""
    for name in CLAIM_MODULES:
        importlib.import_module(name)
    order = {name.rsplit(".", 1)[1]: i for i, name in enumerate(CLAIM_MODULES)}
    return sorted(CLAIMS, key=lambda c: (c.notebook, order.get(c.id.split(".")[0], 99)))


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
            try:
                ours, holds = c.check(rec)
                row.update({"ours": ours, "holds": bool(holds), "profile": rec.get("profile")})
            except KeyError as missing:
                row.update({"ours": f"not recorded: {missing}", "holds": None, "profile": rec.get("profile")})
        rows.append(row)
    return rows


def write_claims_report(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``claims.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    rows = evaluate_claims(out_dir)
    json_path = atomic_write_json(out_dir / "claims.json", {"claims": rows})
    lines = ["# Claims report", "",
             "Each row: a finding of the paper, the paper's number, ours (from the notebooks' recorded JSON), and whether it holds.",
             "At the `smoke` profile the numbers are sanity checks only; read verdicts at `cpu` or `paper`.", "",
             "| claim | paper | ours | holds | profile |", "|---|---|---|---|---|"]
    for r in rows:
        verdict = {True: "yes", False: "no", None: "—"}[r["holds"]]
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {verdict} | {r.get('profile') or ''} |")
    md_path = atomic_write_bytes(out_dir / "claims.md", ("\n".join(lines) + "\n").encode())
    return json_path, md_path
