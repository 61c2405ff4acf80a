"""A notebook's outputs in the runner's folder: executed into a fresh folder, published only when it succeeded.

The outputs of notebook ``NN_name`` are ``NN_name.ipynb`` (executed), ``NN_name.html``, ``NN_name.json`` (its
numbers) and ``figures/NN_*.png``. The runner executes a notebook into a fresh hidden folder beside them
(:func:`stage_folder`) and then:

- on success, its outputs replace the previous ones (:func:`publish`); figures the new run did not draw are removed;
- on failure, the previous good outputs move to ``last_good/`` under the same names (:func:`keep_last_good`), and
  the failed executed notebook takes ``NN_name.ipynb`` (it shows the failing cell). No ``NN_name.json`` is left in
  the folder, so the claims that depend on it say "not run", never an older verdict.

A JSON left in the folder by an earlier runner call (a reused ``--out`` with ``--only``) is listed by
:func:`earlier_records` with the time it was recorded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from ..artifacts import atomic_write_json, read_json

LAST_GOOD = "last_good"
STAGE_PREFIX = ".running-"


def outputs_of(folder: Path, stem: str) -> list[Path]:
    """The outputs of notebook ``stem`` in ``folder``, relative to it (those that exist)."""
    own = [Path(f"{stem}{suffix}") for suffix in (".ipynb", ".html", ".json") if (folder / f"{stem}{suffix}").is_file()]
    figures = folder / "figures"
    prefix = stem.split("_")[0] + "_"
    drawn = sorted(Path("figures", p.name) for p in figures.glob(f"{prefix}*.png")) if figures.is_dir() else []
    return own + drawn


def stage_folder(out: Path, stem: str) -> Path:
    """A fresh, empty folder beside ``out``'s outputs (same file system: publishing is a rename) for one execution."""
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{stem}-", dir=out))


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _remove(folder: Path, stem: str) -> None:
    for rel in outputs_of(folder, stem):
        (folder / rel).unlink()


def publish(stage: Path, out: Path, stem: str) -> None:
    """A successful execution's outputs replace ``stem``'s previous outputs in ``out``; the stage is removed."""
    new = outputs_of(stage, stem)
    _record_output_dir(stage / f"{stem}.json", out)
    for rel in new:
        _move(stage / rel, out / rel)
    for rel in set(outputs_of(out, stem)) - set(new):  # e.g. a figure this run no longer draws
        (out / rel).unlink()
    _remove(out / LAST_GOOD, stem)  # superseded by a newer good run
    shutil.rmtree(stage, ignore_errors=True)


def _record_output_dir(record: Path, out: Path) -> None:
    """The record's ``OUTPUT_DIR`` is where its outputs are published, not the fresh folder it executed in (kept as
    ``provenance.executed_in``)."""
    if not record.is_file():
        return
    rec = read_json(record)
    parameters = (rec.get("provenance") or {}).get("parameters")
    if parameters and "OUTPUT_DIR" in parameters:
        rec["provenance"]["executed_in"] = parameters["OUTPUT_DIR"]
        parameters["OUTPUT_DIR"] = str(out.resolve())
        atomic_write_json(record, rec)


def keep_last_good(stage: Path, out: Path, stem: str) -> None:
    """After a failed execution: ``stem``'s previous good outputs move to ``out/last_good/``, the failed executed
    notebook (when papermill wrote one) takes ``out/<stem>.ipynb``; nothing else of the failed run is kept."""
    if (out / f"{stem}.json").is_file():  # the outputs in out are a good run's: keep them, out of the report
        _remove(out / LAST_GOOD, stem)
        for rel in outputs_of(out, stem):
            _move(out / rel, out / LAST_GOOD / rel)
    _remove(out, stem)  # an earlier failure's notebook
    failed = stage / f"{stem}.ipynb"
    if failed.is_file():
        _move(failed, out / failed.name)
    shutil.rmtree(stage, ignore_errors=True)


def recorded_time(path: Path) -> str:
    """When a notebook's JSON was recorded: its provenance's time, else the file's modification time."""
    try:
        when = (read_json(path).get("provenance") or {}).get("recorded_at")
    except ValueError:
        when = None
    return when or time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime))


def earlier_records(out: Path, ran: list[str]) -> dict[str, str]:
    """The notebooks whose JSON in ``out`` an earlier runner call left (not among ``ran``): name → recorded time."""
    return {p.stem: recorded_time(p) for p in sorted(out.glob("[0-9][0-9]_*.json")) if p.stem not in ran}


def last_runner_call(out: Path) -> tuple[list[str], list[str]] | None:
    """The notebooks the last runner call into ``out`` ran, and those of them that failed (its ``runs.json``);
    None when no runner call wrote one."""
    path = out / "runs.json"
    if not path.is_file():
        return None
    notebooks = read_json(path).get("notebooks", [])
    return [n["name"] for n in notebooks], [n["name"] for n in notebooks if not n["ok"]]
