"""The jobs of a sweep, submitted through submitit: one job array per dependency level, requeued on timeout or preemption.

Jobs are :class:`RunJob` calls of the very functions the notebooks call (:func:`~..runs.train_or_load`,
:func:`~..pretrain.ensure_pretrained`, :func:`~..mask_runs.ensure_mask`); as :class:`~submitit.helpers.Checkpointable` s they are requeued by
submitit on a timeout or a preemption and training resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import submitit
import torch
from submitit.helpers import Checkpointable, DelayedSubmission

from ...artifacts import atomic_write_json
from ...config import get_device, runs_root
from ..mask_runs import ensure_mask
from ..pretrain import ensure_pretrained, pretrained_weights_path
from ..runs import train_or_load
from .attempts import attempt_record, error_text, job_outcome, planned_record, read_manifest, sweep_dir
from .plan import PlannedRun

Executor = Literal["slurm", "local", "debug"]


class RunJob(Checkpointable):
    """A picklable call that produces one planned run, in a job's process.

    Checkpointable: on a timeout or a preemption, submitit calls :meth:`checkpoint` and requeues the same
    call; training then resumes from ``last.pt``. ``before`` (picklable) runs first in the job's process;
    ``threads`` (when given) is the job's torch thread count, so that jobs sharing a machine do not oversubscribe it.
    """

    def __init__(self, run: PlannedRun, root: str | os.PathLike, before: Callable[[], Any] | None = None,
                 threads: int | None = None):
        self.run = replace(run, state="missing", holder=None, log=None, error=None)
        self.root = str(root)
        self.before = before
        self.threads = threads

    def __call__(self) -> dict:
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.before is not None:
            self.before()
        spec, root = self.run.spec, Path(self.root)
        if self.run.kind == "pretrain":
            existed = pretrained_weights_path(spec, root).is_file()
            ensure_pretrained(spec, root=root, progress_bar=False)
            return {"key": self.run.key, "trained_now": not existed, "host": socket.gethostname()}
        if self.run.kind == "finetune":
            _, info = train_or_load(spec, root=root, progress_bar=False)
            return {"key": self.run.key, "trained_now": info["trained_now"], "epochs": len(info["history"]),
                    "host": socket.gethostname(), "threads": torch.get_num_threads()}
        if self.run.kind == "mask":
            model, _ = train_or_load(spec.spec, root=root, progress_bar=False)  # done at the level before: loaded
            _, info = ensure_mask(spec, model, root=root)
            return {"key": self.run.key, "trained_now": not info["loaded"], "steps": info["steps"],
                    "host": socket.gethostname(), "threads": torch.get_num_threads()}
        raise ValueError(f"no job for runs of kind {self.run.kind!r}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Requeue the same call (training resumes from its last epoch checkpoint)."""
        return DelayedSubmission(self, *args, **kwargs)


@dataclass(frozen=True)
class SlurmOptions:
    """What each SLURM job asks for.

    Attributes:
        additional: extra ``#SBATCH`` lines (``"--qos=high"``, ``"#SBATCH --constraint=a100"``, ``"--exclusive"``).
        setup: shell lines run before each job (``module load cuda``, ``source .venv/bin/activate``).
        max_requeues: how many timeouts a job may requeue after (preemptions do not count).
    """

    partition: str | None = None
    gpus_per_node: int = 1
    cpus_per_task: int | None = 4
    mem_gb: float | None = None
    timeout_min: int = 240
    account: str | None = None
    additional: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    max_requeues: int = 3


def _sbatch_line(line: str) -> tuple[str, Any]:
    text = line.strip()
    text = text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text
    if not text.startswith("--"):
        raise ValueError(f"an extra sbatch line is '--name=value' or '--flag', got {line!r}")
    flag, _, value = text[2:].partition("=")
    return flag.strip(), value.strip() if value else True


def slurm_parameters(options: SlurmOptions, *, job_name: str, max_parallel: int | None = None,
                     dependency: str | None = None) -> dict[str, Any]:
    """The parameters a :class:`submitit.SlurmExecutor` is given (its own names; see ``_make_sbatch_string``)."""
    params = {"job_name": job_name, "time": int(options.timeout_min), "gpus_per_node": options.gpus_per_node,
              "partition": options.partition, "cpus_per_task": options.cpus_per_task, "account": options.account,
              "mem": submitit.slurm.slurm._convert_mem(options.mem_gb) if options.mem_gb else None,
              "array_parallelism": int(max_parallel) if max_parallel else None, "dependency": dependency,
              "setup": list(options.setup) or None,
              "additional_parameters": dict(_sbatch_line(line) for line in options.additional)}
    return {key: value for key, value in params.items() if value is not None}


def sbatch_script(options: SlurmOptions, *, folder: str | os.PathLike, n_jobs: int, job_name: str = "sweep",
                  max_parallel: int | None = None, dependency: str | None = None) -> str:
    """The sbatch script submitit writes for an array of ``n_jobs`` jobs with these options (nothing is submitted)."""
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return submitit.slurm.slurm._make_sbatch_string(
        command=command, folder=folder, map_count=n_jobs if n_jobs > 1 else None,
        **slurm_parameters(options, job_name=job_name, max_parallel=max_parallel, dependency=dependency))


@dataclass
class Submission:
    """What :func:`submit` submitted: the jobs (submitit ``Job`` s) by run key, and where they write."""

    name: str
    folder: Path
    executor: str
    runs: list[PlannedRun]
    jobs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        counts = Counter(r.kind for r in self.runs)
        what = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing (every run is done or running)"
        return (f"sweep {self.name!r} ({self.executor}): submitted {what}\n  logs: {self.folder / 'logs'}\n"
                f"  watch: python -m shortcut_nb sweep status --name {self.name}  (same --profile/--only)")


def submit(planned: Iterable[PlannedRun], *, root: str | os.PathLike | None = None, name: str = "sweep",
           executor: Executor = "slurm", max_parallel: int | None = None, slurm: SlurmOptions | None = None,
           timeout_min: int | None = None, before: Callable[[], Any] | None = None,
           poll_s: float = 0.5) -> Submission:
    """Submit the runs of ``planned`` that are not done or running, one job array per dependency level.

    ``slurm`` submits and returns (a level waits for the one before through ``afterany``); ``local`` (real
    subprocesses, at most ``max_parallel`` at once) and ``debug`` (in this process) run level after level and
    return when every job has ended. ``timeout_min`` is a local job's time limit (SLURM: ``slurm.timeout_min``).
    """
    root = runs_root(root)
    folder = sweep_dir(root, name)
    todo = [r for r in planned if r.state not in ("done", "running", "queued")]
    sub = Submission(name=name, folder=folder, executor=executor, runs=todo)
    manifest = read_manifest(folder)
    manifest.update(name=name, executor=executor, root=str(root))
    for run in todo:  # before any job starts: a submit killed half way leaves the others visible as not started
        manifest["attempts"][run.key] = planned_record(executor, run.level)
    if todo:
        atomic_write_json(folder / "sweep.json", manifest)

    def started(call: RunJob, job: Any) -> None:  # a job on this machine: recorded as it starts (its pid)
        manifest["attempts"][call.run.key] = attempt_record(job, executor, call.run.level)
        atomic_write_json(folder / "sweep.json", manifest)

    previous: list[Any] = []
    for level in sorted({r.level for r in todo}):
        runs = [r for r in todo if r.level == level]
        width = min(max_parallel or len(runs), len(runs))
        calls = [RunJob(r, root, before, threads=_job_threads(executor, width, slurm)) for r in runs]
        kind = runs[0].kind
        if executor == "slurm":
            options = slurm or SlurmOptions()
            ex = submitit.AutoExecutor(folder / "logs" / "%j", cluster="slurm", slurm_max_num_timeout=options.max_requeues)
            dependency = f"afterany:{previous[0].job_id.split('_')[0]}" if previous else None
            params = slurm_parameters(options, job_name=f"{name}-{kind}", max_parallel=max_parallel, dependency=dependency)
            ex.update_parameters(**{f"slurm_{k}": v for k, v in params.items()})
            with ex.batch():
                jobs = [ex.submit(call) for call in calls]
        else:
            ex = submitit.AutoExecutor(folder / "logs" / "%j", cluster=executor)
            gpus = 1 if get_device().type == "cuda" else 0
            ex.update_parameters(timeout_min=timeout_min or (slurm.timeout_min if slurm else 24 * 60), gpus_per_node=gpus)
            jobs, outcomes = _run_here(ex, calls, width, poll_s, started=started)
        for run, job in zip(runs, jobs):
            sub.jobs[run.key] = job
            manifest["attempts"][run.key] = {**attempt_record(job, executor, level),
                                             **(outcomes[run.key] if executor != "slurm" else {})}
        atomic_write_json(folder / "sweep.json", manifest)
        previous = jobs
    return sub


def _job_threads(executor: Executor, width: int, slurm: SlurmOptions | None) -> int | None:
    """Torch threads per job: a SLURM job's CPUs; on this machine its cores shared by the jobs running at once."""
    if executor == "slurm":
        return (slurm or SlurmOptions()).cpus_per_task
    if executor == "local":
        return max(1, (os.cpu_count() or 1) // max(1, width))
    return None  # debug: in this process, whose thread count is the caller's


def _run_here(ex, calls: Sequence[RunJob], width: int, poll_s: float,
              started: Callable[[RunJob, Any], None] | None = None) -> tuple[list[Any], dict[str, dict]]:
    """Run ``calls`` on this machine, at most ``width`` at once; their jobs and outcomes once all have ended.

    ``started(call, job)`` is told of each job as it starts (a debug job: before it runs, in this process).
    """
    jobs: list[Any] = []
    outcomes: dict[str, dict] = {}
    running: list[Any] = []
    for call in calls:
        while len(running) >= width:
            running = [j for j in running if not j.done()]
            if len(running) >= width:
                time.sleep(poll_s)
        job = ex.submit(call)
        jobs.append(job)
        if started is not None:
            started(call, job)
        if isinstance(job, submitit.DebugJob):  # runs here, now (its done() would rerun a failed call under pdb)
            error = job.exception()
            outcomes[call.run.key] = {"outcome": "done"} if error is None else {"outcome": "failed", "error": error_text(error)}
        else:
            running.append(job)
    while any(not j.done() for j in running):
        time.sleep(poll_s)
    for call, job in zip(calls, jobs):
        outcomes.setdefault(call.run.key, job_outcome(job))
    return jobs, outcomes
