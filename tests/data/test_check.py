"""check-data: every problem of a folder in one pass, each naming its file and line; good folders pass."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shortcut_nb.data import ISICLikeSettings, generate_isic_like, load_dataset
from shortcut_nb.data.check import check_folder
from shortcut_nb.data.folder import DatasetFormatError
from shortcut_nb.report.cli import main


@pytest.fixture()
def folder(tmp_path, tiny_isic) -> Path:
    root = tmp_path / "isic"
    shutil.copytree(tiny_isic, root)
    return root


def test_a_generated_folder_has_no_problem(tiny_waterbirds, tiny_isic, capsys):
    assert check_folder(tiny_waterbirds) == []
    assert check_folder(tiny_isic) == []
    assert main(["check-data", str(tiny_waterbirds), str(tiny_isic)]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_every_problem_is_found_in_one_pass(folder, capsys):
    meta = pd.read_csv(folder / "metadata.csv")
    masked = meta.index[meta["mask_filename"].notna()]
    first, second, third = (Path(folder / meta.loc[i, "img_filename"]) for i in meta.index[:3])
    first.write_bytes(first.read_bytes()[: len(first.read_bytes()) // 3])  # truncated PNG
    meta.loc[1, "img_filename"] = "../outside.png"  # row pointing outside the folder
    third.unlink()  # missing image
    mask_row = int(masked[-1])
    Image.fromarray(np.zeros((5, 7), dtype=np.uint8)).save(folder / meta.loc[mask_row, "mask_filename"])  # wrong size
    meta.loc[4, "y"] = 7  # bad label
    meta.to_csv(folder / "metadata.csv", index=False)
    problems = [str(p) for p in check_folder(folder)]
    text = "\n".join(problems)
    assert "line 2" in text and "cannot be decoded" in text, text
    assert "line 3" in text and "outside the dataset folder" in text
    assert "line 4" in text and "image file not found" in text
    assert f"line {mask_row + 2}" in text and "must have its image's size" in text
    assert "line 6" in text and "column 'y' has 7" in text
    assert main(["check-data", str(folder)]) == 1
    assert f"{len(problems)} problem(s)" in capsys.readouterr().out


def test_empty_splits_and_groups_are_problems(folder):
    meta = pd.read_csv(folder / "metadata.csv")
    meta = meta[~((meta["split"] == 2) & (meta["y"] == 1) & (meta["patch"] == 0))]  # no MwoP in test
    meta = meta[meta["split"] != 1]  # no validation split
    meta.to_csv(folder / "metadata.csv", index=False)
    text = "\n".join(str(p) for p in check_folder(folder))
    assert "split 'val' is empty" in text
    assert "group MwoP (g = 2) has no test image" in text


def test_an_empty_metadata_file_is_an_error_not_an_empty_split(folder):
    (folder / "metadata.csv").write_text("")
    assert "is empty" in str(check_folder(folder)[0])
    with pytest.raises(DatasetFormatError, match="metadata.csv is empty"):
        load_dataset(folder, split="train", image_size=16)
    (folder / "metadata.csv").write_text("img_filename,y,split,patch\n")
    with pytest.raises(DatasetFormatError, match="header but no rows"):
        load_dataset(folder, split="train", image_size=16)


def test_an_empty_split_is_refused_by_name(folder):
    meta = pd.read_csv(folder / "metadata.csv")
    meta[meta["split"] != 1].to_csv(folder / "metadata.csv", index=False)
    with pytest.raises(DatasetFormatError, match="split 'val' is empty"):
        load_dataset(folder, split="val", image_size=16)


def test_a_truncated_image_names_its_file_and_row_when_loaded(folder):
    meta = pd.read_csv(folder / "metadata.csv")
    train = meta.index[meta["split"] == 0]
    victim = folder / meta.loc[train[2], "img_filename"]
    victim.write_bytes(victim.read_bytes()[:40])
    ds = load_dataset(folder, split="train", image_size=16)
    with pytest.raises(DatasetFormatError, match=rf"row {train[2] + 2}: image .*{victim.name}.* cannot be decoded"):
        ds[2]


def test_rows_without_a_mask_say_so(tmp_path):
    root = generate_isic_like(tmp_path / "isic", ISICLikeSettings(image_size=16, n_train=40, n_val=8, n_test=8, seed=1))
    meta = pd.read_csv(root / "metadata.csv")
    train = meta.index[meta["split"] == 0]
    meta.loc[train[::3], "mask_filename"] = np.nan  # masks on two thirds of the rows only
    meta.to_csv(root / "metadata.csv", index=False)
    ds = load_dataset(root, split="train", image_size=16)
    flags = [ds[i]["has_mask"] for i in range(len(ds))]
    assert flags == [i % 3 != 0 for i in range(len(ds))]
    assert check_folder(root) == []  # a row without a mask is allowed


def test_duplicates_and_images_shared_between_splits_are_found(folder):
    """The same row twice, one path on a train and a test row, the same bytes under two names in two splits."""
    meta = pd.read_csv(folder / "metadata.csv")
    train, test = meta.index[meta["split"] == 0], meta.index[meta["split"] == 2]
    meta.loc[test[0], "img_filename"] = meta.loc[train[1], "img_filename"]
    shutil.copy(folder / meta.loc[train[2], "img_filename"], folder / meta.loc[test[1], "img_filename"])
    meta = pd.concat([meta, meta.loc[[train[0]]]], ignore_index=True)
    meta.to_csv(folder / "metadata.csv", index=False)
    copied = folder / meta.loc[test[1], "img_filename"]
    assert sorted(str(p) for p in check_folder(folder)) == sorted([
        f"{folder / 'metadata.csv'}, line {len(meta) + 1}: repeats line {train[0] + 2} (the same row twice: its "
        "image counts twice)",
        f"{folder / 'metadata.csv'}, line {test[0] + 2}: names {Path(meta.loc[train[1], 'img_filename']).name} as "
        f"line {train[1] + 2} does in two splits (leakage: the same image in test and train); each image once",
        f"{copied}, line {test[1] + 2}: has the same bytes as {Path(meta.loc[train[2], 'img_filename']).name} (line "
        f"{train[2] + 2}) in another split (leakage: test and train share an image)",
    ])
    assert main(["check-data", str(folder)]) == 1


def test_a_latin_1_metadata_file_is_named_with_its_line_and_byte(folder):
    meta = pd.read_csv(folder / "metadata.csv")
    meta["note"] = ""
    meta.loc[3, "note"] = "café"
    (folder / "metadata.csv").write_bytes(meta.to_csv(index=False).encode("latin-1"))
    offset = (folder / "metadata.csv").read_bytes().index("é".encode("latin-1"))
    expected = f"is not UTF-8 text: line 5 (byte offset {offset}) holds byte 0xe9"
    with pytest.raises(DatasetFormatError, match=f"metadata.csv {re.escape(expected)}.*save the file as UTF-8"):
        load_dataset(folder, split="train", image_size=16)
    assert [str(p) for p in check_folder(folder)][0].startswith(f"{folder / 'metadata.csv'}: {expected}")
