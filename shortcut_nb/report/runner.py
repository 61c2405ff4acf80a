"""Run the notebooks headlessly with papermill: one runner for users, the README and CI.

Each notebook runs in its own process with a timeout, gets ``PROFILE`` and
``OUTPUT_DIR`` injected into its ``parameters`` cell, and writes
``OUTPUT_DIR/<name>.ipynb`` (executed), ``OUTPUT_DIR/<name>.json`` (its
numbers) and ``OUTPUT_DIR/figures/*.png``. A notebook executes into a fresh
hidden folder beside them and replaces its previous outputs only when it
succeeded; a failed one leaves its last good outputs in ``last_good/`` and its
claims "not run" (:mod:`.publish`). After the notebooks ``runs.json``, the
claims report (``claims.json``, ``claims.md``) and an ``index.html`` are written.

Further notebook parameters (``run_all(parameters=...)``, the CLI's ``--data``,
``--model``, ``--checkpoint``, ``--image-size``, ``-p``, ``-y``) are checked
before any notebook starts: each name must be declared in the parameters cell
of at least one selected notebook (read with :mod:`ast`, nothing evaluated) and
reaches only the notebooks that declare it; ``DATA_FOLDERS`` and ``CHECKPOINT``
paths are made absolute and must exist (a notebook runs in ``notebooks/``).

A notebook's papermill process dies with the runner, however the runner ends: SIGTERM and Ctrl-C stop it
(:func:`run_notebook` kills it on the way out), and on Linux it gets SIGKILL from the kernel when the runner itself
is killed (``PR_SET_PDEATHSIG``, even for kill -9). Its Jupyter kernel follows within a second: ipykernel polls its
parent (papermill) and exits when it is gone.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..artifacts import atomic_write_json
from ..config import check_profile
from ..progress import PLAIN_ENV
from .claims import write_claims_report
from .html import write_index
from .parameters import ParameterError, declared_parameters, unknown_message
from .publish import keep_last_good, publish, stage_folder

# Per-notebook timeouts (seconds) by profile; the paper profile runs on a GPU for hours. A timeout catches a hung
# kernel, not a slow machine: on a 2-core VM 3.3x slower than the one the cpu profile was timed on (its CNN stand-in
# pretraining 55 s per epoch, not 16 s), 01 at cpu needs its two stand-in pretrainings (about 50 min) before
# training 35 models, so the cpu limit leaves hours.
TIMEOUTS = {"smoke": 240, "cpu": 6 * 3600, "paper": 48 * 3600}
DRY_RUN_TIMEOUT = 900  # a dry run of any profile: real models, capped sizes (minutes on 2 CPU cores)
# Parameters the runner sets itself, and the option that sets them.
RESERVED = {"PROFILE": "--profile", "OUTPUT_DIR": "--out", "DRY_RUN": "--dry-run"}
# Characters of a failed notebook's output kept in its error (the index and the log show it).
ERROR_TAIL_CHARS = 3000
# File suffixes that make a MODEL value a weights file rather than a timm / torchvision name.
MODEL_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".tar")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# loaded here, not in the forked child (loading a library between fork and exec is not safe)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class ReportError(OSError):
    """The report (runs.json, claims, index) could not be written into the output folder."""


@dataclass
class NotebookRun:
    name: str
    seconds: float
    ok: bool
    error: str = ""


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (the runner is used from a checkout)."""
    here = Path(__file__).resolve().parents[2] / "notebooks"
    if here.is_dir():
        return here
    cwd = Path.cwd() / "notebooks"
    if cwd.is_dir():
        return cwd
    raise FileNotFoundError("no notebooks/ folder found next to the package or in the current directory")


def select_notebooks(only: str | None = None, folder: Path | None = None) -> list[Path]:
    """All ``NN_name.ipynb`` notebooks, or those whose number or name is in ``only`` (e.g. ``"01,03"``)."""
    folder = folder or notebooks_dir()
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return books
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    picked = [b for b in books if any(b.stem == w or b.stem.split("_")[0] == w.zfill(2) for w in wanted)]
    unknown = [w for w in wanted if not any(b.stem == w or b.stem.split("_")[0] == w.zfill(2) for b in books)]
    if unknown:
        raise ValueError(f"--only names no notebook for {unknown}; available: {[b.stem for b in books]}")
    return picked


def data_folder_path(path: str | os.PathLike) -> str:
    """``path`` made absolute; a ValueError unless it is a dataset folder holding ``metadata.csv``."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder (expected a dataset folder holding metadata.csv)")
    if not (folder / "metadata.csv").is_file():
        raise ValueError(f"{folder} holds no metadata.csv (expected a dataset folder holding metadata.csv, "
                         "see `python -m shortcut_nb check-data FOLDER`)")
    return str(folder)


def runs_root_path(path: str | os.PathLike) -> str:
    """A runs root made absolute; a ValueError when it, or a folder above it, is a file (it is created when missing)."""
    folder = Path(path).expanduser().resolve()
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                what = "is a file" if place == folder else f"lies under {place}, which is a file"
                raise ValueError(f"{folder} {what} (expected a folder for checkpoints, data and features; it is "
                                 "created when missing)")
            break
    return str(folder)


def checkpoint_path(path: str | os.PathLike) -> str:
    """``path`` made absolute; a ValueError unless it is an existing file."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ValueError(f"{file} is not a file (expected an existing checkpoint file)")
    return str(file)


def model_value(name: str) -> str:
    """A MODEL value: a timm name or ``torchvision:<name>`` as it is; a weights file made absolute (it must exist)."""
    if Path(name).expanduser().is_file():
        return str(Path(name).expanduser().resolve())
    if name.lower().endswith(MODEL_FILE_SUFFIXES):
        raise ValueError(f"{name} looks like a weights file but no such file exists (expected a timm name, "
                         "torchvision:<name> or an existing file)")
    return name


def image_size_value(value: object) -> int:
    """An IMAGE_SIZE value: a positive int (a ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{value!r} is not a positive integer (expected the image side in pixels, e.g. 224)")
    return value


def _checked_value(key: str, value: object) -> object:
    """One parameter's value with its paths made absolute and checked; a ParameterError names the parameter."""
    try:
        if key == "DATA_FOLDERS":
            if not isinstance(value, dict):
                raise ValueError(f"{value!r} is not a mapping (expected {{NAME: PATH}})")
            return {str(name): data_folder_path(path) for name, path in value.items()}
        if key == "CHECKPOINT" and value is not None:
            return checkpoint_path(value)
        if key == "MODEL" and isinstance(value, str):
            return model_value(value)
        if key == "IMAGE_SIZE" and value is not None:
            return image_size_value(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"parameter {key}: {error}") from error
    return value


def check_values(parameters: dict) -> dict:
    """The user's parameters, checked: identifier names, none the runner sets itself, JSON-able values, paths."""
    checked = {}
    for key, value in parameters.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ParameterError(f"parameter name {key!r} is not a Python identifier (expected e.g. TAU or SEEDS)")
        if key in RESERVED:
            raise ParameterError(f"parameter {key} is set by the runner: use {RESERVED[key]} instead of "
                                 f"passing {key} as a parameter")
        checked[key] = _checked_value(key, value)
    return checked


def plan_parameters(books: list[Path], parameters: dict | None) -> dict[str, dict]:
    """Each notebook's share of the user's ``parameters``: a name goes to the notebooks that declare it.

    Each share lists its names in the order of the notebook's parameters cell.

    Raises :class:`ParameterError` (before anything runs) for a reserved name, a bad value, or a name that none of
    ``books`` declares.
    """
    checked = check_values(parameters or {})
    if not checked:
        return {book.stem: {} for book in books}
    declared = {book.stem: declared_parameters(book) for book in books}
    unknown = [key for key in checked if not any(key in names for names in declared.values())]
    if unknown:
        raise ParameterError(unknown_message(unknown, declared))
    return {stem: {name: checked[name] for name in names if name in checked} for stem, names in declared.items()}


def _assignments(parameters: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in parameters.items())


def describe_parameters(common: dict, plan: dict[str, dict]) -> str:
    """The parameters as applied, for the log: those every notebook gets, then each notebook's own."""
    lines = [f"[shortcut_nb] parameters: {_assignments(common)} for every notebook"
             + ("" if any(plan.values()) else "; no others")]
    if any(plan.values()):
        lines += [f"[shortcut_nb]   {stem}: {_assignments(own) or '(its defaults)'}" for stem, own in plan.items()]
    return "\n".join(lines)


def error_tail(text: str, limit: int = ERROR_TAIL_CHARS) -> str:
    """The end of a failed run's output, at most ``limit`` characters, starting at a line's start."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return "[... earlier output cut]\n" + (cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut)


def _die_with(parent: int) -> None:
    """In the papermill child before it starts: SIGKILL when the runner (``parent``) dies, however it dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the runner died before the request took effect
        os._exit(1)


class RunnerStopped(SystemExit):
    """The runner got SIGTERM: it exits (status 143) and its notebook's process is killed on the way out."""


@contextlib.contextmanager
def _sigterm_stops(book: Path) -> Iterator[None]:
    """SIGTERM raises :class:`RunnerStopped` in the main thread (elsewhere the handler cannot be set: no change)."""
    def stop(signum, frame):
        print(f"[shortcut_nb] stopped by {signal.Signals(signum).name} while running {book.name}: its papermill "
              "process and kernel are ended", file=sys.stderr, flush=True)
        raise RunnerStopped(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_notebook(path: Path, *, profile: str, out: Path, timeout: float, runs_root: str | None = None,
                 extra_parameters: dict | None = None) -> NotebookRun:
    """Execute one notebook with papermill in a child process, killed after ``timeout`` seconds or when the
    runner stops (an exception, SIGTERM, Ctrl-C, or the runner killed outright: see the module's notes).

    It executes into a fresh folder beside ``out`` (its ``OUTPUT_DIR``); its outputs replace the previous ones only
    when it succeeded, else the previous good ones move to ``out/last_good/`` (:mod:`.publish`).
    """
    stage = stage_folder(out, path.stem)
    params = {"PROFILE": profile, "OUTPUT_DIR": str(stage.resolve()), **(extra_parameters or {})}
    cmd = [sys.executable, "-m", "papermill", str(path), str(stage / path.name), "--kernel", "python3",
           "--cwd", str(path.parent), "--no-progress-bar", "--log-level", "WARNING"]
    for key, value in params.items():
        cmd += ["-y", json.dumps({key: value})]
    env = {**os.environ, PLAIN_ENV: "1", "MPLBACKEND": "Agg"}
    if profile == "smoke":
        # smoke models are tiny: one thread is as fast, and it does not collapse on a shared, loaded machine
        env.setdefault("OMP_NUM_THREADS", "1")
    if runs_root:
        env["SHORTCUT_NB_RUNS"] = str(Path(runs_root).resolve())
    tic = time.perf_counter()
    with _sigterm_stops(path), subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                preexec_fn=functools.partial(_die_with, os.getpid())) as proc:
        timed_out, stdout, stderr = False, "", ""
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:  # timed out or stopped: its kernel follows it (ipykernel polls its parent)
                proc.kill()
                proc.wait()
    seconds = time.perf_counter() - tic
    if timed_out:
        result = NotebookRun(path.stem, seconds, False, f"timed out after {timeout:.0f} s")
    elif proc.returncode != 0:
        result = NotebookRun(path.stem, seconds, False, error_tail(stderr or stdout))
    elif not (stage / f"{path.stem}.json").is_file():
        result = NotebookRun(path.stem, seconds, False, f"ran, but recorded no {path.stem}.json")
    else:
        result = NotebookRun(path.stem, seconds, True)
    if result.ok:
        publish(stage, out, path.stem)
    else:
        keep_last_good(stage, out, path.stem)
    return result


def run_all(*, profile: str, out: str | os.PathLike, only: str | None = None, runs_root: str | None = None,
            timeout: float | None = None, dry_run: bool = False, parameters: dict | None = None,
            notebooks: Path | None = None) -> list[NotebookRun]:
    """Run the notebooks (all, or those ``only`` names) and write the claims report and the index.

    ``dry_run`` sets every notebook's ``DRY_RUN`` parameter: the profile's own code path with the sizes capped.
    ``parameters`` go into the notebooks' parameters cells, each only to the notebooks that declare it; they are
    checked first (:func:`plan_parameters`), so a :class:`ParameterError` means no notebook ran. ``notebooks`` is
    the folder of ``NN_name.ipynb`` notebooks (default: the repository's ``notebooks/``).
    """
    profile = check_profile(profile)
    books = select_notebooks(only, notebooks)
    plan = plan_parameters(books, parameters)
    out = Path(out)
    timeout = timeout or (DRY_RUN_TIMEOUT if dry_run else TIMEOUTS[profile])
    common = {"PROFILE": profile, "OUTPUT_DIR": str(out.resolve()), **({"DRY_RUN": True} if dry_run else {})}
    print(describe_parameters(common, plan), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    mode = f"profile={profile}{', dry run' if dry_run else ''}"
    results = []
    for book in books:
        print(f"[shortcut_nb] running {book.name} ({mode}, timeout {timeout:.0f} s) ...", flush=True)
        extra = {**({"DRY_RUN": True} if dry_run else {}), **plan[book.stem]}
        result = run_notebook(book, profile=profile, out=out, timeout=timeout, runs_root=runs_root,
                              extra_parameters=extra or None)
        status = "ok" if result.ok else "FAILED"
        print(f"[shortcut_nb] {book.stem}: {status} in {result.seconds:.1f} s", flush=True)
        if not result.ok:
            print(result.error, file=sys.stderr, flush=True)
        results.append(result)
    write_report(out, results, profile=profile, dry_run=dry_run, plan=plan)
    print(f"[shortcut_nb] executed notebooks, figures and reports are in {out.resolve()} "
          f"(open {out.resolve() / 'index.html'})", flush=True)
    return results


def write_report(out: Path, results: list[NotebookRun], *, profile: str, dry_run: bool, plan: dict) -> None:
    """``runs.json`` (what this call ran), the claims report and ``index.html``, each written atomically.

    Raises:
        ReportError: the folder cannot take them (a full disk, no permission): the message names the folder, the
            file and the reason; the executed notebooks and their JSON stay as published.
    """
    try:
        atomic_write_json(out / "runs.json", {"profile": profile, "dry_run": dry_run, "parameters": plan,
                                              "notebooks": [r.__dict__ for r in results]})
        write_claims_report(out)
        write_index(out, results=[r.__dict__ for r in results], profile=profile + (" (dry run)" if dry_run else ""))
    except OSError as error:
        reason = "no space left on device" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise ReportError(f"could not write the report into --out {out}: {reason} (writing "
                          f"{error.filename or 'a report file'}). The notebooks' outputs are published there; free "
                          f"space (or pick another --out) and write the report again with `python -m shortcut_nb "
                          f"claims {out}`.") from error
