"""The claims report: each of the paper's findings checked against the numbers our notebooks recorded.

A claim is a function of the recorded JSON of one notebook (``<name>.json`` in
the runner's output folder) returning the paper's number, ours and whether the
finding holds. Notebooks add claims here as they are built; a claim whose
notebook did not run is listed as "not run", never silently dropped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .artifacts import atomic_write_bytes, atomic_write_json, read_json


@dataclass(frozen=True)
class Claim:
    id: str
    notebook: str
    claim: str
    paper: str
    check: Callable[[dict], tuple[str, bool]]  # recorded JSON -> (ours, holds)


CLAIMS: list[Claim] = []


def claim(id: str, notebook: str, text: str, paper: str):
    def register(fn):
        CLAIMS.append(Claim(id=id, notebook=notebook, claim=text, paper=paper, check=fn))
        return fn

    return register


WGA_GAP_MIN = 0.10  # "well below": at least 10 points under AVG


@claim("groups.gap", "01_groups", "WGA is well below AVG for every model and dataset",
       "Table 2: GAP 0.19-0.71 (e.g. ResNet-18 Waterbirds AVG 0.83 / WGA 0.46)")
def _gap(rec: dict):
    rows = rec["table2"]
    ours = "; ".join(f"{k}: AVG {r['avg']:.2f} / WGA {r['wga']:.2f}" for k, r in rows.items())
    return ours, all(r["avg"] - r["wga"] >= WGA_GAP_MIN for r in rows.values())


@claim("groups.sweep", "01_groups",
       "As the minority ratio falls, minority-group accuracy falls, majority groups stay above 0.9, and 0 % stays above zero",
       "Table 3: G1 0.98/0.95/0.78/0.34, G2 0.84/0.74/0.46/0.22, G0 ≥ 0.98, G3 ≥ 0.83 (50/25/5/0 %)")
def _sweep(rec: dict):
    sweep = sorted(rec["sweep"].values(), key=lambda r: -r["ratio"])
    minority = [(r["groups"][1] + r["groups"][2]) / 2 for r in sweep]
    falls = all(b <= a + 0.02 for a, b in zip(minority, minority[1:]))  # 2 points of seed noise allowed
    majority_ok = all(min(r["groups"][0], r["groups"][3]) >= 0.9 for r in sweep if r["ratio"] < 0.5)
    zero = [m for r, m in zip(sweep, minority) if r["ratio"] == 0]
    above_zero = bool(zero) and zero[0] > 0.10
    ours = "minority mean " + " / ".join(f"{m:.2f}" for m in minority) + " at " + \
        " / ".join(f"{r['ratio'] * 100:g}%" for r in sweep) + "; majority min " + \
        " / ".join(f"{min(r['groups'][0], r['groups'][3]):.2f}" for r in sweep)
    return ours, falls and majority_ok and above_zero


def evaluate_claims(out_dir: str | os.PathLike) -> list[dict]:
    """Check every registered claim against the JSON files in ``out_dir``."""
    out_dir = Path(out_dir)
    rows = []
    for c in CLAIMS:
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
