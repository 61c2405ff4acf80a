"""A toy :class:`LatentSource` over the tiny synthetic datasets and two untrained mini models."""
from __future__ import annotations

import pytest

from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model
from shortcut_nb.sections.latent_space.study import LatentSource


@pytest.fixture()
def toy_source(tiny_waterbirds, tiny_isic, tmp_path):
    folders = {"waterbirds": tiny_waterbirds, "isic": tiny_isic}
    calls = {"model": 0, "split": 0}
    models = {arch: build_model(name, image_size=16).eval() for arch, name in (("cnn", "resnet_mini"), ("vit", "vit_mini"))}

    def get_model(dataset, arch):
        calls["model"] += 1
        return models[arch]

    def get_split(dataset, split):
        calls["split"] += 1
        return load_dataset(folders[dataset], split=split, image_size=16)

    source = LatentSource(get_model, get_split, cache_dir=tmp_path / "features", progress_bar=False)
    source.calls, source.get_model, source.get_split = calls, get_model, get_split
    return source
