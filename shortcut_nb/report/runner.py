"""Run the notebooks headlessly with papermill: one runner for users, the README and CI.

Each notebook runs in its own process with a timeout, gets ``PROFILE`` and
``OUTPUT_DIR`` injected into its ``parameters`` cell, and writes
``OUTPUT_DIR/<name>.ipynb`` (executed), ``OUTPUT_DIR/<name>.json`` (its
numbers) and ``OUTPUT_DIR/figures/*.png``. After the notebooks the claims
report (``claims.json``, ``claims.md``) and an ``index.html`` are written.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import check_profile
from ..progress import PLAIN_ENV
from .claims import write_claims_report
from .html import write_index

# Per-notebook timeouts (seconds) by profile; the paper profile runs on a GPU for hours.
TIMEOUTS = {"smoke": 240, "cpu": 2400, "paper": 48 * 3600}
DRY_RUN_TIMEOUT = 900  # a dry run of any profile: real models, capped sizes (minutes on 2 CPU cores)


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


def run_notebook(path: Path, *, profile: str, out: Path, timeout: float, runs_root: str | None = None,
                 extra_parameters: dict | None = None) -> NotebookRun:
    """Execute one notebook with papermill in a child process, killed after ``timeout`` seconds."""
    params = {"PROFILE": profile, "OUTPUT_DIR": str(out.resolve()), **(extra_parameters or {})}
    cmd = [sys.executable, "-m", "papermill", str(path), str(out / path.name), "--kernel", "python3",
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
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return NotebookRun(path.stem, time.perf_counter() - tic, False, f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - tic
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return NotebookRun(path.stem, seconds, False, tail)
    if not (out / f"{path.stem}.json").is_file():
        return NotebookRun(path.stem, seconds, False, f"ran, but recorded no {path.stem}.json")
    return NotebookRun(path.stem, seconds, True)


def run_all(*, profile: str, out: str | os.PathLike, only: str | None = None, runs_root: str | None = None,
            timeout: float | None = None, dry_run: bool = False) -> list[NotebookRun]:
    """Run the notebooks (all, or those ``only`` names) and write the claims report and the index.

    ``dry_run`` sets every notebook's ``DRY_RUN`` parameter: the profile's own code path with the sizes capped.
    """
    profile = check_profile(profile)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timeout = timeout or (DRY_RUN_TIMEOUT if dry_run else TIMEOUTS[profile])
    extra = {"DRY_RUN": True} if dry_run else None
    mode = f"profile={profile}{', dry run' if dry_run else ''}"
    results = []
    for book in select_notebooks(only):
        print(f"[shortcut_nb] running {book.name} ({mode}, timeout {timeout:.0f} s) ...", flush=True)
        result = run_notebook(book, profile=profile, out=out, timeout=timeout, runs_root=runs_root,
                              extra_parameters=extra)
        status = "ok" if result.ok else "FAILED"
        print(f"[shortcut_nb] {book.stem}: {status} in {result.seconds:.1f} s", flush=True)
        if not result.ok:
            print(result.error, file=sys.stderr, flush=True)
        results.append(result)
    write_claims_report(out)
    write_index(out, results=[r.__dict__ for r in results], profile=profile + (" (dry run)" if dry_run else ""))
    (out / "runs.json").write_text(json.dumps({"profile": profile, "dry_run": dry_run,
                                               "notebooks": [r.__dict__ for r in results]}, indent=1))
    print(f"[shortcut_nb] executed notebooks, figures and reports are in {out.resolve()} "
          f"(open {out.resolve() / 'index.html'})", flush=True)
    return results
