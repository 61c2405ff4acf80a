"""shortcut_nb.api: one call per analysis on a researcher's own classifier and folder, and the README's example.

The folder is :func:`support.user_data.write_user_folder`'s (3 shapes × 3 corner colours, masks on every other row,
a metadata.json naming them); the classifiers are a torchvision ResNet-18 and timm's tiny ``test_resnet`` /
``test_vit`` whose last layer is fitted on the train split (the backbone stays random), so predictions differ between
images. Images are resized to 128 px so a ResNet's last map is 4×4 (s-scores need at least that).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import shortcut_nb
from shortcut_nb import api
from shortcut_nb.data import load_dataset
from shortcut_nb.models import as_split_model
from support.user_data import write_user_folder

LOAD = dict(image_size=128, normalize="inception")
README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Your own model and data"


def _images(folder: Path, split: str, **load) -> tuple[torch.Tensor, object]:
    ds = load_dataset(folder, split=split, **load)
    return torch.stack([ds[i]["image"] for i in range(len(ds))]), ds


def _fit_last_layer(net: nn.Module, linear: nn.Linear, folder: Path, **load) -> nn.Module:
    """Fit ``linear`` (the classifier of ``net``) on the train split's penultimate features, in place."""
    x, ds = _images(folder, "train", **load)
    seen: list[torch.Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))
    with torch.no_grad():
        net.eval()(x)
    hook.remove()
    z = seen[0]
    mean, std = z.mean(0), z.std(0) + 1e-6
    w = torch.zeros(linear.out_features, z.shape[1], requires_grad=True)
    b = torch.zeros(linear.out_features, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy((z - mean) / std @ w.T + b, ds.y).backward()
        opt.step()
    with torch.no_grad():
        linear.weight.copy_(w / std)
        linear.bias.copy_(b - (w * mean / std).sum(1))
    return net.eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_user_folder(tmp_path_factory.mktemp("api") / "mydata", per_split=(45, 27, 27), size=64)


@pytest.fixture(scope="module")
def resnet18(folder) -> nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3)
    return _fit_last_layer(net, net.fc, folder, **LOAD)


@pytest.fixture(scope="module")
def tiny(folder) -> nn.Module:
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=3)
    return _fit_last_layer(net, net.get_classifier(), folder, **LOAD)


def _in_unit_interval(*values: float) -> bool:
    return all(0.0 <= float(v) <= 1.0 for v in values)


# --------------------------------------------------------------------------- the top level and the README


def test_every_analysis_is_one_call_at_the_top_level() -> None:
    for name in shortcut_nb.API:
        assert getattr(shortcut_nb, name) is getattr(api, name)
        assert name in shortcut_nb.__all__ and name in dir(shortcut_nb)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shortcut_nb.nope  # noqa: B018


def _readme_block() -> str:
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"the section {SECTION!r} should hold one python block, found {len(blocks)}"
    return blocks[0]


def test_readme_example_runs_on_a_folder_and_a_classifier(folder, tiny, capsys) -> None:
    namespace = {"folder": str(folder), "net": tiny}
    exec(compile(_readme_block(), f"{README}:{SECTION}", "exec"), namespace)  # noqa: S102
    assert len(namespace["neurons"].scores) == tiny.num_features
    assert set(namespace["report"].accuracy) == set(load_dataset(folder, split="test").groups.names)
    assert "WGA" in capsys.readouterr().out


# --------------------------------------------------------------------------- group_report


def test_group_report_equals_a_hand_count(folder, resnet18) -> None:
    x, ds = _images(folder, "test", **LOAD)
    with torch.no_grad():
        correct = (resnet18(x).argmax(1) == ds.y).double()
    assert 0 < correct.mean() < 1  # the fitted head makes mistakes and hits
    by_group = {name: float(correct[ds.g == k].mean()) for k, name in enumerate(ds.groups.names)}

    report = shortcut_nb.group_report(resnet18, folder, **LOAD)

    assert report.split == "test" and report.n == len(ds) == 27
    assert report.accuracy == pytest.approx(by_group)
    assert report.counts == {name: 3 for name in ds.groups.names}
    assert report.avg == pytest.approx(float(correct.mean()))
    assert report.wga == pytest.approx(min(by_group.values()))
    assert report.gap == pytest.approx(report.avg - report.wga)
    assert by_group[report.worst_group] == pytest.approx(report.wga)
    assert "circle / red square" in report.accuracy  # names from metadata.json


def test_group_report_reads_a_dataset_object_as_given(folder, tiny) -> None:
    val = load_dataset(folder, split="val", **LOAD)
    from_object = shortcut_nb.group_report(tiny, val)
    assert from_object.split == "val"
    assert from_object == shortcut_nb.group_report(as_split_model(tiny), folder, split="val", **LOAD)


def test_wrong_data_or_classes_are_named(folder) -> None:
    two_class = timm.create_model("test_resnet", num_classes=2)
    with pytest.raises(ValueError, match="2 outputs but data .* has 3 classes"):
        shortcut_nb.group_report(two_class, folder, **LOAD)
    with pytest.raises(TypeError, match="data must be a ShortcutDataset .* or a dataset folder path"):
        shortcut_nb.group_report(two_class, 3)
    with pytest.raises(TypeError, match="model must be a trained classifier"):
        shortcut_nb.group_report("resnet18", folder)


# --------------------------------------------------------------------------- neuron_scores


def test_neuron_scores_of_a_plain_classifier_are_per_penultimate_neuron(folder, resnet18) -> None:
    res = shortcut_nb.neuron_scores(resnet18, folder, n=8, **LOAD)
    assert res.scores.shape == (resnet18.fc.in_features,) == (512,)  # not one per logit
    assert res.layer == "layer4.1"
    assert _in_unit_interval(res.scores.min(), res.scores.max()) and 0 < res.chance < 1
    assert len(res.indices) == 8 and res.summary["d"] == 512 and res.summary["area"] == res.chance
    np.testing.assert_allclose(res.lift, res.scores / res.chance)


def test_neuron_scores_of_a_block_by_name_or_module(folder, resnet18) -> None:
    by_name = shortcut_nb.neuron_scores(resnet18, folder, layer="layer3", n=4, **LOAD)
    by_module = shortcut_nb.neuron_scores(resnet18, folder, layer=resnet18.layer3, n=4, **LOAD)
    assert by_name.scores.shape == (256,) and by_name.layer == by_module.layer == "layer3"
    np.testing.assert_array_equal(by_name.scores, by_module.scores)
    with pytest.raises(ValueError, match="layer='layer9' is not a module"):
        shortcut_nb.neuron_scores(resnet18, folder, layer="layer9", **LOAD)


def test_data_without_masks_is_refused_naming_the_column(folder, tiny, tmp_path) -> None:
    bare = Path(shutil.copytree(folder, tmp_path / "no_masks"))
    meta = pd.read_csv(bare / "metadata.csv").drop(columns="mask_filename")
    meta.to_csv(bare / "metadata.csv", index=False)
    with pytest.raises(ValueError, match="no mask_filename column: neuron_scores needs binary masks"):
        shortcut_nb.neuron_scores(tiny, bare, **LOAD)
    with pytest.raises(ValueError, match="no mask_filename column"):
        shortcut_nb.prune_neurons(tiny, bare, **LOAD)  # scores=None computes them


# --------------------------------------------------------------------------- latent_purity


def test_latent_purity_per_class_against_a_shuffled_baseline(folder, tiny) -> None:
    res = shortcut_nb.latent_purity(tiny, folder, k=5, n_shuffles=20, **LOAD)
    assert set(res.by_class) == {"circle", "square", "triangle"}
    assert _in_unit_interval(res.purity, res.baseline, res.p_value, *res.by_class.values())
    assert res.lift == pytest.approx(res.purity - res.baseline)
    assert res.details["n"] == 45  # the train split by default


# --------------------------------------------------------------------------- the last layer


def _check_summary(summary: dict, n_groups: int) -> None:
    assert {"groups", "avg", "wga", "gap"} <= set(summary)
    assert len(summary["groups"]) == n_groups
    assert _in_unit_interval(summary["avg"], summary["wga"], *summary["groups"])


def test_prune_neurons_gives_table_4s_rows(folder, tiny) -> None:
    d = tiny.num_features
    scores = np.linspace(0.0, 1.0, d)
    out = shortcut_nb.prune_neurons(tiny, folder, scores=scores, tau=0.7, **LOAD)
    assert {"baseline", "pruned", "refit", "refit_pruned", "pruned_neurons", "errors", "tau", "group_names"} <= set(out)
    assert sorted(out["pruned_neurons"]) == np.flatnonzero(scores > 0.7).tolist()
    for row in ("baseline", "pruned", "refit", "refit_pruned"):
        _check_summary(out[row], 9)
    assert out["pruned"]["n_zeroed"] == len(out["pruned_neurons"])
    assert out["baseline"]["wga"] == pytest.approx(shortcut_nb.group_report(tiny, folder, **LOAD).wga)


def test_prune_neurons_scores_the_neurons_itself(folder, tiny) -> None:
    out = shortcut_nb.prune_neurons(tiny, folder, n=4, tau=0.0, **LOAD)
    assert out["scores"].shape == (tiny.num_features,)
    assert sorted(out["pruned_neurons"]) == np.flatnonzero(out["scores"] > 0.0).tolist()


def test_dfr_refits_on_val_and_measures_on_test(folder, tiny) -> None:
    out = shortcut_nb.dfr(tiny, folder, n_refits=2, **LOAD)
    assert {"before", "after", "wga_before", "wga_after", "C", "tuned", "notes", "head", "group_names"} <= set(out)
    _check_summary(out["before"], 9)
    _check_summary(out["after"], 9)
    assert (out["wga_before"], out["wga_after"]) == (out["before"]["wga"], out["after"]["wga"])
    assert out["wga_before"] == pytest.approx(shortcut_nb.group_report(tiny, folder, **LOAD).wga)
    assert isinstance(out["head"], nn.Linear) and out["head"].weight.shape == (3, tiny.num_features)
    assert out["group_names"][0] == "circle / red square" and out["C"] > 0


# --------------------------------------------------------------------------- attention_heads


def test_attention_heads_refuses_a_cnn(folder, tiny) -> None:
    with pytest.raises(TypeError, match="attention_heads needs a ViT"):
        shortcut_nb.attention_heads(tiny, folder, **LOAD)


def test_attention_heads_of_a_vit_at_its_own_input_size(folder) -> None:
    torch.manual_seed(0)
    vit = timm.create_model("test_vit", num_classes=3, img_size=64).eval()  # 4×4 patches of 16 px
    out = shortcut_nb.attention_heads(vit, folder, n=6, normalize="inception")  # image_size: the ViT's 64
    layers, heads = len(vit.blocks), vit.blocks[0].attn.num_heads
    assert out["share"].shape == out["lift"].shape == (layers, heads)
    assert 0 < out["n_images"] <= 6 and 0 < out["area"] < 1
    assert _in_unit_interval(out["share"].min(), out["share"].max())
    assert isinstance(out["beyond_area"], list)
