"""``python -m shortcut_nb sweep {plan,submit,status}``: train on a cluster what the notebooks will ask for.

The runs come from the sections themselves: each notebook's section has ``study.planned_runs(ctx, parameters)``,
built from the spec builders its study uses, called with the notebook's ``parameters`` cell as committed (read as
literals, never executed). A sweep then trains them through submitit (:mod:`shortcut_nb.pipeline.sweep`), and the
runner's notebooks load them (each records ``"runs": {"trained": 0, ...}``).
"""
from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path
from typing import Any

import nbformat

from ..pipeline.context import Context
from ..pipeline.sweep.plan import Plannable
from ..pipeline.sweep import SlurmOptions, format_plan, format_status, plan_runs, status, submit
from .runner import select_notebooks

# notebook name -> the study module whose planned_runs says what it trains
PLANNERS = {"01_groups": "groups.study", "02_latent_space": "latent_space.study", "03_cnn_neurons": "cnn_neurons.study",
            "04_entanglement": "entanglement.study", "05_subnetworks": "subnetworks.study",
            "06_vit_heads": "vit_heads.neuron_study"}


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The literal assignments of a notebook's ``parameters`` cell (``NAME = <literal>``), never executed."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"{path}: no cell tagged 'parameters'")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"{path}: parameter {node.targets[0].id} is not a literal ({err})") from err
    return params


def planned_specs(ctx: Context, only: str | None = None) -> list[Plannable]:
    """Every run (fine-tuning, pretraining, mask) the chosen notebooks will ask for under ``ctx``, each once, in
    notebook order."""
    specs: dict[str, Plannable] = {}
    for book in select_notebooks(only):
        study = importlib.import_module(f"shortcut_nb.sections.{PLANNERS[book.stem]}")
        for spec in study.planned_runs(ctx, notebook_parameters(book)):
            specs.setdefault(repr(spec), spec)
    return list(specs.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("plan", "submit", "status"))
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,05")
    parser.add_argument("--dry-run", action="store_true", help="the runs of the profile's dry run")
    parser.add_argument("--runs-root", default=None, help="the shared runs root (default: $SHORTCUT_NB_RUNS or runs/)")
    parser.add_argument("--name", default="sweep", help="the sweep's name (its folder under <runs root>/sweeps/)")
    parser.add_argument("--executor", choices=("slurm", "local", "debug"), default="slurm")
    parser.add_argument("--max-parallel", type=int, default=None, help="jobs of a level running at once")
    parser.add_argument("--brief", action="store_true", help="plan: counts only, no line per run")
    slurm = parser.add_argument_group("SLURM")
    slurm.add_argument("--partition")
    slurm.add_argument("--gpus-per-node", type=int, default=1)
    slurm.add_argument("--cpus-per-task", type=int, default=4)
    slurm.add_argument("--mem-gb", type=float, default=None)
    slurm.add_argument("--time-min", type=int, default=240, help="time limit per job; a job requeues past it")
    slurm.add_argument("--account")
    slurm.add_argument("--sbatch", action="append", default=[], help="an extra #SBATCH line, e.g. --sbatch=--qos=high")
    slurm.add_argument("--setup", action="append", default=[], help="a shell line run before each job")


def main(args: argparse.Namespace) -> int:
    ctx = Context.build(args.profile, root=args.runs_root, dry_run=args.dry_run, progress=False)
    specs = planned_specs(ctx, args.only)
    if args.action == "plan":
        print(f"profile {args.profile}{' (dry run)' if args.dry_run else ''}, runs root {ctx.root}")
        print(format_plan(plan_runs(specs, root=ctx.root, name=args.name), details=not args.brief))
    elif args.action == "submit":
        options = SlurmOptions(partition=args.partition, gpus_per_node=args.gpus_per_node,
                               cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, timeout_min=args.time_min,
                               account=args.account, additional=tuple(args.sbatch), setup=tuple(args.setup))
        sub = submit(plan_runs(specs, root=ctx.root, name=args.name), root=ctx.root, name=args.name,
                     executor=args.executor, max_parallel=args.max_parallel, slurm=options)
        print(sub.describe())
    else:
        st = status(specs, root=ctx.root, name=args.name)
        print(format_status(st))
        return 1 if st.stalled else 0  # a script waiting on the sweep stops at a failure or a gap
    return 0
