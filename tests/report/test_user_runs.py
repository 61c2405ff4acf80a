"""A researcher's own folder and trained models through the CLI: notebooks 01, 03 and 04 analyse them as they are.

The folder is written with PIL by the test (3 classes × 3 attribute values, masks on some rows); the models are a
torchvision ResNet-18 and timm's ``test_resnet`` (neither among the paper's five), saved by the test. The recorded
group accuracies must equal the test's own evaluation of the saved checkpoint, with the saved head.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from torch import nn

from shortcut_nb.artifacts import weights_hash
from shortcut_nb.data import load_dataset
from shortcut_nb.report.cli import main
from support.user_data import CLASSES, COLOURS, write_user_folder

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user")
    folder = write_user_folder(root / "mydata", per_split=(90, 36, 36), size=64)
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=3)
    with torch.no_grad():
        net.fc.weight.mul_(5)  # a head that is not torchvision's initialisation: predictions depend on it
    torch.save(net.state_dict(), root / "resnet18_mine.pth")
    tnet = timm.create_model("test_resnet", num_classes=3)
    torch.save({"arch": "test_resnet", "state_dict": tnet.state_dict()}, root / "test_resnet_mine.pth")
    return {"root": root, "folder": folder, "tv": root / "resnet18_mine.pth", "timm": root / "test_resnet_mine.pth"}


def _own_evaluation(folder: Path, checkpoint: Path) -> tuple[list[float], nn.Linear]:
    """Per-group test accuracy of the saved torchvision checkpoint, computed here without the package's models."""
    net = torchvision.models.resnet18(num_classes=3)
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    net.eval()
    test = load_dataset(folder, split="test", image_size=64)
    with torch.no_grad():
        pred = net(torch.stack([test[i]["image"] for i in range(len(test))])).argmax(1).numpy()
    y, g = test.y.numpy(), test.g.numpy()
    return [float((pred[g == k] == y[g == k]).mean()) for k in range(9)], net.fc


def test_notebooks_01_03_04_analyse_a_torchvision_checkpoint_as_it_is(user, tmp_path):
    out = tmp_path / "out"
    rc = main(["run", "--profile", "smoke", "--only", "01,03,04", "--out", str(out), "--runs-root", str(tmp_path / "runs"),
               "--data", f"mydata={user['folder']}", "--model", "torchvision:resnet18", "--checkpoint", str(user["tv"]),
               "--image-size", "64"])
    runs = json.loads((out / "runs.json").read_text())
    assert rc == 0, runs
    groups = json.loads((out / "01_groups.json").read_text())
    row = groups["table2"]["mydata/cnn"]
    expected, fc = _own_evaluation(user["folder"], user["tv"])
    assert row["group_names"] == [f"{c} / {v}" for c in CLASSES for v in COLOURS]
    np.testing.assert_allclose(row["groups"], expected, atol=1e-9)
    assert row["wga"] == pytest.approx(min(expected)) and row["n_seeds"] == 1
    assert groups["sweep"] == {}, "no synthetic minority sweep in a user run"
    assert groups["runs"] == {"trained": 0, "loaded": 1}, "the checkpoint is loaded, never trained"
    for name in ("01_groups", "03_cnn_neurons", "04_entanglement"):
        inputs = json.loads((out / f"{name}.json").read_text())["inputs"]
        assert inputs["head_sha256"] == {"torchvision:resnet18": weights_hash(fc)}, name  # the saved head, not a new one
        assert inputs["data_folders"]["mydata"]["path"] == str(user["folder"].resolve())
        assert inputs["checkpoint"]["path"] == str(user["tv"].resolve()) and inputs["user_run"] is True
    neurons = json.loads((out / "03_cnn_neurons.json").read_text())
    assert neurons["datasets"]["mydata"]["d"] == 512  # penultimate neurons, not the 3 logits
    assert len(neurons["datasets"]["mydata"]["group_names"]) == 9
    entangle = json.loads((out / "04_entanglement.json").read_text())
    assert list(entangle["table"]) == ["mydata/cnn"], "the checkpoint alone: no ViT trained beside it"
    claims = json.loads((out / "claims.json").read_text())["claims"]
    ran = [c for c in claims if c["notebook"] in ("01_groups", "03_cnn_neurons", "04_entanglement")]
    assert ran and all(c["holds"] is None and c["verdict"] == "not applicable" for c in ran), "no paper verdict"
    measured = (out / "claims.md").read_text().split("## Measured on your own data or model")[1]
    assert f"WGA {min(expected):.2f}" in measured and "worst " in measured and "DFR" in measured
    assert not any((tmp_path / "runs").glob("models/**/last.pt")), "nothing was trained"
    assert not (tmp_path / "runs" / "data").exists(), "no synthetic dataset was generated"


def test_a_timm_checkpoint_naming_its_arch_runs_notebook_03_and_says_what_it_cannot_score(user, tmp_path):
    """timm's checkpoint layout ({"arch", "state_dict"}) with its own normalisation; at 64 px test_resnet's last map
    is 2x2 (recorded as a warning); a folder without masks is left out before any training, said and recorded."""
    import pandas as pd
    import shutil

    bare = tmp_path / "nomasks"
    shutil.copytree(user["folder"], bare)
    meta = pd.read_csv(bare / "metadata.csv").drop(columns=["mask_filename"])
    meta.to_csv(bare / "metadata.csv", index=False)
    out = tmp_path / "out"
    rc = main(["run", "--profile", "smoke", "--only", "03", "--out", str(out), "--runs-root", str(tmp_path / "runs"),
               "--data", f"mydata={user['folder']}", "--data", f"bare={bare}", "--model", str(user["timm"]),
               "--image-size", "64", "-p", "NORMALIZE", "inception"])
    assert rc == 0, (out / "runs.json").read_text()
    rec = json.loads((out / "03_cnn_neurons.json").read_text())
    assert rec["inputs"]["model"] == "test_resnet" and rec["inputs"]["normalize"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert rec["datasets"]["mydata"]["d"] == timm.create_model("test_resnet").num_features
    assert rec["datasets"]["mydata"]["target_map"] == [2, 2]
    assert "smaller than 4x4" in rec["datasets"]["mydata"]["target_map_warning"]
    assert list(rec["datasets"]) == ["mydata"] and "mask_filename" in rec["inputs"]["skipped"]["bare"]
    executed = (out / "03_cnn_neurons.ipynb").read_text()
    assert "bare is left out of this notebook" in executed and "SmallTargetMapWarning" in executed
    # the folder without masks: its neurons ranked by the mask-free detectors; the folder with masks has no renderer,
    # so no counterfactual ground truth, said so
    ranked = rec["mask_free"]["bare"]
    assert len(ranked["scores"]["group_gap"]) == rec["datasets"]["mydata"]["d"] and "mask_filename" in ranked["reason"]
    assert rec["detectors"]["mydata"]["available"] is False
    assert "not the synthetic benchmark" in rec["detectors"]["mydata"]["reason"]


def test_a_classifier_of_other_classes_is_refused_naming_the_file_and_shapes(user, tmp_path):
    five = tmp_path / "five.pth"
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), five)
    rc = main(["run", "--profile", "smoke", "--only", "01", "--out", str(tmp_path / "out"),
               "--runs-root", str(tmp_path / "runs"), "--data", f"mydata={user['folder']}",
               "--model", "torchvision:resnet18", "--checkpoint", str(five)])
    assert rc == 1
    error = json.loads((tmp_path / "out" / "runs.json").read_text())["notebooks"][0]["error"]
    assert "five.pth" in error and "(5, 512)" in error and "(3, 512)" in error


def test_notebook_03_on_data_without_any_masks_ranks_its_neurons_without_them(user, tmp_path):
    """Every folder lacks masks: notebook 03 runs to the end (issue 29, item 6), its s-score views say why they are
    empty, and its neurons are ranked by the mask-free detectors, recorded."""
    import pandas as pd
    import shutil

    bare = tmp_path / "nomasks"
    shutil.copytree(user["folder"], bare)
    pd.read_csv(bare / "metadata.csv").drop(columns=["mask_filename"]).to_csv(bare / "metadata.csv", index=False)
    out = tmp_path / "out"
    rc = main(["run", "--profile", "smoke", "--only", "03", "--out", str(out), "--runs-root", str(tmp_path / "runs"),
               "--data", f"bare={bare}", "--model", "torchvision:resnet18", "--checkpoint", str(user["tv"]),
               "--image-size", "64"])
    assert rc == 0, (out / "runs.json").read_text()
    rec = json.loads((out / "03_cnn_neurons.json").read_text())
    assert rec["datasets"] == {} and rec["headline"] is None and "mask_filename" in rec["inputs"]["skipped"]["bare"]
    ranked = rec["mask_free"]["bare"]
    assert len(ranked["scores"]["group_gap"]) == 512 == len(ranked["scores"]["spuriosity"])
    assert ranked["top"]["group_gap"][0] == int(np.argmax(ranked["scores"]["group_gap"]))
    executed = (out / "03_cnn_neurons.ipynb").read_text()
    assert "No dataset analysed has spurious masks" in executed and "bare has no masks" in executed
