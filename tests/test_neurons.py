"""Notebook 03's package module: s-score samples, the α grid, Table 4 on cached features, figures, payload, claims,
and the widget's functions."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from shortcut_nb import neurons as N
from shortcut_nb import sscore
from shortcut_nb.bands import band_counts, select_neurons
from shortcut_nb.config import seed_everything
from shortcut_nb.lastlayer.dfr import refit_last_layer, zero_neurons
from shortcut_nb.metrics import summarize

SIZE = 16


def _features(n_per_group: int, d: int, seed: int) -> N.Features:
    """Features whose first neurons follow the class, the next the attribute, the rest noise; all 4 groups."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), n_per_group)
    y, a = g // 2, g % 2
    z = rng.normal(size=(len(g), d)).astype(np.float32)
    z[:, :4] += 1.5 * y[:, None]
    z[:, 4:8] += 2.0 * a[:, None]
    return N.Features(z=z, y=y.astype(np.int64), g=g.astype(np.int64))


@pytest.fixture(scope="module")
def model():
    from shortcut_nb.models import build_model

    seed_everything(0)
    return build_model("resnet_mini", image_size=SIZE).eval()


@pytest.fixture(scope="module")
def samples():
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(6, 3, SIZE, SIZE, generator=gen)
    masks = torch.zeros(6, SIZE, SIZE, dtype=torch.bool)
    masks[:, :, : SIZE // 2] = True  # left half spurious
    masks[3] = False
    masks[3, 2:6, 2:6] = True  # a small patch on one sample
    return images, masks


@pytest.fixture(scope="module")
def study(model, samples):
    images, masks = samples
    d = model.head.in_features
    return N.build_study(dataset="isic", model=model, images=images, masks=masks, sample_index=np.arange(6) * 3,
                         test=_features(12, d, 1), val=_features(10, d, 2), train_group_counts=[50, 40, 10, 0],
                         alphas=N.alpha_grid(0.33))


# --------------------------------------------------------------------------- samples


def test_nonempty_mask_samples_skips_empty_masks_and_is_seeded():
    items = []
    for i in range(12):
        mask = torch.zeros(4, 4, dtype=torch.bool)
        if i % 3 == 0:
            mask[1, 1] = True
        items.append({"image": torch.full((3, 4, 4), float(i)), "mask": mask if i != 6 else None})
    images, masks, idx = N.nonempty_mask_samples(items, 2, seed=5)
    assert len(idx) == 2 and all(i % 3 == 0 and i != 6 for i in idx)
    assert all(bool(m.any()) for m in masks)
    assert torch.equal(images[:, 0, 0, 0], torch.tensor([float(i) for i in idx]))
    again = N.nonempty_mask_samples(items, 2, seed=5)[2]
    assert np.array_equal(idx, again)
    _, _, every = N.nonempty_mask_samples(items, 50, seed=0)  # fewer exist than asked: all of them
    assert sorted(every.tolist()) == [0, 3, 9]
    with pytest.raises(ValueError, match="no item with a non-empty"):
        N.nonempty_mask_samples([{"image": torch.zeros(3, 4, 4), "mask": torch.zeros(4, 4)}], 1, seed=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        N.nonempty_mask_samples(items, 0, seed=0)


# --------------------------------------------------------------------------- the alpha grid


def test_grid_scores_equal_per_sample_scores_at_every_alpha():
    gen = torch.Generator().manual_seed(0)
    cams = torch.rand(3, 5, 8, 8, generator=gen)
    alphas = N.alpha_grid(0.33)
    cams[0, 0] = 0.0  # focuses nowhere above any alpha > 0: scores 0
    cams[1, 1, :4] = float(np.float32(0.5))  # pixels exactly at a threshold count as >= alpha
    cams[2, 2] = float(np.float32(0.05))
    masks = torch.rand(3, 8, 8, generator=gen) > 0.6
    got = N.grid_scores(cams, masks, alphas)
    ref = torch.stack([sscore.per_sample_scores(cams, masks, a) for a in alphas], dim=-1)
    assert got.shape == (3, 5, len(alphas))
    assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="increasing"):
        N.grid_scores(cams, masks, [0.5, 0.3])
    with pytest.raises(ValueError, match="masks must have shape"):
        N.grid_scores(cams, masks[:, :4], alphas)


def test_alpha_grid_adds_the_chosen_alpha():
    grid = N.alpha_grid(0.33, 0.5)
    assert 0.33 in grid and grid == tuple(sorted(grid)) and len(grid) == len(N.ALPHA_GRID) + 1


def test_score_grid_matches_s_scores_across_chunks(model, samples):
    images, masks = samples
    alphas = (0.2, 0.5, 0.8)
    chunked = N.score_grid(model, images, masks, alphas, budget_bytes=6 * SIZE * SIZE * 4 * 100)  # 100 per chunk
    assert chunked.shape == (3, 6, model.head.in_features)
    for a, alpha in enumerate(alphas):
        ref = sscore.s_scores(model, images, masks, alpha=alpha, reduction="none").numpy()
        np.testing.assert_array_equal(chunked[a], ref)


def test_per_sample_scores_follow_the_paper_definition_with_pytorch_grad_cam(model, samples):
    images, masks = samples
    neuron, alpha = 7, 0.5
    grid = N.score_grid(model, images, masks, (alpha,))
    maps = sscore.reference_cams(model, images, [neuron])[:, 0]  # pytorch-grad-cam
    assert not (np.abs(maps - alpha) < 1e-5).any(), "a pixel sits on the threshold: pick another neuron"
    m = masks.numpy()
    b = maps >= np.float32(alpha)
    ref = np.where(b.sum((1, 2)) > 0, (b & m).sum((1, 2)) / np.maximum(b.sum((1, 2)), 1), 0.0)
    np.testing.assert_allclose(grid[0, :, neuron], ref, atol=1e-6)


# --------------------------------------------------------------------------- the study


def test_study_scores_are_lookups_on_the_grid(study, samples):
    _, masks = samples
    assert study.d == 256 and study.n_samples == 6
    assert study.area == pytest.approx(masks.float().mean((1, 2)).mean().item())
    s = study.scores(0.33)
    np.testing.assert_allclose(s, study.per_sample[study.alpha_index(0.33)].mean(0), rtol=1e-6)
    assert study.alpha_index(0.1 + 0.2) == study.alpha_index(0.3)  # slider rounding
    with pytest.raises(ValueError, match="precomputed thresholds"):
        study.scores(0.31)
    assert np.all((s >= 0) & (s <= 1))


def test_neuron_heatmaps_equal_neuron_cams(study):
    ref = sscore.neuron_cams(study.model, study.images[[0, 2]], neurons=[9])[:, 0].numpy()
    np.testing.assert_array_equal(N.neuron_heatmaps(study, 9, [0, 2]), ref)  # from the shown-samples cache
    ref5 = sscore.neuron_cams(study.model, study.images[[5]], neurons=[9])[:, 0].numpy()
    np.testing.assert_array_equal(N.neuron_heatmaps(study, 9, [5]), ref5)  # outside it: one neuron's pass
    # the figure's per-sample scores come from the same maps
    b = N.neuron_heatmaps(study, 9, [0])[0] >= np.float32(0.5)
    m = study.masks[0].numpy()
    expected = (b & m).sum() / b.sum() if b.sum() else 0.0
    assert study.per_sample_at(0.5)[0, 9] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="neuron must lie"):
        N.neuron_heatmaps(study, 999, [0])


# --------------------------------------------------------------------------- Table 4


def test_head_summary_equals_running_the_model(model, samples):
    images, _ = samples
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    g = 2 * y + torch.tensor([0, 0, 1, 1, 1, 0])
    with torch.no_grad():
        z = model.f_enc(images)
        pred = model(images).argmax(1)
    feats = N.Features(z.numpy(), y.numpy(), g.numpy())
    got = N.head_summary(model.head, feats)
    ref = summarize(pred.numpy(), y.numpy(), g.numpy())
    assert got["groups"] == ref["groups"] and got["avg"] == ref["avg"] and got["wga"] == ref["wga"]
    with pytest.raises(ValueError, match="features must have shape"):
        N.head_summary(model.head, N.Features(z.numpy()[:, :5], y.numpy(), g.numpy()))


def test_prune_and_refit_builds_the_four_table4_heads():
    d = 16
    test, val = _features(20, d, 1), _features(15, d, 2)
    head = refit_last_layer(test.z, test.y, test.g, seed=3, balanced=False)  # a head that uses every neuron
    scores = np.linspace(0, 0.9, d)
    scores[4:8] = 0.95  # the attribute neurons are "spurious"
    memo: dict = {}
    t = N.prune_and_refit(head, scores, tau=0.7, test=test, val=val, seed=0, memo=memo)
    pruned = select_neurons(torch.from_numpy(scores), 0.7).numpy()
    assert sorted(t["pruned_neurons"]) == sorted(pruned.tolist()) and set(range(4, 8)) <= set(pruned.tolist())
    assert t["baseline"] == {**N.head_summary(head, test), "n_zeroed": 0, "n_used": d}
    assert t["pruned"]["n_zeroed"] == len(pruned) and t["pruned"]["n_used"] == d - len(pruned)
    assert t["pruned"]["groups"] == N.head_summary(zero_neurons(head, pruned), test)["groups"]
    keep = np.setdiff1d(np.arange(d), pruned)
    ref = refit_last_layer(val.z, val.y, val.g, seed=0, neuron_mask=keep)
    assert t["refit_pruned"]["groups"] == N.head_summary(ref, test)["groups"]
    assert t["refit_pruned"]["n_used"] == len(keep)
    assert t["refit"]["groups"] == N.head_summary(refit_last_layer(val.z, val.y, val.g, seed=0), test)["groups"]
    assert all(t[k]["wga"] <= t[k]["avg"] + 1e-12 for k in N.ROWS)
    # refits are memoised by neuron set: a second call fits nothing new
    n_memo = len(memo)
    N.prune_and_refit(head, scores, tau=0.7, test=test, val=val, seed=0, memo=memo)
    assert len(memo) == n_memo
    # nothing above tau: the pruned head is the baseline; everything above: no refit possible, said why
    none = N.prune_and_refit(head, np.zeros(d), tau=0.7, test=test, val=val)
    assert none["pruned"]["groups"] == none["baseline"]["groups"] and none["pruned_neurons"] == []
    every = N.prune_and_refit(head, np.ones(d), tau=0.7, test=test, val=val)
    assert every["refit_pruned"] is None and "nothing left" in every["errors"]["refit_pruned"]
    # a validation set missing a group cannot be balanced over the four groups: the refit rows are None, said why
    short = N.Features(val.z[val.g != 3], val.y[val.g != 3], val.g[val.g != 3])
    miss = N.prune_and_refit(head, scores, tau=0.7, test=test, val=short)
    assert miss["refit"] is None and "group" in miss["errors"]["refit"]
    with pytest.raises(ValueError, match="tau must be"):
        N.prune_and_refit(head, scores, tau=1.5, test=test, val=val)
    with pytest.raises(ValueError, match="scores must have shape"):
        N.prune_and_refit(head, scores[:3], tau=0.7, test=test, val=val)
    frame = N.table4_frame(t, "isic", tau=0.7)
    assert list(frame.index) == [N.ROW_LABELS[r].replace("τ", "0.7") for r in N.ROWS]
    assert frame.loc["Pruning (s-score > 0.7)", "zeroed"] == len(pruned)
    assert frame["paper WGA (MwP)"].tolist() == [N.PAPER_TABLE4[r][3] for r in N.ROWS]


# --------------------------------------------------------------------------- bands, picker, stats


def test_bands_picker_and_stats():
    s = np.array([0.05, 0.9, 0.5, 0.1, 0.75, 0.3, 0.0, 0.4])
    reps = N.band_representatives(s)
    assert reps == {"low": 0, "mid": 7, "high": 4}  # median-ranked: low [3, 0, 6], mid [2, 7, 5], high [1, 4]
    assert N.band_representatives(np.zeros(4))["high"] is None
    assert N.pick_neuron(s, "index", 6) == 6
    assert N.pick_neuron(s, "high", 0) == 1 and N.pick_neuron(s, "mid", 2) == 5
    with pytest.raises(ValueError, match="high band holds 2 neurons"):
        N.pick_neuron(s, "high", 2)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 8\)"):
        N.pick_neuron(s, "index", 8)
    with pytest.raises(ValueError, match="by must be"):
        N.pick_neuron(s, "top", 0)
    st = N.score_stats(s, area=0.8, tau=0.7)
    assert st["band_counts"] == {"low": 3, "mid": 3, "high": 2} and st["n_above_tau"] == 2
    assert st["n_high_above_chance"] == 1 and st["n_above_chance"] == 1  # only 0.9 beats an area of 0.8
    assert st["lift_max"] == pytest.approx(0.9 / 0.8) and st["top"][0] == {"neuron": 1, "s": 0.9}
    with pytest.raises(ValueError, match="area must be"):
        N.score_stats(s, area=0.0)


def test_overlap_image_colours():
    b = np.array([[1, 1], [0, 0]], bool)
    m = np.array([[1, 0], [1, 0]], bool)
    img = N.overlap_image(b, m)
    assert tuple(img[0, 0]) == (0.90, 0.15, 0.15) and tuple(img[0, 1]) == (0.25, 0.45, 0.95)
    assert tuple(img[1, 0]) == (0.82, 0.82, 0.82) and tuple(img[1, 1]) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- experiment, figures, record, claims


def test_experiment_figures_and_payload(study):
    res = N.neuron_experiment(study, alpha=0.5, tau=0.7, seed=0, sensitivity_alphas=(0.33, 0.5, 0.42))
    assert set(res["alpha_sensitivity"]) == {"0.33", "0.5"}  # 0.42 is not precomputed: skipped
    assert len(res["scores"]) == 256 and res["area"] == pytest.approx(study.area)
    assert sum(res["band_counts"].values()) == 256
    assert res["table4"]["pruned"]["n_zeroed"] == res["n_above_tau"] == len(res["pruned_neurons"])
    results = {"isic": res, "waterbirds": {**res, "dataset": "waterbirds",
                                           "group_names": list(N.GROUP_NAMES["waterbirds"])}}
    fig = N.plot_sscore_derivation({"isic": study}, alpha=0.5)
    assert len(fig.axes) == 4 and "neuron" in fig.axes[2].get_title()
    fig = N.plot_band_neurons(study, alpha=0.5)
    assert len(fig.axes) == 3 * N.N_SHOW
    fig = N.plot_neuron_rows(study, {"empty": None, "one": 3}, alpha=0.5, samples=[0, 1], overlap_row=True)
    assert len(fig.axes) == 8 and "sample 1" in fig.axes[5].get_title()
    fig = N.plot_histograms({"isic": study}, alpha=0.5, tau=0.7)
    assert f"{study.area:.2f}" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert len(N.plot_table4(results).axes) == 2
    frame = N.alpha_sensitivity_frame(results)
    assert len(frame) == 4 and set(frame["α"]) == {0.33, 0.5}
    rec = N.record_payload(results, profile="smoke", seconds=1.0, alpha=0.5, tau=0.7)
    assert rec["headline"] == "isic" and rec["refit_set"].startswith("validation split")
    assert rec["wga"]["baseline"] == res["table4"]["baseline"]["wga"]
    text = N.takeaways(rec)
    assert "ISIC-like" in text and "Waterbirds-like" in text and f"{res['max']:.2f}" in text


def _rec(isic: dict, waterbirds: dict | None = None) -> dict:
    base = {"min": 0.0, "max": 0.8, "area": 0.05, "lift_max": 16.0, "n_high": 5, "n_high_above_chance": 5,
            "pruned_neurons": [1, 2, 3, 4, 5], "tau": 0.7, "alpha": 0.5,
            "table4": {r: {"wga": w} for r, w in zip(N.ROWS, (0.37, 0.40, 0.51, 0.56))}}
    datasets = {"isic": {**base, **isic}}
    if waterbirds is not None:
        datasets["waterbirds"] = {**base, **waterbirds}
    return {"alpha": 0.5, "refit_set": N.REFIT_SET, "datasets": datasets}


def test_claims_verdicts_and_chance_text():
    from shortcut_nb.claims import CLAIMS

    checks = {c.id: c.check for c in CLAIMS}
    ours, holds = checks["neurons.spread"](_rec({}, {"area": 0.88, "max": 0.95, "n_high_above_chance": 2,
                                                      "lift_max": 1.08}))
    assert holds and "0.00–0.80" in ours and "no better than a heatmap ignoring the image" in ours
    assert "all 5 high neurons exceed it" in ours
    assert not checks["neurons.spread"](_rec({"max": 0.4, "n_high": 0}))[1]
    assert checks["neurons.prune_refit"](_rec({}))[1]
    assert not checks["neurons.prune_refit"](_rec({"table4": {r: {"wga": w} for r, w in
                                                              zip(N.ROWS, (0.37, 0.37, 0.51, 0.56))}}))[1]
    assert not checks["neurons.prune_refit"](_rec({"table4": {r: {"wga": w} for r, w in
                                                              zip(N.ROWS, (0.37, 0.40, 0.39, 0.56))}}))[1]
    ours, holds = checks["neurons.prune_refit"](_rec({"pruned_neurons": []}))
    assert not holds and "nothing pruned" in ours
    missing = _rec({})
    missing["datasets"]["isic"]["table4"]["refit"] = None
    ours, holds = checks["neurons.prune_refit"](missing)
    assert not holds and "refit n/a" in ours


# --------------------------------------------------------------------------- widget


def test_widget_functions_and_explorer(study):
    from shortcut_nb.widgets import neurons as W

    text = W.band_summary(study, 0.5)
    c = band_counts(study.scores(0.5))
    assert f"low {c['low']} · mid {c['mid']} · high {c['high']}" in text and "α = 0.50" in text
    assert W.pruning_summary(study, 0.5, 0.0).startswith(f"pruning s > 0.00 zeroes {int((study.scores(0.5) > 0).sum())}")
    top = W.top_neuron(study, 0.5)
    neuron, line = W.neuron_summary(study, 0.5, "index", top)
    assert neuron == top and line.startswith(f"neuron {top} (")
    neuron, line = W.neuron_summary(study, 0.5, "index", 9999)
    assert neuron is None and "index must lie" in line
    assert list(W.accuracy_frame(study, 0.5, 0.7).columns)[:4] == list(N.GROUP_NAMES["isic"])
    box = W.neuron_explorer({"isic": study}, alpha=0.5, tau=0.7)
    assert {c.description for c in box.controls.values()} == {"dataset", "alpha", "tau", "pick by", "number"}
    assert box.controls["number"].value == top and box.neuron.value.startswith(f"neuron {top} (")
    before = (box.bands.value, box.pruning.value)
    box.controls["alpha"].value = 0.2
    assert "α = 0.20" in box.bands.value and box.bands.value != before[0]
    box.controls["tau"].value = 0.05
    assert "pruning s &gt; 0.05" in box.pruning.value
    box.controls["number"].value = 3
    assert box.neuron.value.startswith("neuron 3 (")
    box.controls["by"].value = "high"
    box.controls["number"].value = 10**5
    assert "no neuron shown" in box.neuron.value
    with pytest.raises(ValueError, match="dataset must be one of"):
        W.neuron_explorer({"isic": study}, dataset="waterbirds")
