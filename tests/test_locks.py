"""The lock per run: held across processes, released however its holder ends, and the train-or-load under it
trains a run once when two processes ask for it at the same time; whoever takes a lock next removes the temp files
of writers killed under it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from shortcut_nb.artifacts import TEMP_MARK
from shortcut_nb.data import WaterbirdsLikeSettings, ensure_synthetic
from shortcut_nb.pipeline import runs
from shortcut_nb.locks import LockTimeout, artifact_lock, file_lock, is_locked, lock_holder, run_lock_path
from shortcut_nb.pipeline.runs import run_dir, run_spec, train_or_load
from support.processes import wait_for


def test_lock_holder_reentry_and_release_on_exception(tmp_path):
    path = tmp_path / "run" / "run.lock"
    assert lock_holder(path) is None and not is_locked(path)
    with pytest.raises(RuntimeError, match="inside"):
        with file_lock(path):
            holder = lock_holder(path)
            assert holder["pid"] == os.getpid() and holder["host"] and holder["since"] <= time.time()
            with file_lock(path):  # the same thread may ask again
                assert is_locked(path)
            assert is_locked(path)  # still held by the outer block
            raise RuntimeError("inside")
    assert not is_locked(path) and lock_holder(path) is None
    with file_lock(path, timeout=0):  # free: taken at once
        pass


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
sys.stdin.read()
"""


def test_another_process_waits_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    path, held = tmp_path / "run.lock", tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(held)], stdin=subprocess.PIPE)
    try:
        wait_for(held)
        assert is_locked(path)
        tic = time.monotonic()
        with pytest.raises(LockTimeout):
            with file_lock(path, timeout=0.3, poll_s=0.05):
                pass
        assert time.monotonic() - tic >= 0.3
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with file_lock(path, timeout=5):  # the kernel released it with its holder
            assert lock_holder(path)["pid"] == os.getpid()
    finally:
        holder.kill()
        holder.wait()


def test_train_or_load_releases_the_lock_when_training_raises(tmp_path, monkeypatch):
    spec = run_spec("smoke", "waterbirds", seed=0)

    def broken(*args, **kwargs):
        assert is_locked(run_lock_path(run_dir(spec, root=tmp_path)))  # training runs under the run's lock
        raise RuntimeError("out of memory")

    monkeypatch.setattr(runs, "fine_tune", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_or_load(spec, root=tmp_path, progress_bar=False)
    assert not is_locked(run_lock_path(run_dir(spec, root=tmp_path)))


REQUEST = """
import json, os, sys, time
from pathlib import Path
from shortcut_nb.pipeline import runs

root, counter, ready, go = sys.argv[1:5]
real = runs.fine_tune

def counting(model, train_set, **kwargs):
    if not (Path(kwargs["checkpoint_dir"]) / "final.pt").is_file():  # a training, not a load
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
    return real(model, train_set, **kwargs)

runs.fine_tune = counting
spec = runs.run_spec("smoke", "waterbirds", seed=3, epochs=2)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
asked = time.time()
_, info = runs.train_or_load(spec, root=root, progress_bar=False)
print(json.dumps({"trained_now": info["trained_now"], "asked": asked, "got": time.time()}))
"""


def test_two_processes_asking_for_one_run_train_it_once(tmp_path):
    root, counter, go = tmp_path / "runs", tmp_path / "trainings", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", REQUEST, str(root), str(counter), str(tmp_path / f"ready{i}"), str(go)],
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    for i in range(2):
        wait_for(tmp_path / f"ready{i}")
    go.touch()  # both ask at once
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len(counter.read_text().split()) == 1  # fine_tune trained once
    trainer, loader = sorted(results, key=lambda r: not r["trained_now"])
    assert (trainer["trained_now"], loader["trained_now"]) == (True, False)
    assert loader["asked"] < trainer["got"] <= loader["got"]  # it asked while the run trained, and waited
    _, info = train_or_load(run_spec("smoke", "waterbirds", seed=3, epochs=2), root=root, progress_bar=False)
    assert info["trained_now"] is False and len(info["history"]) == 2


# Three writers, each forked and SIGKILLed half way through its write (the parent reports their pids): a run's
# last.pt inside train_or_load, a stand-in pretraining's per-epoch checkpoint, a synthetic dataset folder.
KILLED_WRITERS = """
import json, os, signal, sys
from pathlib import Path
import torch
from shortcut_nb.data import WaterbirdsLikeSettings, ensure_synthetic, synthetic
from shortcut_nb.locks import artifact_lock
from shortcut_nb.pipeline import pretrain, runs

root = Path(sys.argv[1])

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def die_half_way(obj, handle):
    handle.write(b"PK" * 100_000)
    handle.flush()
    die()

def write_last_pt():
    real = torch.save
    torch.save = lambda obj, handle: die_half_way(obj, handle) if "last.pt" in handle.name else real(obj, handle)
    runs.train_or_load(runs.run_spec("smoke", "waterbirds", seed=0, epochs=1), root=root, progress_bar=False)

def write_partial_pretraining():
    weights = root / "pretrained" / "resnet_mini-32px-0123456789ab.pth"
    torch.save = die_half_way
    with artifact_lock(weights):
        pretrain.atomic_torch_save({"epoch": 1}, pretrain.partial_path(weights))

def write_data_folder():
    synthetic._finish = die  # the images are written, metadata.csv not yet
    ensure_synthetic("waterbirds", WaterbirdsLikeSettings(image_size=16, n_train=8, n_val=4, n_test=4), root=root)

pids = []
for write in (write_last_pt, write_partial_pretraining, write_data_folder):
    pid = os.fork()
    if pid == 0:
        write()
        os._exit(0)  # not reached: the writer is killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    pids.append(pid)
print(json.dumps(pids))
"""


def test_temps_of_killed_writers_are_removed_by_the_next_holder_of_their_lock(tmp_path):
    root = tmp_path / "runs"
    child = subprocess.run([sys.executable, "-c", KILLED_WRITERS, str(root)], capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == 0, child.stderr
    pids = json.loads(child.stdout.strip().splitlines()[-1])
    spec = run_spec("smoke", "waterbirds", seed=0, epochs=1)
    weights = root / "pretrained" / "resnet_mini-32px-0123456789ab.pth"
    settings = WaterbirdsLikeSettings(image_size=16, n_train=8, n_val=4, n_test=4)
    killed = {"run": run_dir(spec, root=root) / f".last.pt{TEMP_MARK}{pids[0]}",
              "pretraining": weights.with_name(f".{weights.name}.partial.pt{TEMP_MARK}{pids[1]}")}
    (data_temp,) = (root / "data").glob(f".waterbirds_like-*{TEMP_MARK}{pids[2]}")
    assert all(path.is_file() and path.stat().st_size > 0 for path in killed.values()) and data_temp.is_dir()
    another_artifact = weights.with_name(f".resnet_mini-32px-ffffffffffff.pth{TEMP_MARK}{pids[1]}")
    another_artifact.write_bytes(b"not this lock's")

    _, info = train_or_load(spec, root=root, progress_bar=False)  # took the run's lock: trains, and tidies
    assert info["trained_now"] and not killed["run"].exists()
    with artifact_lock(weights):
        assert not killed["pretraining"].exists()
    assert another_artifact.exists()  # another artifact's temp is another lock's business
    folder = ensure_synthetic("waterbirds", settings, root=root)
    assert (folder / "metadata.csv").is_file() and not data_temp.exists()
    assert not [p for p in root.rglob(f"*{TEMP_MARK}*") if p != another_artifact]
