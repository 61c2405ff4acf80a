"""Cached mask runs: recipes, the labels-only view, the cache key (run and recipe), stale weights, the lock,
the run log, progress."""
from __future__ import annotations

import copy
import threading
import time

import pytest
import torch

from shortcut_nb.artifacts import stable_key, weights_hash
from shortcut_nb.pipeline import mask_runs as M
from shortcut_nb.pipeline.context import Context
from shortcut_nb.pipeline.runs import run_dir
from shortcut_nb.progress import PLAIN_ENV


def test_recipe_validation_names_the_argument():
    with pytest.raises(ValueError, match="objective"):
        M.MaskRecipe(objective="dfr")
    with pytest.raises(ValueError, match="keep_fraction"):
        M.MaskRecipe(keep_fraction=1.5)
    with pytest.raises(ValueError, match="steps"):
        M.MaskRecipe(steps=0)
    with pytest.raises(ValueError, match="data_split"):
        M.MaskRecipe(data_split="test")
    with pytest.raises(ValueError, match="keep_fraction"):
        M.MaskRecipe(keep_fraction=None, removed_groups=(0,))


def test_profile_recipes_overrides():
    r = M.profile_recipes("cpu", steps=7, keep_grid=[0.9, 0.8])
    assert r.prusc.steps == 7 and r.removal.steps == 7 and r.keep_grid == (0.9, 0.8)
    assert r.prusc.objective == "prusc" and r.prusc.data_split == "val" and r.prusc.keep_fraction == M.PRUSC_KEEP
    assert r.removal.objective == "ce" and r.removal.keep_fraction == 0.8 and r.removal.data_split == "train"
    with pytest.raises(ValueError, match="keep_grid"):
        M.profile_recipes("cpu", keep_grid=[0.0])
    with pytest.raises(ValueError, match="profile"):
        M.profile_recipes("gpu")


def test_labels_only_hides_groups():
    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": torch.full((3, 4, 4), float(i)), "y": torch.tensor(i % 2), "g": torch.tensor(3),
                    "a": torch.tensor(1), "mask": torch.ones(4, 4, dtype=torch.bool)}

    view = M.LabelsOnly(DS())
    assert len(view) == 3
    item = view[2]
    assert set(item) == {"image", "y"} and float(item["image"][0, 0, 0]) == 2.0 and int(item["y"]) == 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from shortcut_nb.data import ISICLikeSettings, generate_isic_like

    root = tmp_path_factory.mktemp("masks")
    folder = generate_isic_like(root / "isic", ISICLikeSettings(image_size=16, n_train=64, n_val=16, n_test=16, seed=3))
    ctx = Context.build("smoke", root=root / "runs", folders={"isic": folder}, progress=False)
    spec = ctx.run_spec("isic")
    model, _ = ctx.train_or_load(spec)
    return ctx, spec, model


def test_mask_path_keys_the_run_and_the_recipe(tiny_run):
    """The key needs no checkpoint (a sweep plans masks before their model exists): the run's folder and the recipe."""
    ctx, spec, _ = tiny_run
    recipe = M.MaskRecipe(objective="prusc", keep_fraction=0.52, steps=2, batch_size=16, data_split="val")
    path = M.mask_path(ctx.root, spec, recipe)
    key = stable_key(run_dir(spec, root=ctx.root).relative_to(ctx.root).as_posix(), recipe)
    assert path == ctx.root / "masks" / "smoke" / "isic" / spec.model / f"prusc-keep0.52-{key}.pt"
    assert M.mask_path(ctx.root, ctx.run_spec("isic", seed=7), recipe) != path  # another run, another mask
    assert M.mask_path(ctx.root, spec, M.MaskRecipe(keep_fraction=0.6, removed_groups=(0,))).name.startswith(
        "mask-without0-keep0.6-")
    with pytest.raises(TypeError, match="MaskRecipe"):
        M.mask_path(ctx.root, spec, {"steps": 2})


def test_masks_are_cached_by_run_recipe_and_weights(tiny_run):
    ctx, spec, model = tiny_run
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = M.MaskRecipe(objective="ce", keep_fraction=0.7, steps=2, batch_size=8, removed_groups=(0,))
    log = ctx.run_log.as_record()
    m1, i1 = M.train_or_load_mask(ctx, model, spec, recipe)
    assert not i1["loaded"] and i1["steps"] == 2 and i1["train_seconds"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "frozen weights unchanged"
    assert abs(m1.keep_fraction() - 0.7) <= 0.02 and m1.settings["removed_groups"] == "0"
    assert m1.settings["model_weights"] == weights_hash(model)
    m2, i2 = M.train_or_load_mask(ctx, model, spec, recipe)
    assert i2["loaded"] and i2["path"] == i1["path"] and i2["train_seconds"] == i1["train_seconds"]
    assert all(torch.equal(m1.masks()[n], m2.masks()[n]) for n in m1.masks())
    assert ctx.run_log.as_record() == {"trained": log["trained"] + 1, "loaded": log["loaded"] + 1}
    # the same run retrained to other weights: the stale mask is not loaded, a new one replaces it
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    m3, i3 = M.ensure_mask(M.MaskRun(spec, recipe), other, root=ctx.root)
    assert not i3["loaded"] and i3["path"] == i1["path"]
    assert M.MaskResult.load(i1["path"]).settings["model_weights"] == weights_hash(other) != weights_hash(model)
    with pytest.raises(TypeError, match="MaskRecipe"):
        M.train_or_load_mask(ctx, model, spec, {"steps": 2})


def test_two_requests_for_one_mask_train_it_once(tiny_run, monkeypatch):
    """Two callers at once (threads here; each opens its own lock file description, as two processes do)."""
    ctx, spec, model = tiny_run
    trained = []
    real_train = M._train

    def slow_train(*args, **kwargs):
        trained.append(1)
        time.sleep(0.5)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(M, "_train", slow_train)
    run = M.MaskRun(spec, M.MaskRecipe(objective="ce", keep_fraction=0.6, steps=2, batch_size=8, seed=11))
    results = []
    threads = [threading.Thread(target=lambda: results.append(M.ensure_mask(run, model, root=ctx.root)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trained) == 1 and sorted(info["loaded"] for _, info in results) == [False, True]
    (a, _), (b, _) = results
    assert all(torch.equal(a.masks()[n], b.masks()[n]) for n in a.masks())


def test_headless_mask_progress_does_not_write_a_line_per_step(tiny_run, monkeypatch, capsys):
    """Under papermill/CI (plain progress) the bar redraws at most every 10 s, postfix updates included."""
    ctx, spec, model = tiny_run
    monkeypatch.setenv(PLAIN_ENV, "1")
    loud = Context(settings=ctx.settings, root=ctx.root, folders=ctx.folders, progress=True)
    M.train_or_load_mask(loud, model, spec, M.MaskRecipe(keep_fraction=0.8, steps=40, batch_size=8, lr=0.1))
    err = capsys.readouterr().err
    redraws = err.count("\r")
    assert "mask (ce)" in err and redraws <= 6, f"{redraws} redraws for 40 steps"
