"""Sweeps through submitit: planning from run specs, local jobs (real subprocesses), kill and resume,
failures in status (a kill -9'd job, a kill -9'd submit's jobs never started), and the sbatch script SLURM would
get (rendered and submitted to a fake sbatch)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cloudpickle
import pytest
import torch

from submitit.helpers import Checkpointable

from shortcut_nb.artifacts import read_json, weights_hash
from shortcut_nb.pipeline import sweep
from shortcut_nb.pipeline.sweep import jobs as sweep_jobs
from shortcut_nb.pipeline.runs import build_for, run_dir, run_spec, train_or_load
from shortcut_nb.pipeline.train import FINAL, LAST, fine_tune
from shortcut_nb.pipeline.runs import get_split
from support.processes import alive, descendants, end, wait_for, wait_gone

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the kill hook below travels into the job by value


def smoke(seed: int, *, epochs: int = 1, **kw):
    return run_spec("smoke", "waterbirds", seed=seed, epochs=epochs, **kw)


def standin(seed: int, *, epochs: int = 1):
    """A smoke run from a (tiny) stand-in pretraining: a fine-tuning with a dependency."""
    spec = smoke(seed, epochs=epochs, init="standin", pretrain_epochs=1)
    return replace(spec, pretrain=replace(spec.pretrain, n_images=96, batch_size=32))


class KillAfterFirstEpoch:
    """Run in each job before training: SIGKILL the job of run folder ``target`` right after its epoch 1 ``last.pt``."""

    def __init__(self, target: str):
        self.target = target

    def __call__(self) -> None:
        from shortcut_nb.pipeline import train

        save, target = train.atomic_torch_save, self.target

        def save_then_die(obj, path):
            out = save(obj, path)
            if Path(path).parent.name == target and Path(path).name == train.LAST and obj.get("epoch") == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        train.atomic_torch_save = save_then_die


def test_plan_expands_dependencies_and_reads_states(tmp_path):
    specs = [standin(0, epochs=2), standin(1, epochs=2), standin(0, epochs=2)]  # one asked twice
    planned = sweep.plan_runs(specs, root=tmp_path)
    assert [r.kind for r in planned] == ["pretrain", "finetune", "finetune"]
    pre, *tunes = planned
    assert all(t.dependencies == (pre.key,) for t in tunes) and pre.key.startswith("pretrained/")
    assert tunes[0].key == run_dir(specs[0], root=tmp_path).relative_to(tmp_path).as_posix()
    assert {r.state for r in planned} == {"missing"}

    # a fine-tuning stopped after one of its two epochs is partial at epoch 1, its pretraining done
    model = build_for(specs[1], root=tmp_path, progress_bar=False)
    fine_tune(model, get_split(specs[1].data, "train", root=tmp_path), settings=specs[1].train, seed=1,
              checkpoint_dir=run_dir(specs[1], root=tmp_path), stop_after_epochs=1, progress_bar=False)
    planned = sweep.plan_runs(specs, root=tmp_path)
    assert [(r.state, r.epoch) for r in planned] == [("done", 1), ("missing", 0), ("partial", 1)]
    assert planned[2].describe() == "partial at epoch 1/2"
    text = sweep.format_plan(planned)
    assert "pretrain     1 runs (1 done); to train: 0 epochs, 0 images" in text
    assert f"finetune     2 runs (1 missing, 1 partial); to train: 3 epochs, {3 * specs[0].data.n_train:,} images" in text
    assert f"[partial at epoch 1/2] finetune {planned[2].key}  <- {planned[0].key}" in text

    # a job requeues itself as the same call (training resumes from last.pt)
    job = sweep.RunJob(planned[2], tmp_path)
    again = job.checkpoint()
    assert again.function is job and again.args == () and isinstance(job, Checkpointable)
    with pytest.raises(TypeError, match="RunSpec"):
        sweep.plan_runs(["not a spec"], root=tmp_path)


def test_a_distilled_pretraining_comes_a_level_after_its_teacher(tmp_path):
    spec = standin(0)
    teacher = replace(spec.pretrain, arch="resnet_mini")
    student = replace(spec, pretrain=replace(spec.pretrain, arch="vit_mini", teacher=teacher))
    planned = sweep.expand([student, standin(1)], root=tmp_path)
    by_arch = {r.spec.arch: r for r in planned if r.kind == "pretrain"}
    assert by_arch["vit_mini"].dependencies == (by_arch["resnet_mini"].key,)
    assert [(r.kind, r.level) for r in planned] == [("pretrain", 0), ("pretrain", 1), ("finetune", 1), ("finetune", 2)]
    assert planned[2].spec.pretrain.arch == "resnet_mini" and planned[3].spec.pretrain.arch == "vit_mini"


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """One local sweep (real subprocesses, all at once): a smoke run, one that raises (its data folder does not
    exist) and one SIGKILLed after its first of three epochs."""
    root = tmp_path_factory.mktemp("sweep_runs")
    good, killed = smoke(0, epochs=2), smoke(2, epochs=3)
    bad = smoke(5, folder=str(root / "no-such-folder"))
    planned = sweep.plan_runs([good, bad, killed], root=root)
    sub = sweep.submit(planned, root=root, name="t", executor="local", max_parallel=3, poll_s=0.2,
                       before=KillAfterFirstEpoch(run_dir(killed, root=root).name))
    return root, good, bad, killed, sub


def test_local_sweep_finishes_and_the_notebook_loads_the_same_weights(local_sweep, tmp_path):
    root, good, _, _, sub = local_sweep
    assert len(sub.jobs) == 3 and "submitted 3 finetune" in sub.describe()
    key = run_dir(good, root=root).relative_to(root).as_posix()
    # three jobs at once share this machine's cores instead of each taking all of them
    assert sub.jobs[key].result()["threads"] == max(1, (os.cpu_count() or 1) // 3)
    loaded, info = train_or_load(good, root=root, progress_bar=False)
    assert info["trained_now"] is False and len(info["history"]) == 2
    trained, info_here = train_or_load(good, root=tmp_path, progress_bar=False)  # same seeds, in this process
    assert info_here["trained_now"] is True
    assert weights_hash(loaded) == weights_hash(trained)
    (again,) = sweep.plan_runs([good], root=root)
    assert again.state == "done"
    assert sweep.submit([again], root=root, name="t", executor="local").jobs == {}  # nothing left to submit


def test_a_job_that_raises_is_failed_with_its_log_and_the_others_finish(local_sweep):
    root, good, bad, killed, _ = local_sweep
    st = sweep.status([good, bad, killed], root=root, name="t")
    assert [r.state for r in st.runs] == ["done", "failed", "failed"]  # the killed job too (next test)
    failure = st.runs[1]
    assert failure.key == run_dir(bad, root=root).relative_to(root).as_posix()
    assert Path(failure.log).is_file() and "no-such-folder" in Path(failure.log).read_text()
    assert "no-such-folder" in failure.error
    text = sweep.format_status(st)
    assert text.startswith("sweep 't': 1 done, 0 running, 0 queued, 0 partial, 2 failed, 0 missing")
    assert f"FAILED finetune {failure.key}\n  log: {failure.log}" in text
    assert st.stalled == st.failures  # what `sweep status` exits non-zero for


def test_a_killed_job_resumes_from_its_checkpoint_with_the_same_weights(local_sweep, tmp_path):
    root, _, _, killed, _ = local_sweep
    out = run_dir(killed, root=root)
    assert (out / LAST).is_file() and not (out / FINAL).is_file()
    st = sweep.status([killed], root=root, name="t")
    (run,) = st.runs
    # kill -9'd: failed (not partial, not running: the SIGKILL freed its lock), with its error and log
    assert (run.state, run.epoch) == ("failed", 1) and run in st.stalled
    assert "killed (kill -9" in run.error and Path(run.log).is_file()
    assert (f"FAILED finetune {run.key} (its checkpoint at epoch 1/3 stays: a new submit resumes it)\n"
            f"  log: {run.log}\n    the job ended without a result: killed (kill -9") in sweep.format_status(st)
    first_epoch = torch.load(out / LAST, weights_only=True)["history"][0]

    # submitted again (in this process: the same job call a requeued SLURM job makes)
    sweep.submit(sweep.plan_runs([killed], root=root), root=root, name="t", executor="debug")
    (run,) = sweep.status([killed], root=root, name="t").runs
    assert run.state == "done"
    resumed, info = train_or_load(killed, root=root, progress_bar=False)
    assert info["trained_now"] is False
    assert info["history"][0] == first_epoch  # epoch 1 came from the killed job's checkpoint
    uninterrupted, _ = train_or_load(killed, root=tmp_path, progress_bar=False)
    assert weights_hash(resumed) == weights_hash(uninterrupted)


class FakeJob:
    def __init__(self, log, name):
        self.log, self.name, self.polls = log, name, 0

    def done(self):
        self.polls += 1
        return self.polls > 2


class FakeExecutor:
    """Records how many jobs run at once (a job is done on its third poll)."""

    def __init__(self):
        self.jobs, self.most = [], 0

    def submit(self, call):
        self.jobs.append(FakeJob(self, call.run.key))
        self.most = max(self.most, sum(not j.polls > 2 for j in self.jobs))
        return self.jobs[-1]


def test_local_runs_keep_at_most_max_parallel_at_once(monkeypatch):
    monkeypatch.setattr(sweep_jobs, "job_outcome", lambda job: {"outcome": "done"})
    calls = [sweep.RunJob(sweep.PlannedRun(kind="finetune", key=f"k{i}", spec=None), "/nowhere") for i in range(5)]
    ex = FakeExecutor()
    jobs, outcomes = sweep_jobs._run_here(ex, calls, 2, poll_s=0)
    assert ex.most == 2 and [j.name for j in jobs] == [f"k{i}" for i in range(5)]
    assert all(j.polls > 2 for j in jobs) and outcomes == {f"k{i}": {"outcome": "done"} for i in range(5)}


FAKE_SBATCH = """#!/bin/sh
n=$(cat "{counter}" 2>/dev/null || echo 1000); n=$((n + 1)); echo $n > "{counter}"
echo "Submitted batch job $n"
"""


def test_slurm_submission_renders_the_options(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, text in {"sbatch": FAKE_SBATCH.format(counter=tmp_path / "jobs"), "srun": "#!/bin/sh\nexit 1\n"}.items():
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod((bin_dir / tool).stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = sweep.SlurmOptions(partition="gpu-long", gpus_per_node=2, cpus_per_task=6, mem_gb=24, timeout_min=90,
                                 account="shortcuts", additional=("--qos=high", "#SBATCH --constraint=a100", "--exclusive"),
                                 setup=("module load cuda",))
    root = tmp_path / "runs"
    planned = sweep.plan_runs([standin(s) for s in range(3)], root=root)
    sub = sweep.submit(planned, root=root, name="c", executor="slurm", max_parallel=2, slurm=options)
    assert [sub.jobs[r.key].job_id for r in planned] == ["1001", "1002_0", "1002_1", "1002_2"]

    folder = sub.folder / "logs" / "%j"
    pre_script = (sub.folder / "logs" / "1001" / "1001_submission.sh").read_text()
    array_script = (sub.folder / "logs" / "1002" / "1002_submission.sh").read_text()
    assert pre_script == sweep.sbatch_script(options, folder=folder, n_jobs=1, job_name="c-pretrain", max_parallel=2)
    assert array_script == sweep.sbatch_script(options, folder=folder, n_jobs=3, job_name="c-finetune", max_parallel=2,
                                               dependency="afterany:1001")
    for line in ("#SBATCH --partition=gpu-long", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=6",
                 "#SBATCH --mem=24GB", "#SBATCH --time=90", "#SBATCH --account=shortcuts", "#SBATCH --qos=high",
                 "#SBATCH --constraint=a100", "#SBATCH --exclusive", "#SBATCH --array=0-2%2",
                 "#SBATCH --dependency=afterany:1001", "#SBATCH --job-name=c-finetune", "module load cuda",
                 "#SBATCH --signal=USR2@90"):
        assert line in array_script.splitlines(), line
    assert "--array" not in pre_script and "--dependency" not in pre_script
    assert sweep_jobs._job_threads("slurm", 2, options) == 6  # a SLURM job uses the CPUs it asked for
    # the jobs are queued, not run: the runs root still says missing (no sacct here to ask)
    assert {r.state for r in sweep.status(planned, root=root, name="c").runs} == {"missing"}
    with pytest.raises(ValueError, match="--name=value"):
        sweep.slurm_parameters(replace(options, additional=("qos=high",)), job_name="x")


HANGING_SUBMIT = """
import os, sys, time
from pathlib import Path
from shortcut_nb.pipeline import sweep
from shortcut_nb.pipeline.runs import run_spec

root, started = Path(sys.argv[1]), Path(sys.argv[2])

class SayPidAndHang:
    def __call__(self):  # in the job's process, before training
        Path(f"{started}.tmp").write_text(str(os.getpid()))
        os.replace(f"{started}.tmp", started)
        time.sleep(600)

specs = [run_spec("smoke", "waterbirds", seed=s, epochs=1) for s in (0, 1)]
sweep.submit(sweep.plan_runs(specs, root=root), root=root, name="k", executor="local", max_parallel=1, poll_s=0.1,
             before=SayPidAndHang())
"""


def test_a_killed_submit_and_its_killed_job_show_as_failed_and_not_started(tmp_path):
    """kill -9 of ``sweep submit`` while its first local job runs, then of that job (submitit's controller and its
    task): status says the job failed (killed, with its log), the second was never started, and asks for a submit."""
    root, started = tmp_path / "runs", tmp_path / "started"
    submitter = subprocess.Popen([sys.executable, "-c", HANGING_SUBMIT, str(root), str(started)])
    job: set[int] = set()
    try:
        task = int(wait_for(started, timeout=180).read_text())
        job = descendants(submitter.pid)
        assert task in job
        os.kill(submitter.pid, signal.SIGKILL)
        submitter.wait()
        assert all(alive(pid) for pid in job)  # a local job outlives its submit: it is killed on its own
        for pid in job:
            os.kill(pid, signal.SIGKILL)
        assert not wait_gone(job, timeout=10)
    finally:
        end(submitter, job)
    specs = [smoke(s) for s in (0, 1)]
    st = sweep.status(specs, root=root, name="k")
    killed, never = st.runs
    assert (killed.state, never.state) == ("failed", "unstarted") and st.stalled == st.runs
    job_id = read_json(root / "sweeps" / "k" / "sweep.json")["attempts"][killed.key]["job_id"]
    assert int(job_id) in job
    assert f"killed (kill -9, out of memory, a node failure) or out of requeues (job pid {job_id})" in killed.error
    assert Path(killed.log).is_file()
    assert never.error == f"its `sweep submit` (pid {submitter.pid}) ended before starting this job; submit again"
    text = sweep.format_status(st)
    assert text.startswith("sweep 'k': 0 done, 0 running, 0 queued, 0 partial, 1 failed, 0 missing, 1 not started")
    assert f"  not started: {never.key} ({never.error})" in text and f"FAILED finetune {killed.key}\n" in text
    assert "2 of 2 runs are neither done nor on their way" in text
