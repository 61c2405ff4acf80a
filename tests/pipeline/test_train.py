"""Fine-tuning: resume after a kill gives the same weights; finished runs are reused; one seed rules."""
from __future__ import annotations

from dataclasses import replace

import torch

from shortcut_nb.config import TrainSettings, seed_everything
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model
from shortcut_nb.pipeline.train import FINAL, LAST, fine_tune, predict

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
