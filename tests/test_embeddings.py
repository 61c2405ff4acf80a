"""The embeddings core: kNN purity, shuffled baselines, silhouettes and 2-D projections on arrays."""
from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from shortcut_nb import embeddings as emb


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
    got = emb.knn_indices(z, 4)
    dist = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    np.testing.assert_array_equal(got, np.argsort(dist, axis=1)[:, :4])
    dup = np.repeat(z[:5], 3, axis=0)  # every point has two exact copies
    idx = emb.knn_indices(dup, 2)
    assert idx.shape == (15, 2) and not (idx == np.arange(15)[:, None]).any()
    assert emb.knn_indices(z[:3], 10).shape == (3, 2)  # k capped at N - 1


def test_purity_scores_by_hand():
    labels = np.array([0, 0, 0, 1])
    neighbours = np.array([[1, 3], [0, 2], [0, 3], [0, 1]])
    # per sample: 1/2, 1, 1/2, 0  -> raw 0.5; balanced: mean(label 0: 2/3, label 1: 0) = 1/3
    balanced, raw = emb.purity_scores(neighbours, labels)
    assert raw == pytest.approx(0.5) and balanced == pytest.approx(1 / 3)


def test_separated_attribute_scores_high_and_random_scores_at_baseline():
    z, y, a = clustered()
    inside = y == 0
    neigh = emb.knn_indices(z[inside], 5)
    sep = emb.purity_test(neigh, a[inside], n_shuffles=100, seed=0)
    assert sep["purity"] > 0.95 and abs(sep["baseline"] - 0.5) < 0.05
    assert sep["p_value"] == pytest.approx(1 / 101) and sep["lift"] > 0.4
    rnd = emb.purity_test(emb.knn_indices(np.random.default_rng(2).normal(size=(60, 8)), 5), a[inside],
                             n_shuffles=100, seed=0)
    assert abs(rnd["lift"]) < 0.1 and rnd["p_value"] > 0.05


def test_balanced_baseline_ignores_a_95_5_imbalance():
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.05).astype(int)
    neigh = emb.knn_indices(rng.normal(size=(400, 6)), 10)
    res = emb.purity_test(neigh, labels, n_shuffles=50, seed=0)
    p1 = labels.mean()
    assert res["baseline_raw"] == pytest.approx((1 - p1) ** 2 + p1 ** 2, abs=0.03)  # raw chance is high ...
    assert res["baseline"] == pytest.approx(0.5, abs=0.05)  # ... balanced chance is one half
    assert res["purity"] == pytest.approx(res["baseline"], abs=0.1)


def test_within_class_skips_classes_with_one_attribute_and_matches_sklearn_silhouette():
    z, y, a = clustered((40, 10, 40, 0))  # class 1 has no a=1 sample (like ISIC-like training malignant)
    res = emb.within_class_neighbourhoods(z, y, a, k=5, n_shuffles=50, seed=0)
    assert res["evaluable"] == ["0"] and not res["classes"]["1"]["evaluable"]
    assert res["classes"]["1"]["reason"] == "one attribute value only"
    c0 = res["classes"]["0"]
    assert res["attribute"]["purity"] == pytest.approx(c0["purity"]) and c0["purity"] > 0.9
    assert c0["silhouette"] == pytest.approx(silhouette_score(z[y == 0], a[y == 0]), abs=1e-5)
    assert abs(c0["silhouette_baseline"]) < 0.1
    assert res["class"]["purity"] > 0.95 and res["class"]["baseline"] < 0.6
    none = emb.within_class_neighbourhoods(z[y == 1], y[y == 1], a[y == 1], k=5, n_shuffles=10)
    assert none["evaluable"] == [] and none["attribute"]["purity"] is None and none["attribute"]["p_value"] is None


def _lift_by_loop(neighbours, labels, *, n_shuffles, seed, n_boot, boot_seed):
    """The lift on each resample, one resample at a time: the drawn samples' own neighbour shares (observed, and
    under each of purity_test's permutations), averaged per value then over values; the draws are bootstrap_means'
    (multinomial counts per value of ``labels``, seeded ``[boot_seed, stratum]``)."""
    values = np.unique(labels)
    rng_perm = np.random.default_rng(seed)
    perms = [rng_perm.permutation(labels) for _ in range(n_shuffles)]
    share = lambda lab: np.array([np.mean(lab[neighbours[i]] == lab[i]) for i in range(len(lab))])  # noqa: E731
    observed, shuffled = share(labels), [share(p) for p in perms]
    strata = [np.flatnonzero(labels == v) for v in values]
    draws = [np.random.default_rng([boot_seed, s]).multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=n_boot)
             for s, idx in enumerate(strata)]
    out = []
    for b in range(n_boot):
        picks = np.concatenate([np.repeat(idx, d[b]) for idx, d in zip(strata, draws)])
        purity = np.mean([observed[picks][labels[picks] == v].mean() for v in values])
        base = [np.mean([q[picks][p[picks] == v].mean() for v in values]) for q, p in zip(shuffled, perms)
                if all((p[picks] == v).any() for v in values)]
        out.append(purity - np.mean(base))
    return np.array(out)


def test_lift_resamples_match_an_explicit_resample_loop():
    z, _, a = clustered((12, 5, 0, 0), attr_sep=1.5)
    neigh = emb.knn_indices(z, 4)
    got = emb.lift_resamples(neigh, a, n_shuffles=7, seed=3, n_boot=40, boot_seed=5)
    want = _lift_by_loop(neigh, a, n_shuffles=7, seed=3, n_boot=40, boot_seed=5)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.std() > 0  # the loop and the draws really vary


def test_lift_interval_is_zero_width_when_every_neighbourhood_is_the_same():
    # every sample's neighbours are all the others: each sample's share of its own value is fixed by the value
    # counts, for the observed labels and every permutation alike, so every resample's lift is exactly 0
    labels = np.array([0] * 9 + [1] * 4)
    neigh = np.array([[j for j in range(13) if j != i] for i in range(13)])
    draws = emb.lift_resamples(neigh, labels, n_shuffles=20, n_boot=50)
    np.testing.assert_allclose(draws, 0.0, atol=1e-12)
    assert emb.purity_test(neigh, labels, n_shuffles=20)["lift"] == pytest.approx(0.0, abs=1e-12)


def test_within_class_records_the_lift_interval_around_the_lift():
    z, y, a = clustered((40, 12, 40, 0), attr_sep=2.0)
    res = emb.within_class_neighbourhoods(z, y, a, k=5, n_shuffles=30, seed=0, n_boot=300)
    att, c0 = res["attribute"], res["classes"]["0"]
    low, high = att["lift_interval"]
    assert low < att["lift"] < high and low > 0  # separated by the attribute: the whole interval above 0
    assert c0["lift_interval"] == pytest.approx(att["lift_interval"])  # one evaluable class: the aggregate is it
    assert "lift_interval" not in res["classes"]["1"]  # one attribute value: nothing to resample
    mixed = emb.within_class_neighbourhoods(np.random.default_rng(4).normal(size=(92, 8)), y, a, k=5, n_shuffles=30,
                                            n_boot=300)
    m_low, m_high = mixed["attribute"]["lift_interval"]
    assert m_low < 0 < m_high and m_high - m_low < 0.4  # neighbourhoods that ignore the attribute: 0 covered
    none = emb.within_class_neighbourhoods(z[y == 1], y[y == 1], a[y == 1], k=5, n_shuffles=10, n_boot=10)
    assert none["attribute"]["lift_interval"] is None
    with pytest.raises(ValueError, match="n_boot must be"):
        emb.within_class_neighbourhoods(z, y, a, n_boot=0)


def test_within_class_rejects_bad_input():
    z, y, a = clustered()
    with pytest.raises(ValueError, match="y must have shape"):
        emb.within_class_neighbourhoods(z, y[:-1], a)
    with pytest.raises(ValueError, match="NaN"):
        emb.within_class_neighbourhoods(np.full_like(z, np.nan), y, a)
    with pytest.raises(ValueError, match="k must be"):
        emb.within_class_neighbourhoods(z, y, a, k=0)
    with pytest.raises(TypeError, match="integer labels"):
        emb.within_class_neighbourhoods(z, y + 0.5, a)


# --------------------------------------------------------------------------- projections


def test_tsne_same_seed_same_picture_and_degenerate_inputs():
    z, y, a = clustered((12, 12, 12, 12))
    first = emb.project(z, method="tsne", seed=0, tsne_iter=300)
    again = emb.project(z, method="tsne", seed=0, tsne_iter=300)
    assert first.shape == (48, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    # the picture keeps the four well-separated groups as neighbourhoods
    assert emb.purity_scores(emb.knn_indices(first, 5), 2 * y + a)[1] > 0.9
    pca = emb.project(z, method="pca")
    ref = np.linalg.svd(z - z.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(pca), np.abs(ref[0][:, :2] * ref[1][:2]), rtol=1e-4, atol=1e-4)
    with pytest.warns(UserWarning, match="PCA instead"):  # a collapsed model: all features equal
        flat = emb.project(np.ones((20, 4)), method="tsne")
    np.testing.assert_array_equal(flat, np.zeros((20, 2)))
    with pytest.warns(UserWarning, match="PCA instead"):
        assert emb.project(z[:3], method="umap").shape == (3, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        emb.project(z, method="isomap")
    with pytest.raises(ValueError, match="tsne_backend"):
        emb.project(z, tsne_backend="auto")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("openTSNE"), reason="openTSNE not installed")
def test_opentsne_backend_is_deterministic():
    z, _, _ = clustered((10, 10, 10, 10))
    first = emb.project(z, method="tsne", tsne_backend="opentsne", tsne_iter=300)
    np.testing.assert_array_equal(first, emb.project(z, method="tsne", tsne_backend="opentsne", tsne_iter=300))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SHORTCUT_NB_SLOW_TESTS") != "1",
                    reason="UMAP's numba compilation takes 20-50 s per process; set SHORTCUT_NB_SLOW_TESTS=1")
def test_umap_same_seed_same_picture():
    z, _, _ = clustered((10, 10, 10, 10))
    first = emb.project(z, method="umap", seed=0)
    assert first.shape == (40, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, emb.project(z, method="umap", seed=0))
