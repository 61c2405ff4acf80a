"""Latent-space numbers (kNN purity, shuffled baselines, silhouettes), projections, plots, the widget's functions,
the recorded payload and the claim."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from matplotlib.colors import to_hex
from sklearn.metrics import silhouette_score

from shortcut_nb import latent
from shortcut_nb.claims import CLAIMS
from shortcut_nb.data import load_dataset
from shortcut_nb.vocab import GROUP_NAMES
from shortcut_nb.models import build_model
from shortcut_nb.widgets import latent as wlatent


def clustered(n_per_group=(30, 30, 30, 30), *, attr_sep=6.0, class_sep=12.0, d=8, seed=0):
    """Features where class moves dimension 0 and, within a class, the attribute moves dimension 1."""
    rng = np.random.default_rng(seed)
    zs, ys, as_ = [], [], []
    for g, n in enumerate(n_per_group):
        y, a = g // 2, g % 2
        z = rng.normal(size=(n, d))
        z[:, 0] += class_sep * y
        z[:, 1] += attr_sep * a
        zs.append(z)
        ys += [y] * n
        as_ += [a] * n
    return np.concatenate(zs).astype(np.float32), np.array(ys), np.array(as_)


# --------------------------------------------------------------------------- neighbourhood numbers


def test_knn_indices_match_brute_force_and_exclude_self():
    z = np.random.default_rng(1).normal(size=(30, 5)).astype(np.float32)
    got = latent.knn_indices(z, 4)
    dist = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    np.testing.assert_array_equal(got, np.argsort(dist, axis=1)[:, :4])
    dup = np.repeat(z[:5], 3, axis=0)  # every point has two exact copies
    idx = latent.knn_indices(dup, 2)
    assert idx.shape == (15, 2) and not (idx == np.arange(15)[:, None]).any()
    assert latent.knn_indices(z[:3], 10).shape == (3, 2)  # k capped at N - 1


def test_purity_scores_by_hand():
    labels = np.array([0, 0, 0, 1])
    neighbours = np.array([[1, 3], [0, 2], [0, 3], [0, 1]])
    # per sample: 1/2, 1, 1/2, 0  -> raw 0.5; balanced: mean(label 0: 2/3, label 1: 0) = 1/3
    balanced, raw = latent.purity_scores(neighbours, labels)
    assert raw == pytest.approx(0.5) and balanced == pytest.approx(1 / 3)


def test_separated_attribute_scores_high_and_random_scores_at_baseline():
    z, y, a = clustered()
    inside = y == 0
    neigh = latent.knn_indices(z[inside], 5)
    sep = latent.purity_test(neigh, a[inside], n_shuffles=100, seed=0)
    assert sep["purity"] > 0.95 and abs(sep["baseline"] - 0.5) < 0.05
    assert sep["p_value"] == pytest.approx(1 / 101) and sep["lift"] > 0.4
    rnd = latent.purity_test(latent.knn_indices(np.random.default_rng(2).normal(size=(60, 8)), 5), a[inside],
                             n_shuffles=100, seed=0)
    assert abs(rnd["lift"]) < 0.1 and rnd["p_value"] > 0.05


def test_balanced_baseline_ignores_a_95_5_imbalance():
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.05).astype(int)
    neigh = latent.knn_indices(rng.normal(size=(400, 6)), 10)
    res = latent.purity_test(neigh, labels, n_shuffles=50, seed=0)
    p1 = labels.mean()
    assert res["baseline_raw"] == pytest.approx((1 - p1) ** 2 + p1 ** 2, abs=0.03)  # raw chance is high ...
    assert res["baseline"] == pytest.approx(0.5, abs=0.05)  # ... balanced chance is one half
    assert res["purity"] == pytest.approx(res["baseline"], abs=0.1)


def test_within_class_skips_classes_with_one_attribute_and_matches_sklearn_silhouette():
    z, y, a = clustered((40, 10, 40, 0))  # class 1 has no a=1 sample (like ISIC-like training malignant)
    res = latent.within_class_neighbourhoods(z, y, a, k=5, n_shuffles=50, seed=0)
    assert res["evaluable"] == ["0"] and not res["classes"]["1"]["evaluable"]
    assert res["classes"]["1"]["reason"] == "one attribute value only"
    c0 = res["classes"]["0"]
    assert res["attribute"]["purity"] == pytest.approx(c0["purity"]) and c0["purity"] > 0.9
    assert c0["silhouette"] == pytest.approx(silhouette_score(z[y == 0], a[y == 0]), abs=1e-5)
    assert abs(c0["silhouette_baseline"]) < 0.1
    assert res["class"]["purity"] > 0.95 and res["class"]["baseline"] < 0.6
    none = latent.within_class_neighbourhoods(z[y == 1], y[y == 1], a[y == 1], k=5, n_shuffles=10)
    assert none["evaluable"] == [] and none["attribute"]["purity"] is None and none["attribute"]["p_value"] is None


def test_within_class_rejects_bad_input():
    z, y, a = clustered()
    with pytest.raises(ValueError, match="y must have shape"):
        latent.within_class_neighbourhoods(z, y[:-1], a)
    with pytest.raises(ValueError, match="NaN"):
        latent.within_class_neighbourhoods(np.full_like(z, np.nan), y, a)
    with pytest.raises(ValueError, match="k must be"):
        latent.within_class_neighbourhoods(z, y, a, k=0)
    with pytest.raises(TypeError, match="integer labels"):
        latent.within_class_neighbourhoods(z, y + 0.5, a)


# --------------------------------------------------------------------------- projections


def test_tsne_same_seed_same_picture_and_degenerate_inputs():
    z, y, a = clustered((12, 12, 12, 12))
    first = latent.project(z, method="tsne", seed=0, tsne_iter=300)
    again = latent.project(z, method="tsne", seed=0, tsne_iter=300)
    assert first.shape == (48, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    # the picture keeps the four well-separated groups as neighbourhoods
    assert latent.purity_scores(latent.knn_indices(first, 5), 2 * y + a)[1] > 0.9
    pca = latent.project(z, method="pca")
    ref = np.linalg.svd(z - z.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(pca), np.abs(ref[0][:, :2] * ref[1][:2]), rtol=1e-4, atol=1e-4)
    with pytest.warns(UserWarning, match="PCA instead"):  # a collapsed model: all features equal
        flat = latent.project(np.ones((20, 4)), method="tsne")
    np.testing.assert_array_equal(flat, np.zeros((20, 2)))
    with pytest.warns(UserWarning, match="PCA instead"):
        assert latent.project(z[:3], method="umap").shape == (3, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        latent.project(z, method="isomap")
    with pytest.raises(ValueError, match="tsne_backend"):
        latent.project(z, tsne_backend="auto")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("openTSNE"), reason="openTSNE not installed")
def test_opentsne_backend_is_deterministic():
    z, _, _ = clustered((10, 10, 10, 10))
    first = latent.project(z, method="tsne", tsne_backend="opentsne", tsne_iter=300)
    np.testing.assert_array_equal(first, latent.project(z, method="tsne", tsne_backend="opentsne", tsne_iter=300))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SHORTCUT_NB_SLOW_TESTS") != "1",
                    reason="UMAP's numba compilation takes 20-50 s per process; set SHORTCUT_NB_SLOW_TESTS=1")
def test_umap_same_seed_same_picture():
    z, _, _ = clustered((10, 10, 10, 10))
    first = latent.project(z, method="umap", seed=0)
    assert first.shape == (40, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, latent.project(z, method="umap", seed=0))


# --------------------------------------------------------------------------- source, views, widget


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

    source = latent.LatentSource(get_model, get_split, cache_dir=tmp_path / "features", progress_bar=False)
    source.calls = calls
    return source


def test_source_computes_each_thing_once_and_disk_cache_survives_a_new_session(toy_source, tmp_path):
    f1 = toy_source.features("waterbirds", "cnn", "train")
    f2 = toy_source.features("waterbirds", "cnn", "train")
    assert f1 is f2 and toy_source.calls["model"] == 1 and len(toy_source.log) == 1
    c1 = toy_source.coords("waterbirds", "cnn", "train", "pca")
    assert c1 is toy_source.coords("waterbirds", "cnn", "train", "pca") and len(toy_source.log) == 2
    fresh = latent.LatentSource(toy_source._get_model, toy_source._get_split, cache_dir=tmp_path / "features",
                                progress_bar=False)
    np.testing.assert_array_equal(fresh.coords("waterbirds", "cnn", "train", "pca"), c1)
    assert [r["from_cache"] for r in fresh.log] == [True, True]


def test_render_view_draws_each_group_with_its_colour_and_marker(toy_source):
    view = latent.LatentView("isic", "vit", "test", "pca", "group")
    fig = latent.render_view(toy_source, view)
    feats = toy_source.features("isic", "vit", "test")
    ax = fig.axes[0]
    present = [g for g in range(4) if (feats["g"] == g).any()]
    assert len(ax.collections) == len(present)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(f"{GROUP_NAMES['isic'][g]} (n={int((feats['g'] == g).sum())})" for g in present)
    by_label = {c.get_label().split(" (n=")[0]: to_hex(c.get_facecolor()[0]) for c in ax.collections}
    for g in present:
        assert by_label[GROUP_NAMES["isic"][g]] == latent.GROUP_COLOURS[g]
    fig2 = latent.render_view(toy_source, latent.LatentView("isic", "vit", "test", "pca", "attribute"))
    colours = {to_hex(c.get_facecolor()[0]) for c in fig2.axes[0].collections}
    assert colours <= set(latent.ATTRIBUTE_COLOURS)
    with pytest.raises(ValueError, match="colour_by"):
        latent.render_view(toy_source, latent.LatentView("isic", "vit", "test", "pca", "rainbow"))
    with pytest.raises(ValueError, match="dataset"):
        latent.render_view(toy_source, latent.LatentView("celeba", "vit", "test", "pca", "group"))


def test_widget_functions_and_explorer_redraw_from_caches(toy_source, capsys):
    view = wlatent.view_from_values(toy_source, {"arch": "cnn", "dataset": "waterbirds", "split": "val",
                                                 "projection": "pca", "colour_by": "class"})
    assert view == latent.LatentView("waterbirds", "cnn", "val", "pca", "class")
    with pytest.raises(ValueError, match="unknown widget field"):
        wlatent.view_from_values(toy_source, {"model": "cnn"})
    with pytest.raises(ValueError, match="split"):
        wlatent.view_from_values(toy_source, {"split": "holdout"})
    assert len(wlatent.draw(toy_source, view).axes[0].collections) >= 2
    box = wlatent.latent_explorer(toy_source, initial=view)
    n_features = sum(r["what"] == "features" for r in toy_source.log)
    n_projections = sum(r["what"] == "projection" for r in toy_source.log)
    box.controls["colour_by"].value = "group"  # recolouring: nothing recomputed
    box.controls["colour_by"].value = "attribute"
    assert sum(r["what"] == "features" for r in toy_source.log) == n_features
    assert sum(r["what"] == "projection" for r in toy_source.log) == n_projections
    box.controls["arch"].value = "vit"  # a new model: one extraction, one projection
    assert sum(r["what"] == "features" for r in toy_source.log) == n_features + 1
    assert sum(r["what"] == "projection" for r in toy_source.log) == n_projections + 1
    assert "could not draw" not in capsys.readouterr().out  # every callback drew its view
    assert box.caption.value == "<b>ViT · Waterbirds-like · val · PCA · colour: attribute</b>"
    box.controls["split"].value = "test"
    toy_source._get_split = lambda dataset, split: (_ for _ in ()).throw(OSError("disk gone"))
    box.controls["dataset"].value = "isic"  # a failing view is reported in the widget, not raised
    assert "could not draw this view: OSError: disk gone" in capsys.readouterr().out


def test_explorer_caption_carries_the_views_measured_purity(toy_source):
    results = latent.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"],
                                            k=5, n_shuffles=20)
    att = results["waterbirds/cnn/train"]["attribute"]
    view = latent.LatentView("waterbirds", "cnn", "train", "pca", "group")
    assert wlatent.caption(view, results) == (
        f"CNN · Waterbirds-like · train · PCA · colour: group — within-class attribute purity {att['purity']:.2f} "
        f"(shuffled {att['baseline']:.2f})")
    other = latent.LatentView("waterbirds", "cnn", "test", "pca", "group")
    assert wlatent.caption(other, results).endswith("not computed for this split")
    box = wlatent.latent_explorer(toy_source, initial=view, results=results)
    assert f"purity {att['purity']:.2f}" in box.caption.value
    assert f"purity {att['purity']:.2f}" in wlatent.draw(toy_source, view, results).axes[0].get_title()
    box.controls["split"].value = "test"
    assert "not computed for this split" in box.caption.value


def test_notebook_flow_payload_takeaways_and_claim(toy_source):
    results = latent.neighbourhood_analysis(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"],
                                            splits=["train"], k=5, n_shuffles=20)
    assert set(results) == {"waterbirds/cnn/train", "isic/cnn/train"}
    frame = latent.neighbourhood_frame(results)
    assert list(frame["split"]) == ["train", "train"] and frame["attr. purity"].between(0, 1).all()
    fig = latent.plot_fig3(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"], projection="pca",
                           results=results)
    assert len(fig.axes) == 2 and "purity" in fig.axes[0].get_title()
    assert latent.plot_purity(results).axes[0].get_ylim()[1] > 1.0
    rec = latent.record_payload(results, toy_source, profile="smoke", seconds=1.0)
    json.dumps(rec, allow_nan=False)  # strict JSON: no NaN
    assert rec["features"]["n_extracted"] + rec["features"]["n_from_cache"] == rec["features"]["n_requested"] == 2
    assert rec["headline"] == "waterbirds/cnn/train" and rec["purity"] == results["waterbirds/cnn/train"]["attribute"]["purity"]
    assert "within-class attribute purity" in latent.takeaways(rec)
    check = next(c for c in CLAIMS if c.id == "latent.within_class").check
    ours, _ = check(rec)
    assert "waterbirds/cnn" in ours and "isic/cnn" in ours

    def with_lift(lift, p):
        fake = json.loads(json.dumps(rec))
        for r in fake["neighbourhoods"].values():
            r["attribute"].update({"purity": 0.5 + lift, "baseline": 0.5, "lift": lift, "p_value": p})
        return fake

    assert check(with_lift(0.3, 0.005))[1] is True
    assert check(with_lift(0.02, 0.005))[1] is False  # significant but tiny
    assert check(with_lift(0.3, 0.2))[1] is False  # large but within shuffle noise
    empty = with_lift(0.3, 0.005)
    for r in empty["neighbourhoods"].values():
        r["attribute"]["purity"] = None
    assert check(empty)[1] is False


def test_default_projections_by_profile():
    assert latent.default_projections("smoke") == ("tsne",)
    assert latent.default_projections("cpu") == ("tsne", "umap")
    with pytest.raises(ValueError, match="profile"):
        latent.default_projections("laptop")
