"""A dataset's identity: any number of classes × attribute values, named by metadata.json, the paper's names for
its two datasets only, and a clear error for what does not fit."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from shortcut_nb.data import DatasetFormatError, load_dataset
from shortcut_nb.data.check import check_folder
from shortcut_nb.data.groups import GroupScheme, paper_scheme
from shortcut_nb.data.transforms import normalization
from support.user_data import CLASSES, COLOURS, write_user_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_user_folder(tmp_path_factory.mktemp("groups") / "mine", per_split=(18, 9, 9), size=16)


def test_three_classes_by_three_values_named_from_metadata_json(folder):
    test = load_dataset(folder, split="test", image_size=16)
    assert test.groups == GroupScheme(classes=CLASSES, attribute="corner square", values=COLOURS)
    assert test.n_groups == 9 and test.groups.names[5] == "square / blue square"
    assert torch.equal(test.g, test.y * 3 + test.a)
    assert test.group_counts() == [1] * 9
    assert check_folder(folder) == []


def test_without_metadata_json_names_come_from_the_numbers(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    (tmp_path / "copy" / "metadata.json").unlink()
    ds = load_dataset(tmp_path / "copy", split="val", image_size=16)
    assert ds.groups.names[:2] == ("class 0 / a=0", "class 0 / a=1") and ds.groups.paper is None


def test_the_paper_columns_keep_the_paper_names_and_their_binary_contract(tiny_isic, tmp_path):
    ds = load_dataset(tiny_isic, split="test", image_size=16)
    assert ds.groups == paper_scheme("isic") and ds.groups.names == ("BwoP", "BwP", "MwoP", "MwP")
    shutil.copytree(tiny_isic, tmp_path / "isic")
    meta = pd.read_csv(tmp_path / "isic" / "metadata.csv")
    meta.loc[3, "patch"] = 2  # a typo in the paper's format, not a third value
    meta.to_csv(tmp_path / "isic" / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match=r"row 5 .*'patch' has 2; expected one of \[0, 1\]"):
        load_dataset(tmp_path / "isic", split="test", image_size=16)


@pytest.mark.parametrize("sidecar, message", [
    ({"classes": ["a", "b"]}, r"'classes' names 2 but metadata.csv uses 3"),
    ({"values": ["x", "x", "y"]}, r"'values' has repeated names"),
    ({"colour": ["x"]}, r"unknown key\(s\) \['colour'\]"),
])
def test_a_metadata_json_that_does_not_fit_names_its_file(folder, tmp_path, sidecar, message):
    shutil.copytree(folder, tmp_path / "copy")
    (tmp_path / "copy" / "metadata.json").write_text(json.dumps(sidecar))
    with pytest.raises(DatasetFormatError, match=f"metadata.json: {message}"):
        load_dataset(tmp_path / "copy", split="train", image_size=16)


def test_the_model_normalisation_reaches_the_items(folder):
    plain = load_dataset(folder, split="val", image_size=16)
    inception = load_dataset(folder, split="val", image_size=16, normalize="inception")
    raw = plain.decode(0)[0].float() / 255
    assert torch.allclose(inception[0]["image"], (raw - 0.5) / 0.5, atol=1e-6)
    assert inception.transform_id != plain.transform_id
    assert normalization({"mean": [0, 0, 0], "std": [1, 1, 1]}).mean == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown normalization 'clip'"):
        normalization("clip")
    assert np.isclose(plain[0]["image"].mean().item(), ((raw - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
                                                        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)).mean().item())
