"""Notebook 04's study: DFR vs baseline vs single-weight edit on fixed features, the s-score block, aggregation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.entanglement_toys import D, SCORES, as_results, run_toy, spurious_head, toy_features

from shortcut_nb.data.samples import MaskedSamples, draw_masked_samples, sample_for_sscore
from shortcut_nb.lastlayer import fit_dfr, mean_used_sscore
from shortcut_nb.metrics import summarize, wga_change_interval
from shortcut_nb.models import build_model
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.entanglement import study, views, widget
from shortcut_nb.sscore import mask_area, s_scores, score_neurons

# --------------------------------------------------------------------------- analyze_heads


def test_dfr_beats_a_spurious_head_and_its_numbers_match_the_dfr_module():
    out = run_toy()
    val, test = toy_features(seed=1), toy_features(seed=2)
    b, d = out["baseline"], out["dfr"]
    assert b["wga"] < 0.3 < 0.8 < d["wga"]
    # baseline numbers are the torch head's predictions scored by metrics.summarize
    pred = spurious_head()(torch.from_numpy(test["z"])).argmax(1).numpy()
    ref = summarize(pred, test["y"], test["g"])
    assert b["wga"] == pytest.approx(ref["wga"]) and b["groups"] == pytest.approx(ref["groups"])
    assert b["prune_h"] == pytest.approx(1 - 2 / (2 * D)) and b["n_used"] == 2  # only W[1,0], W[1,1] non-zero
    assert b["mean_s"] == pytest.approx(0.5)  # neurons 0 and 1
    # the DFR head is the dfr module's, refit with the same seed
    res = fit_dfr(val["z"], val["y"], val["g"], seed=0, c_grid=(1.0, 0.1), n_refits=3)
    assert d["C"] == res.C and d["tuned"] and not d["notes"]
    assert d["prune_h_average"] == pytest.approx(res.prune_h(of="average"))
    assert d["prune_h_refits"] == pytest.approx(res.prune_h(of="refits"))
    assert d["mean_s_average"] == pytest.approx(mean_used_sscore(res.coef, SCORES))
    assert 0 in d["kept"]  # the core neuron
    assert d["prune_h_average"] <= d["prune_h_refits"] + 1e-12
    pred_dfr = res.predict(test["z"])
    assert d["wga"] == pytest.approx(summarize(pred_dfr, test["y"], test["g"])["wga"])
    # DFR's ΔWGA within the seed: the paired bootstrap of metrics over the test images, around the point value
    assert d["wga_change"] == list(wga_change_interval(pred, pred_dfr, test["y"], test["g"], n_groups=4, seed=0))
    assert d["wga_change"][0] <= d["wga"] - b["wga"] <= d["wga_change"][1]
    assert set(out["sweep"]) == {"1", "0.1"}
    assert out["sweep"]["0.1"]["prune_h_refits"] >= out["sweep"]["1"]["prune_h_refits"]  # stronger L1, sparser


def test_single_weight_edit_removes_the_spurious_weight():
    out = run_toy(edit_scales=(0.0,))
    e = out["edit"]
    assert e["applied"] and e["neuron"] == 1 and e["class_index"] == 1 and e["scale"] == 0.0
    assert e["neuron_s"] == pytest.approx(0.9) and e["neuron_s_rank"] == pytest.approx(1 - 1 / D)
    assert e["val_wga_after"] > e["val_wga_before"]
    assert e["wga"] > out["baseline"]["wga"] + 0.3
    assert e["n_used"] == 1 and e["mean_s"] == pytest.approx(0.1)


def test_untunable_C_is_noted_printed_recorded_and_shown(capsys):
    val = toy_features((30, 30, 30, 1), seed=1)  # group 3 has one sample: one tuning half always lacks it
    out = run_toy(val=val, fallback_C=0.7, verbose=True)
    assert not out["dfr"]["tuned"] and out["dfr"]["C"] == 0.7 and out["dfr"]["notes"]
    assert "DFR note: C not tuned" in capsys.readouterr().out
    results = as_results(out)
    assert results["waterbirds/cnn"].summary["notes"] == out["dfr"]["notes"]
    assert "not tuned" in widget.c_options(results, "waterbirds/cnn")[0][0]
    assert "note:" in views.view_text(views.dfr_view(results, "waterbirds/cnn"))


def test_a_head_that_keeps_no_neuron_is_reported_not_fatal():
    out = run_toy(c_grid=(1e-4,))
    e = out["sweep"]["0.0001"]
    assert e["n_used_average"] == 0 and e["prune_h_refits"] == 1.0
    assert e["mean_s_average"] is None and e["mean_s_refits"] is None and e["selection"]["p"] is None
    results = as_results(out)
    assert "no neuron kept" in views.view_text(views.dfr_view(results, "waterbirds/cnn", "0.0001"))
    json.dumps(results["waterbirds/cnn"].summary, allow_nan=False)


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="head"):
        run_toy(head=torch.zeros(2, D))
    with pytest.raises(ValueError, match="scores"):
        run_toy(scores=SCORES[:-1])
    with pytest.raises(TypeError, match="val"):
        run_toy(val=np.zeros((4, D)))
    with pytest.raises(ValueError, match="columns"):
        run_toy(test={**toy_features(seed=2), "z": np.zeros((160, D + 1))})


# --------------------------------------------------------------------------- the s-scores of a trained model


def test_score_neurons_on_the_one_draw_equals_the_old_path():
    """The study scores ``score_neurons(model, ctx.masked_samples(...))``; the code before the restructure ran
    ``s_scores`` on the non-empty-mask draw: same images, same scores, same chance level."""
    g = torch.Generator().manual_seed(0)
    items = [{"image": torch.randn(3, 16, 16, generator=g), "mask": torch.rand(16, 16, generator=g) > 0.4}
             for _ in range(5)]
    items[1] = {"image": items[1]["image"], "mask": torch.zeros(16, 16, dtype=torch.bool)}  # skipped: empty mask
    model = build_model("resnet_mini", image_size=16).eval()
    samples = draw_masked_samples(items, 3, 1)
    new = score_neurons(model, samples, alpha=0.5).double().numpy()
    images, masks = sample_for_sscore(items, 3, 1, nonempty=True)
    old = s_scores(model, images, masks, alpha=0.5, chunk_size=128, batch_size=16).detach().cpu().double().numpy()
    np.testing.assert_array_equal(new, old)
    assert new.shape == (model.head.in_features,) and len(samples) == 3
    assert samples.area == mask_area(masks)


class _Split(list):
    def group_counts(self):
        return [40, 40, 40, 40]


class _FakeContext:
    """The verbs analyze_model uses, on toy features and a fixed draw."""

    def __init__(self, samples):
        self.samples, self.calls = samples, []

    def split(self, spec, split):
        return _Split([split])

    def features(self, model, dataset):
        return toy_features(seed={"val": 1, "test": 2}[dataset[0]])

    def masked_samples(self, spec, *, seed, n=None):
        self.calls.append((spec, seed, n))
        return self.samples


def test_analyze_model_records_the_one_summary_of_the_scored_draw(monkeypatch):
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    masks[:, :4] = True  # area 0.5
    samples = MaskedSamples(images=torch.zeros(4, 3, 8, 8), masks=masks, indices=np.arange(4))
    seen = {}

    def spy(model, s, *, alpha):
        seen.update(samples=s, alpha=alpha)
        return torch.tensor(SCORES, dtype=torch.float32)

    monkeypatch.setattr(study, "score_neurons", spy)
    ctx = _FakeContext(samples)
    model = torch.nn.Module()
    model.head = spurious_head()
    settings = study.StudySettings(seeds=(0,), alpha=0.3, sscore_samples=4, sample_seed=7, c_grid=(1.0, 0.1),
                                   n_refits=3, band_draws=500)
    out = study.analyze_model(ctx, "spec", model, settings, seed=0)
    assert ctx.calls == [("spec", 7, 4)] and seen["samples"] is samples and seen["alpha"] == 0.3
    s = out["sscore"]
    assert s["n"] == 4 and s["alpha"] == 0.3 and s["area"] == 0.5
    assert s["scores"] == np.asarray(torch.tensor(SCORES, dtype=torch.float32).double()).round(6).tolist()
    assert s["mean"] == pytest.approx(SCORES.mean(), abs=1e-7) and s["lift"] == pytest.approx(s["mean"] / 0.5)
    assert out["val_group_counts"] == [40, 40, 40, 40] and out["n_val"] == out["n_test"] == 160
    assert out["baseline"]["avg_weighted"] is not None  # training group counts reached the head metrics


def test_study_passes_the_notebooks_data_folder_to_the_run(monkeypatch):
    """DATA_FOLDERS reaches the run spec through the Context (the folder replaces the synthetic benchmark)."""
    seen = []

    class Routed(Exception):
        pass

    def spy(settings, name, **kwargs):
        seen.append((name, kwargs.get("folder")))
        raise Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", folders={"isic": "/data/isic"}, progress=False)
    settings = study.StudySettings.resolve(ctx, datasets=["isic"], archs=["cnn"], seeds=[0])
    with pytest.raises(Routed):
        study.entanglement_study(ctx, settings)
    assert seen == [("isic", "/data/isic")]


def test_settings_fill_in_the_profile():
    ctx = Context.build("smoke", progress=False)
    s = study.StudySettings.resolve(ctx)
    assert s.seeds == tuple(ctx.settings.seeds) and s.sscore_samples == ctx.settings.sscore_samples
    assert s.n_refits == 5 and list(s.c_grid) == [1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01]
    rec = s.as_record()
    assert list(rec) == ["datasets", "archs", "seeds", "alpha", "sscore_samples", "sample_seed", "c_grid",
                         "n_refits", "fallback_C", "edit_scales", "band_draws"]
    assert study.StudySettings.resolve(ctx, n_refits=3, sscore_samples=2).as_record()["n_refits"] == 3
    assert study.default_n_refits("cpu") == 20
    with pytest.raises(ValueError, match="seeds"):
        study.StudySettings.resolve(ctx, seeds=[])


# --------------------------------------------------------------------------- aggregation


def test_aggregate_runs_means_over_seeds_and_skips_undefined():
    a, b = run_toy(), run_toy(seed=1)
    for r in (a, b):
        r["sscore"] = study.sscore_entry(SCORES, 0.4, n=8, alpha=0.5)
    b["dfr"]["mean_s_refits"] = None
    agg = study.aggregate_runs([a, b])
    assert agg["n_seeds"] == 2 and agg["area"] == pytest.approx(0.4)
    assert agg["dfr"]["wga"] == pytest.approx((a["dfr"]["wga"] + b["dfr"]["wga"]) / 2)
    assert agg["dfr"]["wga_std"] == pytest.approx(np.std([a["dfr"]["wga"], b["dfr"]["wga"]], ddof=1))
    assert agg["dfr"]["mean_s_refits"] == pytest.approx(a["dfr"]["mean_s_refits"])
    assert agg["dfr"]["mean_s_refits_std"] == 0
    with pytest.raises(ValueError, match="runs"):
        study.aggregate_runs([])


def test_collect_results_groups_by_model_and_checks_keys():
    results = as_results(run_toy())
    r = results["waterbirds/cnn"]
    assert isinstance(r, study.ModelResults) and r.key == "waterbirds/cnn" and r.seeds == [0]
    assert r.summary["n_seeds"] == 1
    with pytest.raises(ValueError, match="missing"):
        study.collect_results([{"dataset": "isic"}])
