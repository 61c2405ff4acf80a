"""Device-resident batches (decoded pixels on the training device) train exactly as the loader does."""
from __future__ import annotations

import pytest
import torch

from shortcut_nb.config import TrainSettings, seed_everything
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model
from shortcut_nb.pipeline.train import fine_tune


def _train(split, *, resident: bool) -> dict[str, torch.Tensor]:
    seed_everything(0)
    model = build_model("resnet_mini", image_size=16)
    settings = TrainSettings(epochs=2, lr=1e-2, batch_size=12)
    result = fine_tune(model, split, settings=settings, seed=3, progress_bar=False, device=torch.device("cpu"),
                       resident=resident)
    assert result["finished"]
    return model.state_dict()


def test_resident_batches_give_the_loaders_weights_bit_for_bit(tiny_waterbirds, tmp_path):
    split = load_dataset(tiny_waterbirds, split="train", image_size=16, decoded_dir=tmp_path / "decoded")
    loader, resident = _train(split, resident=False), _train(split, resident=True)
    for name in loader:
        assert torch.equal(loader[name], resident[name]), name


def test_resident_batches_need_decoded_pixels(tiny_waterbirds):
    split = load_dataset(tiny_waterbirds, split="train", image_size=16)
    with pytest.raises(ValueError, match="decoded_dir"):
        _train(split, resident=True)
