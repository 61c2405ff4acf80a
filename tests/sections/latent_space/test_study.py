"""Notebook 02's study: the source computes each thing once, caches survive a session, the Context routes real
data folders, and the neighbourhood analysis covers every requested model/dataset/split."""
from __future__ import annotations

import numpy as np
import pytest

from shortcut_nb.data import ISICLikeSettings
from shortcut_nb.data import ensure_synthetic
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.latent_space import study


def test_source_computes_each_thing_once_and_disk_cache_survives_a_new_session(toy_source, tmp_path):
    f1 = toy_source.features("waterbirds", "cnn", "train")
    f2 = toy_source.features("waterbirds", "cnn", "train")
    assert f1 is f2 and toy_source.calls["model"] == 1 and len(toy_source.log) == 1
    c1 = toy_source.coords("waterbirds", "cnn", "train", "pca")
    assert c1 is toy_source.coords("waterbirds", "cnn", "train", "pca") and len(toy_source.log) == 2
    fresh = study.LatentSource(toy_source.get_model, toy_source.get_split, cache_dir=tmp_path / "features",
                               progress_bar=False)
    np.testing.assert_array_equal(fresh.coords("waterbirds", "cnn", "train", "pca"), c1)
    assert [r["from_cache"] for r in fresh.log] == [True, True]


def test_projection_cache_key_is_the_feature_key_plus_method_seed_params_and_library(toy_source):
    feats = toy_source.features("isic", "cnn", "train")
    coords, info = study.projection_of(feats, method="pca", seed=3)
    assert not info["from_cache"] and info["path"].startswith(feats["path"].rsplit(".", 1)[0] + ".pca-")
    again, info2 = study.projection_of(feats, method="pca", seed=3)
    assert info2["from_cache"] and info2["path"] == info["path"]
    np.testing.assert_array_equal(again, coords)
    assert study.projection_of(feats, method="pca", seed=4)[1]["path"] != info["path"]
    assert study.projection_of(feats, method="pca", cache=False)[1]["path"] is None


def test_picture_checks_the_view(toy_source):
    picture = toy_source.picture(study.LatentView("isic", "vit", "test", "pca", "group"))
    feats = toy_source.features("isic", "vit", "test")
    assert picture.coords.shape == (len(feats["z"]), 2) and picture.model == getattr(
        toy_source.model("isic", "vit"), "name", "vit")
    np.testing.assert_array_equal(picture.y, feats["y"])
    with pytest.raises(ValueError, match="colour_by"):
        toy_source.picture(study.LatentView("isic", "vit", "test", "pca", "rainbow"))
    with pytest.raises(ValueError, match="dataset"):
        toy_source.picture(study.LatentView("celeba", "vit", "test", "pca", "group"))
    with pytest.raises(TypeError, match="LatentView"):
        toy_source.check(("isic", "vit"))


def test_neighbourhood_analysis_and_extract_all(toy_source):
    rows = study.extract_all(toy_source, datasets=["waterbirds"], archs=["cnn", "vit"], splits=["train", "test"])
    assert [(r["arch"], r["split"]) for r in rows] == [("cnn", "train"), ("cnn", "test"), ("vit", "train"),
                                                      ("vit", "test")]
    assert study.extract_all(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"]) == []  # in memory
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"],
                                           splits=["train"], k=5, n_shuffles=20)
    assert set(results) == {"waterbirds/cnn/train", "isic/cnn/train"}
    r = results["isic/cnn/train"]
    assert (r["dataset"], r["arch"], r["split"], r["k"], r["n_shuffles"]) == ("isic", "cnn", "train", 5, 20)
    view = study.LatentView("isic", "cnn", "train")
    assert study.view_results(results, view) is r and study.view_results(None, view) is None
    with pytest.raises(ValueError, match="split"):
        study.neighbourhood_analysis(toy_source, datasets=["isic"], archs=["cnn"], splits=["holdout"])
    pictures = study.fig3_pictures(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"], projection="pca")
    assert [[p.view.dataset for p in row] for row in pictures] == [["waterbirds"], ["isic"]]


def test_default_projections_by_profile():
    assert study.default_projections("smoke") == ("tsne",)
    assert study.default_projections("cpu") == ("tsne", "umap")
    with pytest.raises(ValueError, match="profile"):
        study.default_projections("laptop")


def test_source_from_context_reads_splits_from_the_notebooks_real_data_folder(tmp_path, monkeypatch):
    real = ensure_synthetic("isic", ISICLikeSettings(image_size=8, n_train=24, n_val=8, n_test=8, seed=3),
                            root=tmp_path / "elsewhere")
    ctx = Context.build("smoke", root=tmp_path / "runs", folders={"isic": real}, progress=False)
    source = study.LatentSource.from_context(ctx, datasets=["isic"], archs=["cnn"])
    train = source.split("isic", "train")
    assert len(train) == 24  # the folder's 24 training rows, not the smoke profile's synthetic set
    assert not (tmp_path / "runs" / "data").exists()  # nothing generated
    assert source.cache_dir == ctx.root / "features" and source.progress_bar is False
    seen = []

    def spy(self, spec):
        seen.append((spec.data.name, spec.data.folder))
        raise LookupError("routed")

    monkeypatch.setattr(Context, "train_or_load", spy)
    with pytest.raises(LookupError, match="routed"):
        source.model("isic", "cnn")
    assert seen == [("isic", str(real))]  # the model's run spec names the real folder too


def test_seed_neighbourhoods_reuse_the_notebooks_own_and_measure_every_other_seed(monkeypatch, toy_source, tmp_path):
    """Every profile seed gets a row per model on the claim split; the notebook's own seed reuses its results, the
    others are measured on that seed's source (here the toy's, so the purities equal and the shuffles differ)."""
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    built = []
    monkeypatch.setattr(study.LatentSource, "from_context",
                        classmethod(lambda cls, c, **kw: built.append(kw["seed"]) or toy_source))
    own = study.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"], k=5,
                                       n_shuffles=20, seed=1)
    out = study.seed_neighbourhoods(ctx, own, datasets=["waterbirds"], archs=["cnn"], k=5, n_shuffles=20, seed=1)
    rows = out["waterbirds/cnn/train"]
    assert [r["seed"] for r in rows] == [1, 0, 2, 3, 4] and built == [0, 2, 3, 4]
    assert set(rows[0]) == set(study.SEED_KEYS)
    assert rows[0]["lift"] == own["waterbirds/cnn/train"]["attribute"]["lift"]
    assert rows[1]["purity"] == rows[0]["purity"]  # the same toy model: the same neighbourhoods
    # each seed's own bootstrap of the lift over the images, resampled with that seed
    assert rows[0]["lift_interval"] == own["waterbirds/cnn/train"]["attribute"]["lift_interval"]
    assert rows[1]["lift_interval"] != rows[0]["lift_interval"] and len(rows[1]["lift_interval"]) == 2


def test_planned_runs_name_every_seeds_models(tmp_path):
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    runs = study.planned_runs(ctx, {"SEED": 2, "DATASETS": ["isic"]})
    assert [(r.seed, r.model) for r in runs] == [(s, m) for s in (2, 0, 1, 3, 4) for m in (ctx.settings.cnn, ctx.settings.vit)]
