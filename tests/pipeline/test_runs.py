"""Cached runs: stand-in pretraining and trained runs are keyed by what produced them and reused."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from shortcut_nb.artifacts import read_json, weights_hash
from shortcut_nb.models import build_model
from shortcut_nb.pipeline import pretrain, sweep
from shortcut_nb.pipeline.pretrain import PretrainSettings, ensure_pretrained, generate_pretraining_images
from shortcut_nb.config import profile_settings
from shortcut_nb.pipeline.feature_cache import extract_features
from shortcut_nb.pipeline.runs import get_split, run_dir, run_spec, standin_pretraining, train_or_load
from support.read_only import make_read_only


def test_pretraining_images_are_uncorrelated_and_deterministic():
    x1, y1 = generate_pretraining_images(40, 16, seed=0)
    x2, y2 = generate_pretraining_images(40, 16, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (40, 3, 16, 16) and x1.dtype == torch.uint8
    assert len(set(y1.tolist())) > 5  # many shape classes


def test_standin_pretraining_is_cached_and_loads_as_weights_file(tmp_path):
    s = PretrainSettings(arch="resnet_mini", image_size=16, n_images=64, epochs=1, batch_size=16, seed=0)
    path = ensure_pretrained(s, root=tmp_path, progress_bar=False)
    stamp = path.stat().st_mtime_ns
    assert ensure_pretrained(s, root=tmp_path, progress_bar=False) == path and path.stat().st_mtime_ns == stamp
    model = build_model("resnet_mini", image_size=16, weights_file=path)
    saved = torch.load(path, weights_only=True)
    for key, value in model.f_enc.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert path.with_suffix(".json").is_file()


class Killed(Exception):
    pass


def test_an_interrupted_pretraining_resumes_from_its_last_epoch_to_the_same_weights(tmp_path, monkeypatch):
    """A job killed after epoch 2 of 3 and run again (a requeued SLURM job) trains one epoch, not three, and
    ends where an uninterrupted run ends."""
    s = PretrainSettings(arch="resnet_mini", image_size=16, n_images=80, epochs=3, batch_size=16, seed=1)
    clean = ensure_pretrained(s, root=tmp_path / "clean", progress_bar=False)
    save = pretrain.atomic_torch_save

    def save_then_die(obj, path):
        save(obj, path)
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            raise Killed

    monkeypatch.setattr(pretrain, "atomic_torch_save", save_then_die)
    with pytest.raises(Killed):
        ensure_pretrained(s, root=tmp_path / "killed", progress_bar=False)
    path = pretrain.pretrained_weights_path(s, tmp_path / "killed")
    assert not path.is_file() and pretrain.partial_path(path).is_file()
    (planned,) = sweep.plan_runs([s], root=tmp_path / "killed")
    assert (planned.state, planned.epoch, planned.describe()) == ("partial", 2, "partial at epoch 2/3")
    monkeypatch.undo()
    assert ensure_pretrained(s, root=tmp_path / "killed", progress_bar=False) == path
    assert read_json(path.with_suffix(".json"))["resumed_at_epoch"] == 2 and not pretrain.partial_path(path).exists()
    a, b = torch.load(clean, weights_only=True), torch.load(path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_keys_separate_what_differs(tmp_path):
    a = run_spec("smoke", "waterbirds", seed=0)
    assert run_dir(a, root=tmp_path) == run_dir(run_spec("smoke", "waterbirds", seed=0), root=tmp_path)
    others = [run_spec("smoke", "waterbirds", seed=1), run_spec("smoke", "waterbirds", minority_ratio=0.0),
              run_spec("smoke", "isic"), run_spec("smoke", "waterbirds", arch="vit"), run_spec("smoke", "waterbirds", epochs=2),
              run_spec("smoke", "waterbirds", object_scale=0.5)]
    dirs = {run_dir(s, root=tmp_path) for s in others}
    assert run_dir(a, root=tmp_path) not in dirs and len(dirs) == len(others)


def test_train_or_load_reuses_the_checkpoint(tmp_path):
    spec = run_spec("smoke", "waterbirds", seed=0)
    first, info = train_or_load(spec, root=tmp_path, progress_bar=False)
    assert info["trained_now"] and (run_dir(spec, root=tmp_path) / "final.pt").is_file()
    second, info2 = train_or_load(spec, root=tmp_path, progress_bar=False)
    assert not info2["trained_now"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert sum(info["train_group_counts"]) == 160


def test_a_read_only_runs_root_serves_its_finished_runs(tmp_path, monkeypatch, request):
    """Loading a finished run (and its data, decoded pixels and features) takes no lock and writes nothing."""
    root = tmp_path / "runs"
    spec = run_spec("smoke", "waterbirds", seed=0, epochs=1)
    trained, _ = train_or_load(spec, root=root, progress_bar=False)
    features = extract_features(trained, get_split(spec.data, "test", root=root), root=root, progress_bar=False)
    how = make_read_only(root, monkeypatch, request)  # as root here: every write under it refused, not chmod
    with pytest.raises(PermissionError):  # the root really refuses what training would do
        train_or_load(run_spec("smoke", "waterbirds", seed=1, epochs=1), root=root, progress_bar=False)
    loaded, info = train_or_load(spec, root=root, progress_bar=False)
    assert not info["trained_now"] and weights_hash(loaded) == weights_hash(trained), how
    again = extract_features(loaded, get_split(spec.data, "test", root=root), root=root, progress_bar=False)
    assert again["from_cache"] and (again["z"] == features["z"]).all()


def test_a_distilled_pretraining_learns_from_its_teacher(tmp_path):
    """A ViT pretrained with a CNN teacher: the teacher (with its shape head) is pretrained first, the student's
    key differs from the plain one's, and the distillation term changes the weights."""
    base = dict(image_size=16, n_images=64, epochs=1, batch_size=16, seed=0)
    teacher = PretrainSettings(arch="resnet_mini", **base)
    plain = PretrainSettings(arch="vit_mini", **base)
    student = PretrainSettings(arch="vit_mini", teacher=teacher, distill_weight=0.7, **base)
    assert pretrain.pretrained_weights_path(plain, tmp_path) != pretrain.pretrained_weights_path(student, tmp_path)
    a = torch.load(ensure_pretrained(plain, root=tmp_path, progress_bar=False), weights_only=True)
    path = ensure_pretrained(student, root=tmp_path, progress_bar=False)
    t_path = pretrain.pretrained_weights_path(teacher, tmp_path)
    assert t_path.is_file() and pretrain.head_path(t_path).is_file() and pretrain.head_path(path).is_file()
    b = torch.load(path, weights_only=True)
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    assert read_json(path.with_suffix(".json"))["settings"]["teacher"]["arch"] == "resnet_mini"
    # a teacher cached before heads were kept: its backbone is never rewritten, a head is fitted on it
    backbone = t_path.read_bytes()
    pretrain.head_path(t_path).unlink()
    assert ensure_pretrained(teacher, root=tmp_path, progress_bar=False, with_head=True) == t_path
    assert t_path.read_bytes() == backbone and pretrain.head_path(t_path).is_file()
    with pytest.raises(ValueError, match="same image_size"):
        PretrainSettings(arch="vit_mini", teacher=PretrainSettings(image_size=32), image_size=16)
    with pytest.raises(ValueError, match="another seed"):  # one seed's draws of other sizes share images
        PretrainSettings(arch="vit_mini", teacher=PretrainSettings(n_images=100), n_images=400)
    assert PretrainSettings(arch="vit_mini", teacher=PretrainSettings(n_images=100), n_images=400, seed=1).teacher


def test_the_cpu_vit_standin_is_distilled_from_the_cpu_cnn_standin():
    cnn, vit = standin_pretraining("cpu", "resnet_mini"), standin_pretraining("cpu", "vit_mini")
    ps = profile_settings("cpu")
    assert cnn.teacher is None and cnn.epochs == ps.pretrain_epochs
    assert vit.teacher == cnn and vit.epochs == ps.vit_pretrain_epochs and vit.distill_weight == ps.vit_distill_weight
    assert run_spec("cpu", "isic", arch="vit").pretrain == vit
    assert standin_pretraining("cpu", "vit_mini", epochs=2).epochs == 2
    dry = standin_pretraining(profile_settings("cpu", dry_run=True), "vit_mini")
    assert dry.epochs == 1 and dry.teacher.epochs == 1  # a dry run caps both
    assert standin_pretraining("smoke", "vit_mini").teacher is None
    # and fine-tuned with its own recipe (the CNN's elsewhere)
    assert run_spec("cpu", "isic", arch="vit").train == ps.vit_train != run_spec("cpu", "isic").train == ps.train
    assert run_spec(profile_settings("cpu", dry_run=True), "isic", arch="vit").train.epochs == 1
    assert run_spec("smoke", "isic", arch="vit").train == profile_settings("smoke").train


def test_the_teacher_table_is_the_teacher_on_each_image_and_its_flip():
    """The distillation targets made once (the fast path) are the teacher's outputs on what the loop feeds it."""
    torch.manual_seed(0)
    teacher = build_model("resnet_mini", num_classes=10, image_size=16).eval()
    images, _ = generate_pretraining_images(300, 16, 0)  # more than one block of 256
    table = pretrain._teacher_table(teacher, images, torch.device("cpu"))
    x = pretrain._normalise(images[[3, 299]])
    with torch.no_grad():
        assert table.shape == (300, 2, 10)
        torch.testing.assert_close(table[[3, 299], 0], teacher(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(table[[3, 299], 1], teacher(x.flip(-1)), rtol=1e-5, atol=1e-5)


def test_teacher_knobs_at_their_defaults_keep_the_cached_keys(tmp_path):
    """Pretrainings cached before the teacher knobs existed are found again (their key leaves them out)."""
    s = PretrainSettings(arch="vit_mini", image_size=64, n_images=6000, epochs=16, seed=0)
    assert pretrain.pretrained_weights_path(s, tmp_path).name == "vit_mini-64px-3f133219eb2c.pth"
    # the runs that hold a pretraining in their spec keep their keys too (the cpu models cached before issue 16,
    # with that profile's data knobs, the plain ViT pretraining and the CNN's recipe for both)
    cnn, vit = run_spec("cpu", "waterbirds", seed=0), run_spec("cpu", "isic", arch="vit", seed=2)
    cnn = replace(cnn, data=replace(cnn.data, knobs=(("object_scale", 0.9),)))
    vit = replace(vit, pretrain=s, train=profile_settings("cpu").train,
                  data=replace(vit.data, knobs=(("lesion_irregularity", 0.35),)))
    assert run_dir(cnn, root=tmp_path).name == "seed0-e4921d633167"
    assert run_dir(vit, root=tmp_path).name == "seed2-251686395c5d"
    distilled = replace(s, teacher=PretrainSettings(image_size=64, n_images=6000, seed=0))
    assert run_dir(replace(vit, pretrain=distilled), root=tmp_path).name != "seed2-251686395c5d"
