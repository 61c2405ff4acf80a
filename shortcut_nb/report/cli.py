"""Command line: ``python -m shortcut_nb run --profile {smoke,cpu,paper} [--only 01,03] --out DIR``."""
from __future__ import annotations

import argparse
import sys

from ..config import PROFILES
from .claims import write_claims_report
from .runner import run_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shortcut_nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the notebooks headlessly with papermill")
    run.add_argument("--profile", choices=PROFILES, default="cpu")
    run.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    run.add_argument("--out", default="runs/report", help="folder for executed notebooks, JSON, figures and reports")
    run.add_argument("--runs-root", default=None, help="artifact root (checkpoints, data); default runs/")
    run.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default by profile)")
    claims = sub.add_parser("claims", help="(re)write the claims report of an output folder")
    claims.add_argument("out")
    args = parser.parse_args(argv)
    if args.command == "run":
        results = run_all(profile=args.profile, out=args.out, only=args.only, runs_root=args.runs_root, timeout=args.timeout)
        return 0 if all(r.ok for r in results) else 1
    if args.command == "claims":
        for path in write_claims_report(args.out):
            print(path)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
