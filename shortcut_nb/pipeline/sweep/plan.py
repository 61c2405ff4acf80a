"""Planning a sweep: every run the notebooks ask for, with its dependencies and its state in the runs root.

:func:`plan_runs` expands the sections' run specs into their dependencies (a fine-tuning needs its stand-in
pretraining first, a mask its fine-tuning) and reads each one's state: done / partial at epoch k / missing from the checkpoints,
running from the run's lock, queued / failed from the sweep's job records (:mod:`.attempts`).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import torch

from ...config import runs_root
from ...locks import artifact_lock_path, lock_holder, run_lock_path
from ..mask_runs import MaskRun, mask_path
from ..pretrain import PretrainSettings, partial_path, pretrained_weights_path
from ..runs import RunSpec, run_dir
from ..train import FINAL, LAST
from .attempts import State, attempt_state, read_manifest, sweep_dir

Kind = Literal["pretrain", "finetune", "mask"]


#: The order of the kinds (a run's level is its depth in the dependency graph: a distilled pretraining comes one
#: level after its teacher's, a fine-tuning after its pretraining, a mask after its fine-tuning).
LEVELS: dict[str, int] = {"pretrain": 0, "finetune": 1, "mask": 2}




@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep and its state in the runs root.

    Attributes:
        kind: ``"pretrain"`` (stand-in backbone), ``"finetune"`` or ``"mask"``.
        key: its path under the runs root (unique; the name status prints).
        spec: what produces it (:class:`~.pretrain.PretrainSettings`, :class:`~.runs.RunSpec`,
            :class:`~..mask_runs.MaskRun`).
        dependencies: keys of the runs it needs first.
        level: its depth in the dependency graph (0: needs nothing); a sweep submits one level after another.
        state: done / partial (``epoch`` of ``epochs`` done) / missing / running (its lock is held: ``holder``)
            / queued (submitted, not started) / failed (``log``, ``error``; a killed job too) / unstarted (its
            ``sweep submit`` ended before starting it).
        log: the stderr log of its latest job, when it has one.
        error: the last lines of its latest job's error (failed), or why it never started (unstarted).
    """

    kind: Kind
    key: str
    spec: Any
    dependencies: tuple[str, ...] = ()
    level: int = 0
    state: State = "missing"
    epoch: int = 0
    epochs: int = 0
    holder: dict | None = None
    log: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.state == "partial":
            return f"partial at epoch {self.epoch}/{self.epochs}"
        if self.state == "running" and self.holder:
            return f"running on {self.holder.get('host')} (pid {self.holder.get('pid')})"
        if self.state == "unstarted":
            return "not started"
        return self.state


def _pretrain_run(settings: PretrainSettings, root: Path, deps: tuple[str, ...] = ()) -> PlannedRun:
    key = pretrained_weights_path(settings, root).relative_to(root).as_posix()
    return PlannedRun(kind="pretrain", key=key, spec=settings, dependencies=deps, epochs=settings.epochs)


def _finetune_run(spec: RunSpec, root: Path, deps: tuple[str, ...]) -> PlannedRun:
    key = run_dir(spec, root=root).relative_to(root).as_posix()
    return PlannedRun(kind="finetune", key=key, spec=spec, dependencies=deps, epochs=spec.train.epochs)


def _mask_run(run: MaskRun, root: Path, deps: tuple[str, ...]) -> PlannedRun:
    key = mask_path(root, run.spec, run.recipe).relative_to(root).as_posix()
    return PlannedRun(kind="mask", key=key, spec=run, dependencies=deps)


Plannable = RunSpec | PretrainSettings | MaskRun


def expand(specs: Iterable[Plannable | PlannedRun], *, root: str | os.PathLike | None = None) -> list[PlannedRun]:
    """The runs of ``specs`` and their dependencies, each once, by level (pretrainings first), without state."""
    root = runs_root(root)
    runs: dict[str, PlannedRun] = {}

    def add(run: PlannedRun) -> tuple[str, ...]:
        level = 1 + max(runs[d].level for d in run.dependencies) if run.dependencies else 0
        runs.setdefault(run.key, replace(run, level=level))
        return (run.key,)

    def pretraining(settings: PretrainSettings) -> tuple[str, ...]:
        deps = pretraining(settings.teacher) if settings.teacher is not None else ()
        return add(_pretrain_run(settings, root, deps))

    def finetune(spec: RunSpec) -> PlannedRun:
        deps: tuple[str, ...] = ()
        if spec.init == "standin":
            assert spec.pretrain is not None
            deps = pretraining(spec.pretrain)
        return _finetune_run(spec, root, deps)

    for spec in specs:
        spec = spec.spec if isinstance(spec, PlannedRun) else spec
        if isinstance(spec, PretrainSettings):
            pretraining(spec)
        elif isinstance(spec, RunSpec):
            add(finetune(spec))
        elif isinstance(spec, MaskRun):
            add(_mask_run(spec, root, add(finetune(spec.spec))))
        else:
            raise TypeError(f"a sweep plans RunSpec, PretrainSettings and MaskRun, got {type(spec).__name__}")
    return sorted(runs.values(), key=lambda r: r.level)  # stable: first appearance within a level


def plan_runs(specs: Iterable[Plannable | PlannedRun], *, root: str | os.PathLike | None = None,
              name: str | None = None) -> list[PlannedRun]:
    """:func:`expand` with each run's state read from the runs root (and from sweep ``name``'s jobs, if given)."""
    root = runs_root(root)
    attempts = read_manifest(sweep_dir(root, name)).get("attempts", {}) if name else {}
    return [_with_state(run, root, attempts.get(run.key)) for run in expand(specs, root=root)]


def _checkpoint_epoch(path: Path) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(state["epoch"])


def _with_state(run: PlannedRun, root: Path, attempt: dict | None) -> PlannedRun:
    path = root / run.key
    if run.kind == "pretrain":
        partial = partial_path(path)
        done, lock = path.is_file(), artifact_lock_path(path)
        epoch = _checkpoint_epoch(partial) if not done and partial.is_file() else 0
    elif run.kind == "mask":
        done, lock, epoch = path.is_file(), artifact_lock_path(path), 0
    else:
        done, lock = (path / FINAL).is_file(), run_lock_path(path)
        epoch = _checkpoint_epoch(path / LAST) if not done and (path / LAST).is_file() else 0
    log = attempt.get("stderr") if attempt else None
    if done:
        return replace(run, state="done", epoch=run.epochs, log=log)
    holder = lock_holder(lock)
    if holder is not None:
        return replace(run, state="running", holder=holder, epoch=epoch, log=log)
    job_state, error = attempt_state(attempt) if attempt else (None, None)
    if job_state is not None:
        return replace(run, state=job_state, epoch=epoch, log=log, error=error)
    return replace(run, state="partial" if epoch else "missing", epoch=epoch, log=log)


@dataclass
class SweepStatus:
    """The state of every run of a sweep (see :func:`status`)."""

    name: str
    folder: Path
    runs: list[PlannedRun]

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.state for r in self.runs))

    @property
    def failures(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.state == "failed"]

    @property
    def stalled(self) -> list[PlannedRun]:
        """Runs neither done nor on their way (failed, missing, partial, not started): a new submit's work."""
        return [r for r in self.runs if r.state not in ("done", "running", "queued")]


def status(specs: Iterable[Plannable | PlannedRun], *, root: str | os.PathLike | None = None,
           name: str = "sweep") -> SweepStatus:
    """done / partial / missing / running / queued / failed for every run of ``specs``, failures with log and error."""
    return SweepStatus(name=name, folder=sweep_dir(root, name), runs=plan_runs(specs, root=root, name=name))


def remaining_work(run: PlannedRun) -> tuple[int, int]:
    """What a run still has to do: (epochs left, or a mask's steps; images it goes through: a step's batch counts
    its images)."""
    if run.state == "done":
        return 0, 0
    if run.kind == "mask":
        return run.spec.recipe.steps, run.spec.recipe.steps * run.spec.recipe.batch_size
    per_epoch = run.spec.n_images if run.kind == "pretrain" else run.spec.data.n_train
    return run.epochs - run.epoch, (run.epochs - run.epoch) * per_epoch


def format_plan(planned: Sequence[PlannedRun], *, details: bool = True) -> str:
    """A plan as text: runs per kind and state, the epochs and images still to train, then one line per run."""
    lines = []
    for kind in LEVELS:
        runs = [r for r in planned if r.kind == kind]
        if not runs:
            continue
        states = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.state for r in runs).items()))
        work = [remaining_work(r) for r in runs]
        unit = "steps" if kind == "mask" else "epochs"
        lines.append(f"{kind:9s} {len(runs):4d} runs ({states}); to train: {sum(w[0] for w in work)} {unit}, "
                     f"{sum(w[1] for w in work):,} images")
    if details:
        lines.append("")
        for r in planned:
            deps = f"  <- {', '.join(r.dependencies)}" if r.dependencies else ""
            lines.append(f"[{r.describe()}] {r.kind} {r.key}{deps}")
    return "\n".join(lines)


def format_status(st: SweepStatus) -> str:
    """Counts per state, the runs on their way or stopped, then each failure with its log path and the last lines of
    its error; a closing line when some runs need a new submit."""
    counts = st.counts()
    lines = [f"sweep {st.name!r}: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in
                                                 ("done", "running", "queued", "partial", "failed", "missing"))
             + (f", {counts['unstarted']} not started" if counts.get("unstarted") else "")]
    for r in st.runs:
        if r.state in ("running", "partial", "queued", "unstarted"):
            lines.append(f"  {r.describe()}: {r.key}" + (f" ({r.error})" if r.state == "unstarted" else ""))
    for r in st.failures:
        resume = f" (its checkpoint at epoch {r.epoch}/{r.epochs} stays: a new submit resumes it)" if r.epoch else ""
        lines.append(f"\nFAILED {r.kind} {r.key}{resume}\n  log: {r.log}")
        lines.extend("    " + line for line in (r.error or "").splitlines())
    if st.stalled:
        lines.append(f"\n{len(st.stalled)} of {len(st.runs)} runs are neither done nor on their way (failed, missing, "
                     "partial or not started): run `sweep submit` again (same options) to train them")
    return "\n".join(lines)
