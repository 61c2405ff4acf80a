"""A sweep's job records: where each run's latest job writes, and what it says about the run.

``<runs root>/sweeps/<name>/sweep.json`` keeps, per run key, the latest job's id, executor, host and log paths
(and, for jobs that ran here, their outcome); :func:`attempt_state` turns one into running / queued / failed.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Literal

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from ...artifacts import read_json
from ...config import runs_root

State = Literal["done", "partial", "missing", "running", "queued", "failed"]
ERROR_LINES = 12  # lines of a failure's error shown by status

def sweep_dir(root: str | os.PathLike | None, name: str | None) -> Path:
    return runs_root(root) / "sweeps" / (name or "sweep")


def read_manifest(folder: Path) -> dict:
    path = folder / "sweep.json"
    return read_json(path) if path.is_file() else {"attempts": {}}


def attempt_record(job, executor: str, level: int) -> dict:
    paths = job.paths if executor != "debug" else None
    return {"job_id": str(job.job_id), "executor": executor, "level": level, "host": socket.gethostname(),
            "submitted": time.time(), "stdout": str(paths.stdout) if paths else None,
            "stderr": str(paths.stderr) if paths else None,
            "result": str(paths.result_pickle) if paths else None}


def job_outcome(job) -> dict:
    try:
        job.result()
        return {"outcome": "done"}
    except FailedJobError as err:  # the call raised: its traceback
        return {"outcome": "failed", "error": error_text(err)}
    except UncompletedJobError as err:  # killed (SIGKILL, out of memory) or out of requeues: no result
        return {"outcome": "interrupted", "error": tail(str(err))}
    except Exception as err:  # noqa: BLE001 - the job's own error, reported by status
        return {"outcome": "failed", "error": error_text(err)}


def error_text(err: BaseException) -> str:
    text = "".join(traceback.format_exception(err)) if not str(err).strip() else str(err)
    return tail(text if "Error" in text else f"{type(err).__name__}: {text}")


def tail(text: str, n: int = ERROR_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def attempt_state(attempt: dict) -> tuple[State | None, str | None]:
    """What the latest job of a run says: running / queued / failed (with its error), or None."""
    outcome = attempt.get("outcome")
    if outcome == "failed":
        return "failed", attempt.get("error")
    if outcome:
        return None, None
    result = Path(attempt["result"]) if attempt.get("result") else None
    if result is not None and result.is_file():
        kind, value = submitit.core.utils.pickle_load(result)
        return ("failed", tail(str(value))) if kind == "error" else (None, None)
    if attempt.get("executor") == "local" and attempt.get("host") == socket.gethostname():
        return ("running", None) if _pid_alive(int(attempt["job_id"])) else (None, None)
    if attempt.get("executor") == "slurm":
        return _slurm_state(attempt)
    return None, None


def _slurm_state(attempt: dict) -> tuple[State | None, str | None]:
    try:
        job = submitit.SlurmJob(Path(attempt["stderr"]).parent, attempt["job_id"])
        state = job.state.upper()
    except Exception:  # noqa: BLE001 - no sacct here: the runs root alone says what it can
        return None, None
    if state in _SLURM_QUEUED or state in ("RUNNING", "COMPLETING"):
        return ("queued" if state in _SLURM_QUEUED else "running"), None
    if state.split()[0] in _SLURM_FAILED:
        log = Path(attempt["stderr"])
        return "failed", f"SLURM state {state}\n" + (tail(log.read_text(errors="replace")) if log.is_file() else "")
    return None, None


_SLURM_QUEUED = ("PENDING", "REQUEUED", "CONFIGURING", "RESIZING", "SUSPENDED")


_SLURM_FAILED = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "BOOT_FAIL", "DEADLINE")
