"""Command line of shortcut_nb.

``python -m shortcut_nb run --profile {smoke,cpu,paper} [--only 01,03] --out DIR`` runs the notebooks;
``python -m shortcut_nb check-data FOLDER`` lists every problem of a dataset folder (exit 1 when there is one);
``python -m shortcut_nb claims OUT`` rewrites the claims report of an output folder;
``python -m shortcut_nb sweep {plan,submit,status} --profile P [--only 01,05] [--executor slurm|local|debug]``
trains on a cluster what the notebooks will ask for (:mod:`.sweep`).
"""
from __future__ import annotations

import argparse
import sys

from ..config import PROFILES
from ..data.check import check_folder
from .claims import write_claims_report
from . import sweep
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
    run.add_argument("--dry-run", action="store_true",
                     help="the profile's own code path (models, image size, optimiser, data format) with only the "
                          "sizes capped: a few dozen images, one epoch, one seed; random weights where ImageNet "
                          "weights are absent (said so in each notebook's JSON)")
    claims = sub.add_parser("claims", help="(re)write the claims report of an output folder")
    claims.add_argument("out")
    check = sub.add_parser("check-data", help="list every problem of a dataset folder before a long run")
    check.add_argument("folder", nargs="+", help="dataset folder(s) holding metadata.csv")
    sweep.add_arguments(sub.add_parser("sweep", help="plan, submit (submitit: SLURM, local, debug) and watch the runs "
                                                     "the notebooks will ask for"))
    args = parser.parse_args(argv)
    if args.command == "run":
        results = run_all(profile=args.profile, out=args.out, only=args.only, runs_root=args.runs_root,
                          timeout=args.timeout, dry_run=args.dry_run)
        return 0 if all(r.ok for r in results) else 1
    if args.command == "claims":
        for path in write_claims_report(args.out):
            print(path)
        return 0
    if args.command == "sweep":
        return sweep.main(args)
    if args.command == "check-data":
        return check_data(args.folder)
    return 2


def check_data(folders: list[str]) -> int:
    """Print each folder's problems (or that it is fine); 1 when any folder has a problem."""
    failed = False
    for folder in folders:
        problems = check_folder(folder)
        if problems:
            failed = True
            print(f"{folder}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"{folder}: no problem found (metadata, every image and mask decoded, splits and groups present)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
