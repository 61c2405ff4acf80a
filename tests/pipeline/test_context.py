"""The notebook's Context: folders reach run specs, unknown datasets are refused, the runs root resolves as
``runs_root`` does, the run log counts trained vs loaded runs, and the s-score samples are the one draw."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from shortcut_nb.config import profile_settings
from shortcut_nb.data import ISICLikeSettings, ensure_synthetic
from shortcut_nb.data.fingerprint import folder_fingerprint
from shortcut_nb.data.samples import draw_masked_samples
from shortcut_nb.pipeline.context import Context
from shortcut_nb.pipeline.runs import get_split, run_dir, run_spec


def test_folders_reach_the_run_spec_and_the_rest_stays_synthetic(tmp_path):
    ctx = Context.build("smoke", root=tmp_path, folders={"isic": tmp_path / "isic", "waterbirds": ""}, progress=False)
    assert dict(ctx.folders) == {"isic": str(tmp_path / "isic")}  # an empty entry means "synthetic"
    assert ctx.run_spec("isic", arch="cnn", seed=0).data.folder == str(tmp_path / "isic")
    assert ctx.run_spec("waterbirds").data.folder is None and ctx.folder("waterbirds") is None
    assert ctx.run_spec("isic", folder=None).data.folder is None  # an explicit folder wins
    # otherwise the spec is the profile's, as run_spec gives it
    assert ctx.run_spec("waterbirds", arch="vit", seed=1) == run_spec("smoke", "waterbirds", arch="vit", seed=1)
    with pytest.raises(TypeError):
        ctx.folders["waterbirds"] = "/elsewhere"  # frozen: the notebook's choice, built once


def test_any_dataset_name_with_a_folder_and_no_synthetic_fallback_for_it(tmp_path, tiny_isic):
    """A folder may be named anything; the datasets analysed default to the folders given (nothing synthetic), an
    empty list means none, and a name that is neither the paper's nor a folder's is refused naming DATA_FOLDERS."""
    celeba = str(tmp_path / "celeba")
    shutil.copytree(tiny_isic, celeba)
    ctx = Context.build("smoke", root=tmp_path, folders={"celeba": celeba}, progress=False)
    assert ctx.datasets() == ("celeba",) and ctx.datasets([]) == () and ctx.user_run
    assert ctx.run_spec("celeba").data.folder == celeba
    assert ctx.minority_ratios() == () and ctx.minority_ratios([0.5]) == (0.5,)  # no synthetic sweep unless asked
    with pytest.raises(ValueError, match=r"datasets \['mydata'\] have no folder: name them in DATA_FOLDERS"):
        ctx.datasets(["mydata"])
    paper = Context.build("smoke", root=tmp_path, progress=False)
    assert paper.datasets() == ("waterbirds", "isic") and not paper.user_run
    assert paper.minority_ratios() == paper.settings.minority_ratios


def test_a_checkpoint_is_one_model_analysed_as_it_is(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"")
    ctx = Context.build("smoke", root=tmp_path, folders={"mine": tmp_path}, model="torchvision:resnet18",
                        checkpoint=tmp_path / "w.pth", image_size=48, normalize="inception", progress=False)
    assert ctx.settings.seeds == (0,) and ctx.settings.cnn == "torchvision:resnet18" and ctx.archs() == ("cnn",)
    spec = ctx.run_spec("mine", arch="cnn")
    assert spec.init == "checkpoint" and spec.checkpoint == str((tmp_path / "w.pth").resolve())
    assert spec.data.image_size == 48 and spec.data.normalize == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="CHECKPOINT needs MODEL"):
        Context.build("smoke", checkpoint=tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError, match="CHECKPOINT .*missing.pth: file not found"):
        Context.build("smoke", model="resnet18", checkpoint=tmp_path / "missing.pth")


def test_a_checkpoint_without_its_image_size_is_said(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"IMAGE_SIZE is not given: .*w.pth is analysed at the smoke profile's 32 px"):
        Context.build("smoke", root=tmp_path, model="torchvision:resnet18", checkpoint=tmp_path / "w.pth")


def test_a_folder_is_not_trained_from_the_synthetic_stand_in_pretraining(tmp_path, monkeypatch):
    """The cpu profile pretrains its models on synthetic textures made for the synthetic benchmark; a model trained on
    a dataset folder starts from cached ImageNet weights, else random weights, said in a warning and in the weights
    record; the synthetic datasets keep the stand-in."""
    import shortcut_nb.pipeline.context as C

    ctx = Context.build("cpu", root=tmp_path, folders={"mine": tmp_path}, progress=False)
    monkeypatch.setattr(C, "cached_timm_weights", lambda name: None)
    with pytest.warns(UserWarning, match=r"mine .* is not the synthetic benchmark: .* from random weights"):
        spec = ctx.run_spec("mine", arch="cnn")
    assert spec.init == "none" and spec.pretrain is None and ctx.run_log.weights[spec.model] == "none (random init)"
    monkeypatch.setattr(C, "cached_timm_weights", lambda name: tmp_path / "weights.safetensors")
    with pytest.warns(UserWarning, match="from timm's ImageNet weights"):
        assert ctx.run_spec("mine", arch="vit").init == "timm"
    assert ctx.run_spec("isic").init == "standin" and ctx.run_spec("isic").pretrain is not None
    assert ctx.run_spec("mine", init="standin").init == "standin"  # asked for explicitly: kept


def test_root_and_profile_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORTCUT_NB_RUNS", str(tmp_path / "from_env"))
    assert Context.build("smoke").root == tmp_path / "from_env"
    assert Context.build("smoke", root=tmp_path / "given").root == tmp_path / "given"  # an explicit root wins
    monkeypatch.delenv("SHORTCUT_NB_RUNS")
    monkeypatch.chdir(tmp_path)
    assert Context.build("smoke").root == tmp_path / "runs"
    ctx = Context.build("cpu", root=tmp_path)
    assert ctx.profile == "cpu" and ctx.settings == profile_settings("cpu") and ctx.progress


def test_run_log_counts_trained_and_loaded_runs(tmp_path):
    ctx = Context.build("smoke", root=tmp_path, progress=False)
    spec = ctx.run_spec("waterbirds", seed=0)
    assert ctx.run_log.as_record() == {"trained": 0, "loaded": 0}
    first, info = ctx.train_or_load(spec)
    assert info["trained_now"] and (run_dir(spec, root=tmp_path) / "final.pt").is_file()
    assert ctx.run_log.as_record() == {"trained": 1, "loaded": 0}
    second, info2 = ctx.train_or_load(spec)
    assert not info2["trained_now"] and ctx.run_log.as_record() == {"trained": 1, "loaded": 1}
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    # a second context on the same root loads what the first trained, with its own log
    other = Context.build("smoke", root=tmp_path, progress=False)
    other.train_or_load(other.run_spec("waterbirds", seed=0))
    assert other.run_log.as_record() == {"trained": 0, "loaded": 1}
    # evaluate: predictions on the run's test split
    out = ctx.evaluate(first, spec)
    test = ctx.split(spec, "test")
    assert len(out["pred"]) == len(test) == len(get_split(spec.data, "test", root=tmp_path))
    assert torch.equal(torch.as_tensor(out["g"]), test.g) and torch.equal(torch.as_tensor(out["y"]), test.y)


def test_masked_samples_are_the_one_draw_of_the_profiles_size(tmp_path):
    real = ensure_synthetic("isic", ISICLikeSettings(image_size=16, n_train=48, n_val=8, n_test=8, seed=3),
                            root=tmp_path / "elsewhere")
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"isic": real}, progress=False)
    spec = ctx.run_spec("isic")
    train = ctx.split(spec, "train")
    assert len(train) == 48  # the folder's training rows, not the smoke profile's synthetic set
    samples = ctx.masked_samples(spec, seed=0)
    n = ctx.settings.sscore_samples
    assert len(samples) == n
    expected = draw_masked_samples(train, n, 0)
    assert np.array_equal(samples.indices, expected.indices)
    assert torch.equal(samples.images, expected.images) and torch.equal(samples.masks, expected.masks)
    assert bool(samples.masks.flatten(1).any(1).all())  # every mask has a pixel
    fewer = ctx.masked_samples(spec, seed=0, n=3)
    assert np.array_equal(fewer.indices, samples.indices[:3])  # the same permutation, stopped earlier
    assert not np.array_equal(ctx.masked_samples(spec, seed=1).indices, samples.indices)
    assert not (tmp_path / "runs" / "data").exists()  # nothing generated for a real folder


def test_seeds_put_the_notebooks_own_first_each_once(tmp_path):
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    assert ctx.seeds() == (0, 1, 2, 3, 4) == ctx.settings.seeds
    assert ctx.seeds(2) == (2, 0, 1, 3, 4) and ctx.seeds(5, [1, 5, 1]) == (5, 1) and ctx.seeds(1, []) == (1,)


def test_by_seed_builds_every_seed_but_the_notebooks_own(tmp_path):
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    built = []
    out = ctx.by_seed(["isic", "waterbirds"], lambda ds, seed: built.append((ds, seed)) or f"{ds}{seed}",
                      own={"isic": "mine"}, own_seed=1)
    assert out == {"isic": {1: "mine", **{s: f"isic{s}" for s in (0, 2, 3, 4)}},
                   "waterbirds": {s: f"waterbirds{s}" for s in (1, 0, 2, 3, 4)}}
    assert list(out["isic"]) == [1, 0, 2, 3, 4]  # the notebook's own seed first
    assert ("isic", 1) not in built and len(built) == 9
    assert ctx.by_seed(["isic"], lambda ds, seed: seed, [4]) == {"isic": {0: 0, 4: 4}}


def test_counterfactual_pairs_are_the_one_draw_of_the_validation_split(tiny_isic, tmp_path):
    """The profile's number of pairs (capped at the split's size), the same images flipped two ways, seeded."""
    ctx = Context.build("smoke", root=tmp_path, folders={"isic": str(tiny_isic)}, image_size=16, progress=False)
    spec = ctx.run_spec("isic")
    val = ctx.split(spec, "val")
    assert ctx.settings.counterfactual_pairs == 32 > len(val)
    attribute, core = ctx.counterfactual_pairs(spec)
    assert len(attribute.indices) == len(val) and torch.equal(attribute.indices, core.indices)
    assert (attribute.flipped.flip, core.flipped.flip) == ("attribute", "core")
    a6, _ = ctx.counterfactual_pairs(spec, n=6, seed=1)
    assert len(a6.indices) == 6 and torch.equal(a6.indices, ctx.counterfactual_pairs(spec, n=6, seed=1)[0].indices)
    assert profile_settings("cpu").counterfactual_pairs == 200 and profile_settings("paper").counterfactual_pairs == 300
    assert profile_settings("cpu", dry_run=True).counterfactual_pairs == 4


def test_record_names_each_datasets_source_synthetic_or_a_folder_with_its_fingerprint(tmp_path, tiny_waterbirds):
    ctx = Context.build("smoke", root=tmp_path, folders={"waterbirds": tiny_waterbirds}, progress=False)
    assert ctx.datasets() == ("waterbirds",)
    assert ctx.datasets(["waterbirds", "isic"]) == ("waterbirds", "isic")
    rec = ctx.record()
    assert rec["datasets"]["isic"] == {"source": "synthetic benchmark", "synthetic": True}
    mine = rec["datasets"]["waterbirds"]
    assert mine["source"] == "folder" and mine["path"] == str(tiny_waterbirds)
    assert mine["fingerprint"] == folder_fingerprint(tiny_waterbirds)
    assert rec["seeds"] == list(ctx.settings.seeds) and rec["models"] == {"cnn": ctx.settings.cnn,
                                                                          "vit": ctx.settings.vit}
