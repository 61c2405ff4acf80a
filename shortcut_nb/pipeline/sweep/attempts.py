"""A sweep's job records: where each run's latest job writes, and what it says about the run.

``<runs root>/sweeps/<name>/sweep.json`` keeps, per run key, the latest job's id, executor, host and log paths
(and, for jobs that ran here, their outcome); :func:`attempt_state` turns one into running / queued / failed /
unstarted. ``sweep submit`` writes a record for every run it will submit before it submits any (no job id yet:
:func:`planned_record`) and rewrites the file as each job starts and ends, so a killed submit leaves its jobs that
never started visible as such, and a killed job is failed, not missing.
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

State = Literal["done", "partial", "missing", "running", "queued", "failed", "unstarted"]
ERROR_LINES = 12  # lines of a failure's error shown by status

def sweep_dir(root: str | os.PathLike | None, name: str | None) -> Path:
    return runs_root(root) / "sweeps" / (name or "sweep")


def read_manifest(folder: Path) -> dict:
    path = folder / "sweep.json"
    return read_json(path) if path.is_file() else {"attempts": {}}


def planned_record(executor: str, level: int) -> dict:
    """A run this process (the ``sweep submit``) will submit but has not yet: no job id."""
    return {"job_id": None, "executor": executor, "level": level, "host": socket.gethostname(),
            "submitter_pid": os.getpid(), "planned": time.time()}


def attempt_record(job, executor: str, level: int) -> dict:
    paths = job.paths if executor != "debug" else None
    return {"job_id": str(job.job_id), "executor": executor, "level": level, "host": socket.gethostname(),
            "submitter_pid": os.getpid(), "submitted": time.time(), "stdout": str(paths.stdout) if paths else None,
            "stderr": str(paths.stderr) if paths else None,
            "result": str(paths.result_pickle) if paths else None}


KILLED = "the job ended without a result: killed (kill -9, out of memory, a node failure) or out of requeues"
RESUBMIT = "submit again: training resumes from its last checkpoint"


def job_outcome(job) -> dict:
    try:
        job.result()
        return {"outcome": "done"}
    except FailedJobError as err:  # the call raised: its traceback
        return {"outcome": "failed", "error": error_text(err)}
    except UncompletedJobError as err:  # killed (SIGKILL, out of memory) or out of requeues: no result
        return {"outcome": "interrupted", "error": f"{KILLED}; {RESUBMIT}\n{tail(str(err), ERROR_LINES - 1)}"}
    except Exception as err:  # noqa: BLE001 - the job's own error, reported by status
        return {"outcome": "failed", "error": error_text(err)}


def error_text(err: BaseException) -> str:
    text = "".join(traceback.format_exception(err)) if not str(err).strip() else str(err)
    return tail(text if "Error" in text else f"{type(err).__name__}: {text}")


def tail(text: str, n: int = ERROR_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed but not yet reaped by its new parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux): the signal said enough
        return True
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def attempt_state(attempt: dict) -> tuple[State | None, str | None]:
    """What the latest job of a run says: running / queued / failed / unstarted (with its error), or None."""
    outcome = attempt.get("outcome")
    if outcome in ("failed", "interrupted"):
        return "failed", attempt.get("error")
    if outcome:
        return None, None
    here = attempt.get("host") == socket.gethostname()
    submitter = attempt.get("submitter_pid")
    submitter_alive = here and submitter is not None and _pid_alive(int(submitter))
    if not attempt.get("job_id"):  # planned by a submit that never handed it to an executor
        if not here:
            return None, None
        if submitter_alive:
            return "queued", None
        return "unstarted", f"its `sweep submit` (pid {submitter}) ended before starting this job; submit again"
    if attempt.get("executor") == "debug":  # ran inside its submit's process, which records how it ended
        if not here:
            return None, None
        if submitter_alive:
            return "running", None
        return "failed", f"killed while it ran inside its `sweep submit` (pid {submitter}); {RESUBMIT}"
    result = Path(attempt["result"]) if attempt.get("result") else None
    if result is not None and result.is_file():
        kind, value = submitit.core.utils.pickle_load(result)
        return ("failed", tail(str(value))) if kind == "error" else (None, None)
    if attempt.get("executor") == "local" and here:
        if _pid_alive(int(attempt["job_id"])):
            return "running", None
        return "failed", f"{KILLED} (job pid {attempt['job_id']}); {RESUBMIT}" + _log_tail(attempt)
    if attempt.get("executor") == "slurm":
        return _slurm_state(attempt)
    return None, None


def _log_tail(attempt: dict) -> str:
    log = Path(attempt["stderr"]) if attempt.get("stderr") else None
    text = tail(log.read_text(errors="replace"), ERROR_LINES - 1) if log is not None and log.is_file() else ""
    return f"\n{text}" if text else ""


def _slurm_state(attempt: dict) -> tuple[State | None, str | None]:
    try:
        job = submitit.SlurmJob(Path(attempt["stderr"]).parent, attempt["job_id"])
        state = job.state.upper()
    except Exception:  # noqa: BLE001 - no sacct here: the runs root alone says what it can
        return None, None
    if state in _SLURM_QUEUED or state in ("RUNNING", "COMPLETING"):
        return ("queued" if state in _SLURM_QUEUED else "running"), None
    if state.split()[0] in _SLURM_FAILED:
        return "failed", f"SLURM state {state}" + _log_tail(attempt)
    return None, None


_SLURM_QUEUED = ("PENDING", "REQUEUED", "CONFIGURING", "RESIZING", "SUSPENDED")


_SLURM_FAILED = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "BOOT_FAIL", "DEADLINE")
