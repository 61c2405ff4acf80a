"""Command line of shortcut_nb: ``python -m shortcut_nb`` or the ``shortcut-nb`` console script.

  run --profile {smoke,cpu,paper} [--only 01,03] --out DIR [notebook parameters]
      run the notebooks with papermill; notebook parameters:
        --data NAME=PATH    DATA_FOLDERS={NAME: PATH} (repeatable; PATH a folder holding metadata.csv)
        --model NAME        MODEL: a timm name, torchvision:<name> or a weights file
        --checkpoint FILE   CHECKPOINT: a model file, analysed as it is (it must exist)
        --image-size N      IMAGE_SIZE
        -p KEY VALUE        any parameter (repeatable); VALUE read as papermill's -p reads it (True/False/
                            None, int, float, else a string), and as YAML/JSON when it starts with [ or {
        -y YAML             a YAML mapping of parameters, as papermill's -y (repeatable)
      All checked before any notebook starts: a name no selected notebook declares is an error (exit 2);
      a name reaches only the notebooks that declare it; PROFILE, OUTPUT_DIR and DRY_RUN come from
      --profile, --out and --dry-run only.
  check-data FOLDER   list every problem of a dataset folder (exit 1 when there is one)
  claims OUT          rewrite the claims report of an output folder
  sweep {plan,submit,status} --profile P [--only 01,05] [--executor slurm|local|debug]
      train on a cluster what the notebooks will ask for (shortcut_nb.report.sweep)
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from papermill.iorw import NoDatesSafeLoader

from ..config import PROFILES
from ..data.check import check_folder, report
from .claims import write_claims_report
from . import sweep
from .runner import (ParameterError, ReportError, checkpoint_path, data_folder_path, image_size_value, model_value,
                     run_all, runs_root_path)

DATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Dedicated options and the notebook parameter each one sets.
OPTION_PARAMETERS = {"data": ("--data", "DATA_FOLDERS"), "model": ("--model", "MODEL"),
                     "checkpoint": ("--checkpoint", "CHECKPOINT"), "image_size": ("--image-size", "IMAGE_SIZE")}


def papermill_value(text: str) -> object:
    """A ``-p`` value converted as papermill's own ``-p`` does (``papermill.cli._resolve_type``).

    ``True``/``False``/``None``, then an int, then a float, else the string itself.
    """
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parameter_value(key: str, text: str) -> object:
    """A ``-p KEY VALUE`` value: papermill's conversion, and a list or mapping for a VALUE starting with [ or {.

    The list/mapping is read as YAML (JSON is YAML) with papermill's loader (dates stay strings); other YAML
    (``yes``, ``off``, ``~`` ...) is not applied, so a plain word stays the string papermill's ``-p`` would give.
    """
    value = papermill_value(text)
    if not isinstance(value, str) or not text.lstrip().startswith(("[", "{")):
        return value
    try:
        return yaml.load(text, Loader=NoDatesSafeLoader)
    except yaml.YAMLError as error:
        reason = getattr(error, "problem", None) or error
        raise ParameterError(f"-p {key} {text!r}: the value starts like a list or mapping but is not valid "
                             f"YAML/JSON ({reason}); expected e.g. '[0.5, 0.0]' or '{{\"a\": 1}}'") from error


def yaml_parameters(text: str) -> dict:
    """A ``-y YAML`` mapping of parameters, read as papermill's ``-y`` reads it."""
    try:
        value = yaml.load(text, Loader=NoDatesSafeLoader)
    except yaml.YAMLError as error:
        raise ParameterError(f"-y {text!r}: not valid YAML ({error}); expected a mapping such as "
                             "'TAU: 0.5' or '{TAU: 0.5, SEEDS: [0, 1]}'") from error
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"-y {text!r}: got a {type(value).__name__}, expected a mapping of parameters such "
                             "as 'TAU: 0.5' or '{TAU: 0.5, SEEDS: [0, 1]}'")
    return value


def data_option(text: str) -> tuple[str, str]:
    """``--data NAME=PATH`` → (NAME, absolute PATH); PATH must be a folder holding metadata.csv."""
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH, e.g. mydata=/data/waterbirds")
    if not DATA_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{text!r}: NAME {name!r} is not a name (expected letters, digits, "
                                         "_ . -, e.g. mydata=/data/waterbirds)")
    try:
        return name, data_folder_path(path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error


def _argument_type(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a runner check: its ValueError becomes the option's error, naming the value."""
    def convert(text: str) -> object:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error
    return convert


def _int_text(text: str) -> int:
    """A positive int from the command line (IMAGE_SIZE)."""
    try:
        number = int(text)
    except ValueError as error:
        raise ValueError("not an integer (expected the image side in pixels, e.g. 224)") from error
    return image_size_value(number)


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The ``run`` subcommand's options."""
    run.add_argument("--profile", choices=PROFILES, default="cpu")
    run.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 01,03")
    run.add_argument("--out", default="runs/report", help="folder for executed notebooks, JSON, figures and reports")
    run.add_argument("--runs-root", default=None, type=_argument_type(runs_root_path),
                     help="artifact root (checkpoints, data); default runs/")
    run.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default by profile)")
    run.add_argument("--dry-run", action="store_true",
                     help="the profile's own code path (models, image size, optimiser, data format) with only the "
                          "sizes capped: a few dozen images, one epoch, one seed; random weights where ImageNet "
                          "weights are absent (said so in each notebook's JSON)")
    run.add_argument("--notebooks", type=Path, default=None,
                     help="folder of NN_name.ipynb notebooks to run (default: the repository's notebooks/)")
    params = run.add_argument_group("notebook parameters", "checked before any notebook starts; each name reaches "
                                    "only the selected notebooks whose parameters cell declares it")
    params.add_argument("--data", metavar="NAME=PATH", action="append", type=data_option, default=[],
                        help="DATA_FOLDERS entry {NAME: PATH}: a dataset folder holding metadata.csv (repeatable)")
    params.add_argument("--model", metavar="NAME", type=_argument_type(model_value), default=None,
                        help="MODEL: a timm name, torchvision:<name>, or a weights file")
    params.add_argument("--checkpoint", metavar="FILE", type=_argument_type(checkpoint_path),
                        default=None, help="CHECKPOINT: a trained model's file, analysed as it is")
    params.add_argument("--image-size", metavar="N", type=_argument_type(_int_text), default=None,
                        help="IMAGE_SIZE: image side in pixels")
    params.add_argument("-p", "--parameters", nargs=2, metavar=("KEY", "VALUE"), action="append", default=[],
                        help="a notebook parameter (repeatable); VALUE read as papermill's -p does (True/False/None, "
                             "int, float, else a string), or as YAML/JSON when it starts with [ or {")
    params.add_argument("-y", "--parameters-yaml", metavar="YAML", action="append", default=[],
                        help="a YAML mapping of notebook parameters, e.g. '{TAU: 0.5, SEEDS: [0, 1]}' (repeatable)")


def build_parameters(args: argparse.Namespace) -> dict:
    """The notebook parameters of a ``run`` command: -y mappings, then -p (later wins), then the dedicated options."""
    parameters: dict = {}
    for text in args.parameters_yaml:
        parameters.update(yaml_parameters(text))
    for key, text in args.parameters:
        parameters[key] = parameter_value(key, text)
    names = [name for name, _ in args.data]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ParameterError(f"--data gives {', '.join(twice)} more than once; expected one PATH per NAME")
    dedicated = {"data": dict(args.data) or None, "model": args.model, "checkpoint": args.checkpoint,
                 "image_size": args.image_size}
    for dest, value in dedicated.items():
        option, key = OPTION_PARAMETERS[dest]
        if value is None:
            continue
        if key in parameters:
            raise ParameterError(f"{key} is given by both {option} and -p/-y; give it once")
        parameters[key] = value
    return parameters


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line's parser, and its ``run`` subparser (for errors found after parsing)."""
    parser = argparse.ArgumentParser(prog="python -m shortcut_nb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the notebooks headlessly with papermill, with parameters")
    add_run_arguments(run)
    claims = sub.add_parser("claims", help="(re)write the claims report of an output folder")
    claims.add_argument("out")
    check = sub.add_parser("check-data", help="list every problem of a dataset folder before a long run")
    check.add_argument("folder", nargs="+", help="dataset folder(s) holding metadata.csv")
    sweep.add_arguments(sub.add_parser("sweep", help="plan, submit (submitit: SLURM, local, debug) and watch the runs "
                                                     "the notebooks will ask for"))
    return parser, run


def run_command(args: argparse.Namespace, run: argparse.ArgumentParser) -> int:
    """``run``: check the parameters against the selected notebooks (exit 2 on a problem), then run them."""
    try:
        parameters = build_parameters(args)
        results = run_all(profile=args.profile, out=args.out, only=args.only, runs_root=args.runs_root,
                          timeout=args.timeout, dry_run=args.dry_run, parameters=parameters,
                          notebooks=args.notebooks)
    except ParameterError as error:
        run.error(str(error))  # exits 2 before any notebook ran
    except ReportError as error:
        print(f"[shortcut_nb] {error}", file=sys.stderr, flush=True)
        return 1
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments), run the subcommand, return its exit status."""
    parser, run = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_command(args, run)
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
        failed = failed or bool(problems)
        print(report(folder, problems))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
