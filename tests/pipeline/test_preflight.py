"""Every data folder a notebook reads is checked before anything trains: one error lists every problem of every
folder as check-data prints it; the result is stored by content, so a rerun does not decode again and an edit does."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from shortcut_nb.data import DatasetFormatError
from shortcut_nb.data.check import check_folder, report
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline import preflight
from shortcut_nb.pipeline.context import Context


@pytest.fixture()
def folders(tmp_path, tiny_isic, tiny_waterbirds):
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(tiny_waterbirds, good)
    shutil.copytree(tiny_isic, bad)
    return good, bad


def _break(folder):
    """A test group missing (MwoP) and a row repeated: two problems only seen after training before."""
    meta = pd.read_csv(folder / "metadata.csv")
    meta = meta[~((meta["split"] == 2) & (meta["y"] == 1) & (meta["patch"] == 0))]
    meta = pd.concat([meta, meta.iloc[[0]]])
    meta.to_csv(folder / "metadata.csv", index=False)


def test_every_problem_of_every_folder_is_raised_before_training(folders, tmp_path, monkeypatch):
    good, bad = folders
    _break(bad)
    trained = []
    monkeypatch.setattr(context_module, "train_or_load", lambda *a, **k: trained.append(a))
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"birds": good, "skin": bad}, progress=False)
    with pytest.raises(DatasetFormatError) as caught:
        ctx.datasets()
    text = str(caught.value)
    assert "dataset 'skin'" in text and "dataset 'birds'" not in text
    assert report(bad, check_folder(bad)) in text  # what check-data prints, word for word
    assert f"{bad / 'metadata.csv'}: group MwoP (g = 2) has no test image" in text
    assert "repeats line 2 (the same row twice" in text
    assert trained == []


def test_a_rerun_reuses_the_stored_check_and_an_edit_checks_again(folders, tmp_path, monkeypatch):
    good, _ = folders
    calls = []
    real = preflight.check_folder
    monkeypatch.setattr(preflight, "check_folder", lambda folder: calls.append(folder) or real(folder))
    for _ in range(2):  # two notebooks on one runs root
        ctx = Context.build("smoke", root=tmp_path / "runs", folders={"birds": good}, progress=False)
        assert ctx.datasets() == ("birds",) and ctx.datasets(["birds"]) == ("birds",)
    assert len(calls) == 1
    meta = pd.read_csv(good / "metadata.csv")
    image = good / meta.loc[int(np.flatnonzero(meta["split"] == 2)[0]), "img_filename"]
    shutil.copy(good / meta.loc[0, "img_filename"], image)  # a training image copied over a test image
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"birds": good}, progress=False)
    with pytest.raises(DatasetFormatError, match="in another split \\(leakage: test and train share an image\\)"):
        ctx.datasets()
    assert len(calls) == 2


def test_s_score_notebooks_need_masks_in_training(folders, tmp_path):
    """Rows with masks only outside the training split: check-data alone accepts the folder (masks are optional),
    an s-score notebook refuses it before training, naming the file."""
    _, bad = folders
    meta = pd.read_csv(bad / "metadata.csv")
    meta.loc[meta["split"] == 0, "mask_filename"] = np.nan
    meta.to_csv(bad / "metadata.csv", index=False)
    assert check_folder(bad) == []
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"skin": bad}, progress=False)
    assert ctx.datasets() == ("skin",)
    with pytest.raises(DatasetFormatError, match=f"{bad / 'metadata.csv'}: no training row has a mask_filename"):
        ctx.datasets(needs_masks=True)


def test_a_missing_folder_is_named_before_anything_trains(folders, tmp_path):
    good, _ = folders
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"waterbirds": good, "isic": tmp_path / "nowhere"},
                        progress=False)
    with pytest.raises(DatasetFormatError, match=f"dataset 'isic': {tmp_path / 'nowhere'}: 1 problem"):
        ctx.datasets()
