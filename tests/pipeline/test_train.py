"""Fine-tuning: resume after a kill gives the same weights (a real kill -9 at a random moment too); finished runs are
reused; one seed rules."""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from shortcut_nb.artifacts import TEMP_MARK, load_checkpoint, weights_hash
from shortcut_nb.config import TrainSettings, seed_everything
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model
from shortcut_nb.pipeline.runs import run_dir, run_spec, train_or_load
from shortcut_nb.pipeline.train import FINAL, LAST, fine_tune, predict
from support.processes import wait_for

SETTINGS = TrainSettings(epochs=3, lr=0.05, batch_size=16)


def _fresh_model():
    seed_everything(7)
    return build_model("resnet_mini", image_size=16)


def test_resume_equals_uninterrupted(tiny_waterbirds, tmp_path):
    train = load_dataset(tiny_waterbirds, split="train", image_size=16, cache=True)
    straight = _fresh_model()
    fine_tune(straight, train, settings=SETTINGS, seed=1, checkpoint_dir=tmp_path / "a", progress_bar=False)

    killed = _fresh_model()
    partial = fine_tune(killed, train, settings=SETTINGS, seed=1, checkpoint_dir=tmp_path / "b", stop_after_epochs=1, progress_bar=False)
    assert not partial["finished"] and (tmp_path / "b" / LAST).is_file() and not (tmp_path / "b" / FINAL).exists()
    resumed = _fresh_model()  # a new process: fresh init, then the checkpoint
    result = fine_tune(resumed, train, settings=SETTINGS, seed=1, checkpoint_dir=tmp_path / "b", progress_bar=False)
    assert result["resumed_from"] == 1 and result["finished"]
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in result["history"]] == [h["loss"] for h in
                                                       torch.load(tmp_path / "a" / FINAL, weights_only=True)["history"]]


def test_finished_run_is_loaded_not_retrained(tiny_waterbirds, tmp_path):
    train = load_dataset(tiny_waterbirds, split="train", image_size=16, cache=True)
    first = _fresh_model()
    fine_tune(first, train, settings=replace(SETTINGS, epochs=1), seed=0, checkpoint_dir=tmp_path, progress_bar=False)
    again = _fresh_model()
    out = fine_tune(again, train, settings=replace(SETTINGS, epochs=1), seed=0, checkpoint_dir=tmp_path, progress_bar=False)
    assert out.get("loaded")
    x = torch.stack([train[i]["image"] for i in range(4)])
    assert torch.equal(first.eval()(x), again.eval()(x))


def test_seed_controls_data_order(tiny_waterbirds):
    train = load_dataset(tiny_waterbirds, split="train", image_size=16, cache=True)
    one = replace(SETTINGS, epochs=1)
    a, b, c = _fresh_model(), _fresh_model(), _fresh_model()
    fine_tune(a, train, settings=one, seed=0, progress_bar=False)
    fine_tune(b, train, settings=one, seed=0, progress_bar=False)
    fine_tune(c, train, settings=one, seed=1, progress_bar=False)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_predict_returns_groups(tiny_waterbirds):
    test = load_dataset(tiny_waterbirds, split="test", image_size=16)
    out = predict(_fresh_model(), test, batch_size=5)
    assert out["pred"].shape == (len(test),) and out["logits"].shape == (len(test), 2)
    assert sorted(set(out["g"].tolist())) == [0, 1, 2, 3]
    assert (out["g"] == 2 * out["y"] + out["a"]).all()


TRAIN_UNTIL_KILLED = """
import sys
from pathlib import Path
import torch
from shortcut_nb.pipeline import runs

torch.set_num_threads(1)  # as this test process: equal thread counts, equal sums
root, training = Path(sys.argv[1]), Path(sys.argv[2])
spec = runs.run_spec("smoke", "waterbirds", seed=2, epochs=3)
runs.get_split(spec.data, "train", root=root)  # the data is ready: what follows is the training
training.touch()
runs.train_or_load(spec, root=root, progress_bar=False)
"""


def _outcome(model, info) -> tuple:
    return weights_hash(model), [(h["epoch"], h["loss"], h["train_acc"]) for h in info["history"]]


def test_a_run_killed_at_a_random_moment_and_rerun_ends_bit_identical(tmp_path):
    """kill -9 of a training run at a random moment (during an epoch, a checkpoint write, between epochs), then the
    same train_or_load again: the same final weights and per-epoch numbers as a run never disturbed."""
    spec = run_spec("smoke", "waterbirds", seed=2, epochs=3)
    clean_model, clean = train_or_load(spec, root=tmp_path / "clean", progress_bar=False)
    seed = random.randrange(2**32)
    delay = random.Random(seed).uniform(0.0, 0.8) * clean["seconds"]
    root = tmp_path / "killed"
    out = run_dir(spec, root=root)
    for attempt in range(3):  # should this machine train faster than it did a moment ago: a shorter delay
        child = subprocess.Popen([sys.executable, "-c", TRAIN_UNTIL_KILLED, str(root), str(tmp_path / "training")])
        try:
            wait_for(tmp_path / "training", timeout=180)
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            child.kill()
            child.wait()
        if child.returncode == -signal.SIGKILL and not (out / FINAL).exists():
            break
        shutil.rmtree(root)
        (tmp_path / "training").unlink()
        delay /= 2
    else:
        pytest.fail(f"the training always ended before its kill (random seed {seed})")
    killed_at = load_checkpoint(out / LAST)["epoch"] if (out / LAST).is_file() else 0
    model, info = train_or_load(spec, root=root, progress_bar=False)
    assert info["trained_now"]
    assert _outcome(model, info) == _outcome(clean_model, clean), \
        f"killed {delay:.2f} s into training (after epoch {killed_at}; random seed {seed}): not the clean run's numbers"
    assert not [p for p in out.iterdir() if TEMP_MARK in p.name]  # a killed writer's temp went with the rerun
