"""Notebook 03's study: the one draw of s-score samples, per-sample scores on the alpha grid, heatmaps, Table 4."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.data.samples import draw_masked_samples
from shortcut_nb.lastlayer.table4 import prune_and_refit
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.cnn_neurons import study as S
from shortcut_nb.sscore.grid import score_grid
from support.cnn_neurons import tiny_model, tiny_samples, tiny_study


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def samples():
    return tiny_samples()


@pytest.fixture(scope="module")
def study(model, samples):
    return tiny_study(model, samples)


# --------------------------------------------------------------------------- samples: the one draw


def test_the_draw_skips_empty_masks_and_is_seeded():
    items = []
    for i in range(12):
        mask = torch.zeros(4, 4, dtype=torch.bool)
        if i % 3 == 0:
            mask[1, 1] = True
        items.append({"image": torch.full((3, 4, 4), float(i)), "mask": mask if i != 6 else None})
    drawn = draw_masked_samples(items, 2, seed=5)
    idx = drawn.indices
    assert len(idx) == 2 and all(i % 3 == 0 and i != 6 for i in idx)
    assert all(bool(m.any()) for m in drawn.masks)
    assert torch.equal(drawn.images[:, 0, 0, 0], torch.tensor([float(i) for i in idx]))
    assert np.array_equal(idx, draw_masked_samples(items, 2, seed=5).indices)
    every = draw_masked_samples(items, 50, seed=0).indices  # fewer exist than asked: all of them
    assert sorted(every.tolist()) == [0, 3, 9]
    with pytest.raises(ValueError, match="no item with a non-empty"):
        draw_masked_samples([{"image": torch.zeros(3, 4, 4), "mask": torch.zeros(4, 4)}], 1, seed=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        draw_masked_samples(items, 0, seed=0)


# --------------------------------------------------------------------------- scores on the grid


def test_per_sample_scores_follow_the_paper_definition_with_pytorch_grad_cam(model, samples):
    neuron, alpha = 7, 0.5
    grid = score_grid(model, samples.images, samples.masks, (alpha,))
    maps = sscore.reference_cams(model, samples.images, [neuron])[:, 0]  # pytorch-grad-cam
    assert not (np.abs(maps - alpha) < 1e-5).any(), "a pixel sits on the threshold: pick another neuron"
    m = samples.masks.numpy()
    b = maps >= np.float32(alpha)
    ref = np.where(b.sum((1, 2)) > 0, (b & m).sum((1, 2)) / np.maximum(b.sum((1, 2)), 1), 0.0)
    np.testing.assert_allclose(grid[0, :, neuron], ref, atol=1e-6)


def test_study_scores_are_lookups_on_the_grid(study, samples):
    assert study.d == 256 and study.n_samples == 6
    assert study.area == pytest.approx(samples.masks.float().mean((1, 2)).mean().item())
    assert study.area == sscore.mask_area(samples.masks)
    assert study.sample_index.tolist() == [0, 3, 6, 9, 12, 15]
    s = study.scores(0.33)
    np.testing.assert_allclose(s, study.per_sample[study.alpha_index(0.33)].mean(0), rtol=1e-6)
    assert study.alpha_index(0.1 + 0.2) == study.alpha_index(0.3)  # slider rounding
    assert study.grid_alpha(0.1 + 0.2) == 0.3 and study.has_alpha(0.33) and not study.has_alpha(0.42)
    with pytest.raises(ValueError, match="precomputed thresholds"):
        study.scores(0.31)
    with pytest.raises(TypeError, match="alpha must be a number"):
        study.scores(True)
    assert np.all((s >= 0) & (s <= 1))
    # the grid is score_grid's: one heatmap pass, every alpha
    np.testing.assert_array_equal(study.per_sample, score_grid(study.model, samples.images, samples.masks,
                                                               study.alphas))


def test_study_needs_a_linear_head(samples):
    class NoHead(torch.nn.Module):
        head = None

    with pytest.raises(TypeError, match="nn.Linear"):
        S.build_study(dataset="isic", model=NoHead(), samples=samples, test={}, val={}, train_group_counts=[1] * 4)


def test_heatmaps_equal_neuron_cams(study):
    ref = sscore.neuron_cams(study.model, study.images[[0, 2]], neurons=[9])[:, 0].numpy()
    np.testing.assert_array_equal(study.heatmaps(9, [0, 2]), ref)  # from the shown-samples cache
    ref5 = sscore.neuron_cams(study.model, study.images[[5]], neurons=[9])[:, 0].numpy()
    np.testing.assert_array_equal(study.heatmaps(9, [5]), ref5)  # outside it: one neuron's pass
    # the figure's per-sample scores come from the same maps
    b = study.heatmaps(9, [0])[0] >= np.float32(0.5)
    m = study.masks[0].numpy()
    expected = (b & m).sum() / b.sum() if b.sum() else 0.0
    assert study.per_sample_at(0.5)[0, 9] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="neuron must lie"):
        study.heatmaps(999, [0])
    with pytest.raises(ValueError, match="samples must be"):
        study.heatmaps(0, [6])


def test_table4_is_prune_and_refit_at_the_grid_alpha_and_memoised(study):
    t = study.table4(0.1 + 0.2, 0.05, seed=0)
    ref = prune_and_refit(study.head, study.scores(0.3), tau=0.05, test=study.test, val=study.val, seed=0,
                          train_group_counts=study.train_group_counts)
    assert t == ref
    assert t["pruned"]["n_zeroed"] == int((study.scores(0.3) > 0.05).sum())
    refits = [k for k in study._memo if k[0] == "refit"]
    assert study.table4(0.3, 0.05, seed=0) == t
    assert [k for k in study._memo if k[0] == "refit"] == refits  # a second call fits nothing new
    study.table4(0.3, 0.05, seed=1)  # another seed draws another subsample: two new refits
    assert len([k for k in study._memo if k[0] == "refit"]) == len(refits) + 2


# --------------------------------------------------------------------------- the notebook's entry point


class _Routed(Exception):
    """Raised by the patched run_spec once it has seen the folder the study passes."""


def test_neuron_study_passes_the_notebooks_data_folder_to_the_run(monkeypatch, tmp_path):
    """The notebook's DATA_FOLDERS reach the run spec through the Context (the folder replaces the benchmark)."""
    seen = []

    def spy(profile, name, **kwargs):
        profile = getattr(profile, "profile", profile)  # a profile name or its settings
        seen.append((profile, name, kwargs.get("arch"), kwargs.get("seed"), kwargs.get("folder")))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", root=tmp_path, folders={"isic": "/data/isic"}, progress=False)
    with pytest.raises(_Routed):
        S.neuron_study(ctx, "isic", seed=3)
    with pytest.raises(_Routed):
        S.neuron_study(ctx, "waterbirds")
    assert seen == [("smoke", "isic", "cnn", 3, "/data/isic"), ("smoke", "waterbirds", "cnn", 0, None)]


def test_neuron_study_passes_the_notebooks_model_to_the_run(monkeypatch, tmp_path):
    """MODEL (None: the profile's CNN) reaches the run spec through the Context."""
    seen = []

    def spy(profile, name, **kwargs):
        seen.append(kwargs.get("model"))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", root=tmp_path, progress=False)
    for model in (None, "resnet50"):
        with pytest.raises(_Routed):
            S.neuron_study(ctx, "isic", model=model)
    assert seen == [None, "resnet50"]


def test_unit_scores_of_the_default_block_are_the_study_scores(study):
    """The penultimate block's units are the penultimate neurons: same scores as the grid's."""
    assert study.blocks == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"] and study.default_block == "layer4.0"
    res = study.unit_scores(alpha=0.5)
    assert np.allclose(res.scores, study.scores(0.5), atol=1e-6)
    assert study.unit_scores(alpha=0.5) is res  # memoised
    assert study.unit_scores("layer2.0", alpha=0.5).per_sample.shape == (study.n_samples, 64)
    with pytest.raises(ValueError, match="block"):
        study.unit_scores("layer9.0", alpha=0.5)


def test_depth_methods_variants_and_dilation(study):
    prof = S.depth_profiles({"isic": study}, alpha=0.5)["isic"]
    assert prof.blocks == study.blocks and np.allclose(prof.scores[-1], study.scores(0.5), atol=1e-6)
    rows = S.method_variant_bands(study, alpha=0.5)
    assert [(r["factor"], r["method"], r["variant"]) for r in rows[:4]] == [("method", m, "hard") for m in S.CAM_METHODS]
    assert [(r["variant"], r["dilation"]) for r in rows[4:]] == [("hard", 0), ("soft", 0), ("iou", 0), ("hard", 1)]
    assert all(r["band_counts"] == rows[0]["band_counts"] for r in rows[:5])  # the methods coincide at the layer
    assert all(sum(r["band_counts"].values()) == study.d for r in rows)
    ex = S.dilation_example(study, alpha=0.5)
    gain = study.unit_scores(alpha=0.5, dilation=1).scores - study.unit_scores(alpha=0.5).scores
    assert ex["neuron"] == int(np.argmax(gain)) and ex["gain"] == pytest.approx(gain.max())
    assert ex["chance_dilated"] > ex["chance"] and S.default_dilation(224) == 7 and S.default_dilation(16) == 1


def test_planned_runs_name_every_seed_the_claims_read(tmp_path):
    """03 scores every seed's CNN for the per-seed verdicts: ``sweep plan`` must list them all, its own first."""
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    runs = S.planned_runs(ctx, {"SEED": 1, "DATASETS": ["isic"]})
    assert [(r.data.name, r.model, r.seed) for r in runs] == [("isic", "resnet_mini", s) for s in (1, 0, 2, 3, 4)]
    assert [r.seed for r in S.planned_runs(ctx, {"SEEDS": [0]})] == [0, 0]
