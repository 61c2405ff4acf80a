"""Notebook 04's package module: DFR vs baseline vs single-weight edit, s-score summaries, claims, widget."""
from __future__ import annotations

import itertools
import json

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from shortcut_nb import entanglement as E  # noqa: E402
from shortcut_nb.lastlayer.dfr import fit_dfr, logistic_to_linear, mean_used_sscore  # noqa: E402
from shortcut_nb.metrics import summarize  # noqa: E402
from shortcut_nb.widgets import entanglement as W  # noqa: E402

D = 10


def toy_features(counts=(40, 40, 40, 40), *, seed=0) -> dict:
    """Neuron 0 carries the class (weakly), neuron 1 the spurious attribute (strongly), the rest is noise."""
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.full(c, k) for k, c in enumerate(counts)]).astype(np.int64)
    y, a = g // 2, g % 2
    z = rng.normal(size=(len(g), D))
    z[:, 0] = (2 * y - 1) * 1.5 + 0.5 * rng.normal(size=len(g))
    z[:, 1] = (2 * a - 1) * 2.0 + 0.3 * rng.normal(size=len(g))
    return {"z": z.astype(np.float32), "y": y, "g": g}


def spurious_head() -> nn.Linear:
    """A head that reads mostly the spurious neuron: right on majority groups, wrong on minority ones."""
    head = nn.Linear(D, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[1, 0], head.weight[1, 1] = 0.3, 2.0
    return head


SCORES = np.array([0.1, 0.9] + [0.5] * (D - 2))


def run_toy(**kw) -> dict:
    args = dict(head=spurious_head(), scores=SCORES, val=toy_features(seed=1), test=toy_features(seed=2), seed=0,
                n_refits=3, c_grid=(1.0, 0.1), band_draws=500, verbose=False)
    args.update(kw)
    return E.analyze_heads(**args)


def as_results(out: dict, *, dataset="waterbirds", arch="cnn", area=0.5) -> dict:
    run = dict(out, dataset=dataset, arch=arch, model="toy", seed=0,
               sscore=E.sscore_summary(SCORES, area=area, n=8, alpha=0.5))
    return E.collect_results([run])


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


def test_tuning_falls_back_to_a_fixed_C_when_a_half_misses_a_group(capsys):
    val = toy_features((30, 30, 30, 1), seed=1)  # group 3 has one sample: one tuning half always lacks it
    res, notes = E.fit_dfr_checked(val["z"], val["y"], val["g"], seed=0, n_refits=2, fallback_C=0.7)
    assert res.C == 0.7 and res.tuning_wga == {}
    assert len(notes) == 1 and notes[0].startswith("C not tuned") and "C=0.7" in notes[0]
    assert "DFR note: C not tuned" in capsys.readouterr().out
    out = run_toy(val=val, fallback_C=0.7)
    assert not out["dfr"]["tuned"] and out["dfr"]["C"] == 0.7 and out["dfr"]["notes"]
    results = as_results(out)
    assert results["waterbirds/cnn"]["summary"]["notes"] == out["dfr"]["notes"]
    assert "not tuned" in W.c_options(results, "waterbirds/cnn")[0][0]
    assert "note:" in E.view_text(E.dfr_view(results, "waterbirds/cnn"))


def test_a_group_missing_from_validation_is_balanced_over_the_groups_present():
    val = toy_features((30, 30, 30, 0), seed=1)
    res, notes = E.fit_dfr_checked(val["z"], val["y"], val["g"], seed=0, C=1.0, n_refits=2, verbose=False)
    assert "group(s) [3]" in notes[0]
    ref = fit_dfr(val["z"], val["y"], val["g"], seed=0, C=1.0, n_refits=2)  # groups 0..2 already contiguous
    np.testing.assert_allclose(res.coef, ref.coef)


def test_a_head_that_keeps_no_neuron_is_reported_not_fatal():
    out = run_toy(c_grid=(1e-4,))
    e = out["sweep"]["0.0001"]
    assert e["n_used_average"] == 0 and e["prune_h_refits"] == 1.0
    assert e["mean_s_average"] is None and e["mean_s_refits"] is None and e["selection"]["p"] is None
    results = as_results(out)
    assert "no neuron kept" in E.view_text(E.dfr_view(results, "waterbirds/cnn", "0.0001"))
    json.dumps(results["waterbirds/cnn"]["summary"], allow_nan=False)


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="head"):
        run_toy(head=torch.zeros(2, D))
    with pytest.raises(ValueError, match="scores"):
        run_toy(scores=SCORES[:-1])
    with pytest.raises(TypeError, match="val"):
        run_toy(val=np.zeros((4, D)))
    with pytest.raises(ValueError, match="fallback_C"):
        E.fit_dfr_checked(np.zeros((8, D)), np.zeros(8, int), np.zeros(8, int), seed=0, fallback_C=0)


# --------------------------------------------------------------------------- measures


def test_selection_test_matches_exact_enumeration():
    s = np.array([0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95])
    kept = np.zeros(8, dtype=bool)
    kept[[5, 6, 7]] = True  # the three highest: an unusually spurious set
    means = np.array([s[list(c)].mean() for c in itertools.combinations(range(8), 3)])
    delta = s[kept].mean() - s.mean()
    exact_p = (np.abs(means - s.mean()) >= abs(delta) - 1e-12).mean()
    out = E.selection_test(s, kept, draws=20000, seed=0)
    assert out["delta"] == pytest.approx(delta) and out["k"] == 3
    assert out["p"] == pytest.approx(exact_p, abs=0.01)
    assert means.min() <= out["lo"] < out["hi"] <= means.max()
    assert E.selection_test(s, np.ones(8, bool))["p"] == 1.0
    assert E.selection_test(s, np.zeros(8, bool))["mean_kept"] is None
    with pytest.raises(ValueError, match="kept"):
        E.selection_test(s, kept.astype(int))


def test_influence_weighted_sscore_by_hand_and_fold_invariant():
    s = np.array([0.2, 0.8, 0.5])
    std = np.array([1.0, 2.0, 0.0])  # a constant neuron has no influence whatever its weight
    w = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 5.0]])  # decision weights |w1 - w0| = [1, 1, 0]
    assert E.influence_weighted_sscore(w, s, std) == pytest.approx((1 * 0.2 + 2 * 0.8) / 3)
    coef = np.array([[0.5, -1.0, 0.25]])  # a logistic row and its two-logit fold give the same number
    folded = logistic_to_linear(coef, [0.0], binary_logits="half").weight.detach().double().numpy()
    ones = np.ones(3)
    assert E.influence_weighted_sscore(coef, s, ones) == pytest.approx(E.influence_weighted_sscore(folded, s, ones))
    assert E.influence_weighted_sscore(np.zeros((2, 3)), s, ones) is None


def test_head_metrics_needs_matching_shapes():
    with pytest.raises(ValueError, match="weight"):
        E.head_metrics(np.zeros((2, 3)), np.zeros(2), np.zeros((4, 5)), np.zeros(4, int), np.zeros(4, int))


def test_model_sscores_equals_s_scores_on_the_drawn_images():
    from shortcut_nb.models import build_model
    from shortcut_nb.data.samples import sample_for_sscore
    from shortcut_nb.sscore import mask_area, s_scores

    g = torch.Generator().manual_seed(0)
    items = [{"image": torch.randn(3, 16, 16, generator=g), "mask": torch.rand(16, 16, generator=g) > 0.4}
             for _ in range(5)]
    model = build_model("resnet_mini", image_size=16).eval()
    out = E.model_sscores(model, items, n=3, seed=1, alpha=0.5)
    images, masks = sample_for_sscore(items, 3, 1)
    ref = s_scores(model, images, masks, alpha=0.5).double().numpy()
    np.testing.assert_allclose(out["scores"], ref, atol=1e-6)
    assert out["scores"].shape == (model.head.in_features,) and out["n"] == 3
    assert out["area"] == pytest.approx(mask_area(masks))
    with pytest.raises(ValueError, match="n must"):
        E.model_sscores(model, items, n=0, seed=0, alpha=0.5)


def test_model_sscores_gives_a_vit_its_default_target_layer(monkeypatch):
    # a real ViT s-score costs seconds per image here (the smoke notebook runs one); check the call instead
    import shortcut_nb.sscore as S
    from shortcut_nb.models import build_model

    seen = {}

    def spy(model, images, masks, *, alpha, target_layer=None, **kw):
        seen.update(model=model, n=images.shape[0], alpha=alpha, target_layer=target_layer)
        return torch.linspace(0, 1, model.head.in_features)

    monkeypatch.setattr(S, "s_scores", spy)
    vit = build_model("vit_mini", image_size=16).eval()
    items = [{"image": torch.zeros(3, 16, 16), "mask": torch.ones(16, 16, dtype=torch.bool)}] * 4
    out = E.model_sscores(vit, items, n=2, seed=0, alpha=0.3)
    assert seen["model"] is vit and seen["n"] == 2 and seen["alpha"] == 0.3
    assert seen["target_layer"] is None  # s_scores then uses vit.default_target_layer(): the last block's norm1
    assert vit.default_target_layer() is vit.f_enc.blocks[-1].norm1
    np.testing.assert_allclose(out["scores"], np.linspace(0, 1, vit.head.in_features), atol=1e-6)
    assert out["area"] == 1.0


# --------------------------------------------------------------------------- aggregation, tables, record, claims


def test_aggregate_runs_means_over_seeds_and_skips_undefined():
    a, b = run_toy(), run_toy(seed=1)
    for r in (a, b):
        r["sscore"] = E.sscore_summary(SCORES, area=0.4, n=8, alpha=0.5)
    b["dfr"]["mean_s_refits"] = None
    agg = E.aggregate_runs([a, b])
    assert agg["n_seeds"] == 2 and agg["area"] == pytest.approx(0.4)
    assert agg["dfr"]["wga"] == pytest.approx((a["dfr"]["wga"] + b["dfr"]["wga"]) / 2)
    assert agg["dfr"]["wga_std"] == pytest.approx(np.std([a["dfr"]["wga"], b["dfr"]["wga"]], ddof=1))
    assert agg["dfr"]["mean_s_refits"] == pytest.approx(a["dfr"]["mean_s_refits"])
    assert agg["dfr"]["mean_s_refits_std"] == 0
    with pytest.raises(ValueError, match="runs"):
        E.aggregate_runs([])


def test_frames_record_and_takeaways():
    results = as_results(run_toy())
    table = E.table_frame(results)
    assert list(table["head"]) == ["baseline", "DFR", "single-weight edit"]
    assert table.loc[1, "paper WGA"] == 0.82 and table.loc[1, "paper Prune_h"] == 0.52
    sweep = E.sweep_frame(results)
    assert len(sweep) == 3 and sweep.loc[0, "DFR"].startswith("tuned")
    assert len(E.edit_frame(results)) == 1
    rec = E.record_payload(results, profile="smoke", seconds=1.0, settings={"alpha": 0.5})
    text = json.dumps(rec, allow_nan=False)  # strict JSON: undefined numbers are null
    assert "keep_frequency" in json.dumps(rec["runs"]["waterbirds/cnn"][0]["dfr"])
    assert "keep_frequency" not in json.dumps(rec["runs"]["waterbirds/cnn"][0]["sweep"])
    assert rec["headline"] == "waterbirds/cnn" and rec["wga_dfr"] > rec["wga_baseline"]
    dfr = results["waterbirds/cnn"]["runs"][0]["dfr"]
    assert json.loads(text)["prune_h_refits"] == pytest.approx(dfr["prune_h_refits"])
    words = E.takeaways(rec)
    assert "waterbirds/cnn" in words and "Profile smoke" in words


def _row(arch, dataset, wga0, wga1, prune, s0, s1):
    return {"arch": arch, "dataset": dataset,
            "baseline": {"wga": wga0, "mean_s": s0},
            "dfr": {"wga": wga1, "prune_h_refits": prune, "prune_h_average": prune / 2, "mean_s_refits": s1}}


def test_claims_verdicts():
    good = {"table": {"waterbirds/cnn": _row("cnn", "waterbirds", 0.4, 0.8, 0.5, 0.45, 0.43),
                      "isic/cnn": _row("cnn", "isic", 0.3, 0.7, 0.8, 0.40, 0.39)}}
    ours, holds = E._claim_cnn(good)
    assert holds and "WGA 0.40 → 0.80" in ours and "Prune_h 50% per refit (25% averaged head)" in ours
    for bad in (_row("cnn", "isic", 0.3, 0.35, 0.8, 0.4, 0.4),  # WGA barely moves
                _row("cnn", "isic", 0.3, 0.7, 0.1, 0.4, 0.4),  # dense
                _row("cnn", "isic", 0.3, 0.7, 0.8, 0.4, 0.2),  # s drops
                _row("cnn", "isic", 0.3, 0.7, 0.8, 0.4, None)):  # nothing kept
        assert not E._claim_cnn({"table": {"a": good["table"]["waterbirds/cnn"], "b": bad}})[1]
    with pytest.raises(KeyError):
        E._claim_vit(good)
    from shortcut_nb.report.claims import load_claims

    ids = {c.id for c in load_claims()}
    assert {"entanglement.dfr_cnn", "entanglement.dfr_vit"} <= ids


# --------------------------------------------------------------------------- views and widget


def test_plots_draw_every_model():
    results = {**as_results(run_toy()), **as_results(run_toy(), dataset="isic", arch="vit", area=0.05)}
    fig = E.plot_fig5(results)
    assert len(fig.axes) == 4 and sum(ax.axison for ax in fig.axes) == 2  # (cnn, vit) x (waterbirds, isic)
    fig = E.plot_kept_vs_zeroed(results)
    assert "waterbirds/cnn" in fig.axes[0].get_xticklabels()[0].get_text()
    fig = E.plot_dfr_view(E.dfr_view(results, "isic/vit", "0.1"))
    assert "C=0.1" in fig.axes[0].get_title()


def test_dfr_view_selects_precomputed_heads():
    results = as_results(run_toy())
    run = results["waterbirds/cnn"]["runs"][0]
    v = E.dfr_view(results, "waterbirds/cnn", "0.1")
    assert v["wga"] == run["sweep"]["0.1"]["wga"] and sum(v["kept"]) == run["sweep"]["0.1"]["n_used_average"]
    assert E.dfr_view(results, "waterbirds/cnn")["C"] == run["dfr"]["C"]
    with pytest.raises(ValueError, match="choice"):
        E.dfr_view(results, "waterbirds/cnn", "0.5")
    with pytest.raises(ValueError, match="key"):
        E.dfr_view(results, "isic/vit")


def test_explorer_updates_text_when_C_changes():
    results = {**as_results(run_toy()), **as_results(run_toy(c_grid=(1.0, 0.1, 0.03)), dataset="isic")}
    assert W.model_options(results) == [("waterbirds · toy", "waterbirds/cnn"), ("isic · toy", "isic/cnn")]
    assert [v for _, v in W.c_options(results, "waterbirds/cnn")] == ["tuned", "1", "0.1"]
    box = W.dfr_explorer(results)
    assert box.controls["model"].description == "model" and box.controls["C"].description == "C"
    first = box.caption.value
    assert "WGA" in first and "AVG" in first and "Prune_h" in first
    box.controls["C"].value = "0.1"
    assert box.caption.value != first and "DFR C=0.1:" in box.caption.value
    assert box.caption.value == E.view_text(E.dfr_view(results, "waterbirds/cnn", "0.1"))
    box.controls["model"].value = "isic/cnn"
    assert [v for _, v in box.controls["C"].options] == ["tuned", "1", "0.1", "0.03"]
    assert box.controls["C"].value == "0.1" and box.caption.value.startswith("isic/cnn · DFR C=0.1")
    with pytest.raises(ValueError, match="choice"):
        W.dfr_explorer(results, choice="7")
