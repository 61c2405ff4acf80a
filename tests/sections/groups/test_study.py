"""Notebook 01's study: the flat aggregate, one run's summary through the Context, Table 2 and the sweep."""
from __future__ import annotations

import numpy as np
import pytest

from shortcut_nb.metrics import aggregate_seeds, group_accuracy_interval, summarize
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.groups import claims, record, study


def _summary(groups, avg=0.5, avg_weighted=0.6):
    return {"groups": groups, "avg": avg, "wga": min(groups), "gap": avg - min(groups), "avg_weighted": avg_weighted}


def test_flatten_aggregate_gives_mean_and_std_per_key():
    agg = aggregate_seeds([_summary([1.0, 0.5, 0.25, 1.0], avg=0.8), _summary([0.5, 0.5, 0.75, 1.0], avg=0.6)])
    flat = study.flatten_aggregate(agg)
    assert list(flat) == ["n_seeds", "groups", "groups_std", "avg", "avg_std", "wga", "wga_std", "gap", "gap_std",
                          "avg_weighted", "avg_weighted_std"]
    assert flat["n_seeds"] == 2 and flat["groups"] == [0.75, 0.5, 0.5, 1.0]
    assert flat["avg"] == pytest.approx(0.7) and flat["avg_std"] == pytest.approx(0.1414213, abs=1e-6)
    assert flat["wga"] == pytest.approx(0.375) and flat["gap"] == pytest.approx(0.325)
    without = study.flatten_aggregate(aggregate_seeds([_summary([1.0, 0.5, 0.5, 1.0], avg_weighted=None)]))
    assert without["avg_weighted"] is None and without["avg_weighted_std"] is None and without["avg_std"] == 0.0


@pytest.fixture(scope="module")
def smoke_ctx(tmp_path_factory):
    return Context.build("smoke", root=tmp_path_factory.mktemp("groups_runs"), progress=False)


def test_group_performance_summarises_the_run_and_reuses_it(smoke_ctx):
    table2 = study.group_performance(smoke_ctx, datasets=["waterbirds"], models=["resnet_mini"], seeds=[0])
    assert list(table2) == ["waterbirds/cnn"]
    r = table2["waterbirds/cnn"]
    assert (r.dataset, r.arch, r.model) == ("waterbirds", "cnn", smoke_ctx.settings.cnn)
    (run,) = r.per_seed
    assert run["seed"] == 0 and run["model"] == r.model and run["n"] == smoke_ctx.settings.n_test
    assert run["train_acc"] is not None and run["train_seconds"] > 0
    assert r["avg"] == run["avg"] and r["groups"] == run["groups"] and r["avg_std"] == 0.0
    assert r["wga"] == min(run["groups"]) and r["avg_weighted"] is not None
    # the summary is the metrics' summary of the model's test predictions
    spec = smoke_ctx.run_spec("waterbirds", arch="cnn", seed=0, minority_ratio=study.DEFAULT_MINORITY_RATIO)
    model, info = smoke_ctx.train_or_load(spec)
    out = smoke_ctx.evaluate(model, spec, "test")
    expected = summarize(out["pred"], out["y"], out["g"], train_group_counts=info["train_group_counts"])
    assert {k: run[k] for k in expected} == expected
    assert smoke_ctx.run_log.as_record() == {"trained": 1, "loaded": 1}
    again = study.group_performance(smoke_ctx, datasets=["waterbirds"], models=["resnet_mini"], seeds=[0])
    assert again["waterbirds/cnn"].aggregate == r.aggregate  # loaded: the same numbers
    assert smoke_ctx.run_log.as_record() == {"trained": 1, "loaded": 2}


def test_minority_sweep_keys_by_ratio(smoke_ctx):
    sweep = study.minority_sweep(smoke_ctx, ratios=[0.05], seeds=[0])  # 5 %: the Table 2 run, loaded
    assert list(sweep) == ["0.05"]
    point = sweep["0.05"]
    assert point.ratio == 0.05 and point["n_seeds"] == 1 and len(point["groups"]) == 4
    (run,) = point.per_seed
    assert run["seed"] == 0
    # the seed's own bootstrap intervals over its test images; one ratio: no neighbour to fall from
    low, high = run["minority_interval"]
    assert low <= (run["groups"][1] + run["groups"][2]) / 2 <= high
    low, high = run["majority_interval"]
    assert low <= min(run["groups"][0], run["groups"][3]) <= high
    assert run["minority_fall_interval"] == {}


def test_a_one_seed_sweep_is_decided_on_the_intervals_it_records(smoke_ctx):
    """End to end: the sweep records each seed's fall from the next higher ratio, and the claims of its payload
    decide the one seed on those intervals instead of leaving it without one."""
    sweep = study.minority_sweep(smoke_ctx, ratios=[0.05, 0.0], seeds=[0])
    zero, five = sweep["0"].per_seed[0], sweep["0.05"].per_seed[0]
    (low, high), = zero["minority_fall_interval"].values()
    assert list(zero["minority_fall_interval"]) == ["0.05"] and five["minority_fall_interval"] == {}
    fall = (five["groups"][1] + five["groups"][2]) / 2 - (zero["groups"][1] + zero["groups"][2]) / 2
    assert low <= fall <= high  # (the smoke models answer one class everywhere: the interval may be a point)
    effects = claims._sweep_effects(record.payload({}, sweep, profile="smoke", seconds=1.0))
    assert [e.name for e in effects] == ["minority accuracy (G1, G2) fall 5% → 0%", "weaker majority group (G0, G3) "
                                         "at 5%", "weaker majority group (G0, G3) at 0%", "minority accuracy (G1, G2) at 0 %"]
    assert all(e.interval_kind == "bootstrap within the seed" for e in effects)
    assert (effects[0].low, effects[0].high) == (low, high)


def _test_predictions(n_per_group, accuracy, seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), n_per_group)
    y = g // 2
    return {"pred": np.where(rng.random(len(g)) < np.asarray(accuracy)[g], y, 1 - y), "y": y, "g": g, "n_groups": 4}


def test_sweep_intervals_bootstrap_each_criterion_on_the_ratios_own_test_images():
    """Minority accuracy (mean of G1, G2) and the weaker majority group (min of G0, G3) at each ratio, and the
    minority accuracy's fall from the next higher ratio, resampling the two ratios' test sets independently."""
    tests = {0.05: _test_predictions(40, [0.99, 0.6, 0.5, 0.95], 1), 0.5: _test_predictions(40, [0.95, 0.9, 0.9, 0.9], 2),
             0.0: _test_predictions(30, [0.99, 0.3, 0.2, 0.96], 3)}
    got = study.sweep_intervals(tests, seed=4)
    assert set(got) == {0.5, 0.05, 0.0} and got[0.5]["minority_fall_interval"] == {}
    assert set(got[0.05]["minority_fall_interval"]) == {"0.5"} and set(got[0.0]["minority_fall_interval"]) == {"0.05"}
    summaries = {r: summarize(t["pred"], t["y"], t["g"])["groups"] for r, t in tests.items()}
    minority = {r: (a[1] + a[2]) / 2 for r, a in summaries.items()}
    for r, t in tests.items():
        low, high = got[r]["minority_interval"]
        assert low <= minority[r] <= high and low < high
        low, high = got[r]["majority_interval"]
        assert low <= min(summaries[r][0], summaries[r][3]) <= high
    low, high = got[0.0]["minority_fall_interval"]["0.05"]
    assert low <= minority[0.05] - minority[0.0] <= high and low > 0  # a fall of about 0.3, clearly above zero

    def fall(a):
        return a[:, 0, 1:3].mean(-1) - a[:, 1, 1:3].mean(-1)

    a, b = tests[0.05], tests[0.0]
    assert [low, high] == list(group_accuracy_interval(fall, ([a["pred"]], a["y"], a["g"]), ([b["pred"]], b["y"], b["g"]),
                                                       n_groups=4, seed=4))


class _Routed(Exception):
    """Raised by the patched run_spec once it has seen the folder the study passes."""


@pytest.fixture()
def seen(monkeypatch):
    calls = []

    def spy(settings, name, **kwargs):
        calls.append((name, kwargs.get("folder"), kwargs.get("minority_ratio")))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    return calls


def test_study_passes_the_notebooks_data_folder_to_the_run(seen):
    """DATA_FOLDERS reaches the run spec through the Context (the folder replaces the synthetic benchmark)."""
    ctx = Context.build("smoke", folders={"isic": "/data/isic"}, progress=False)
    with pytest.raises(_Routed):
        study.group_performance(ctx, datasets=["isic"], models=["resnet_mini"], seeds=[0])
    assert seen == [("isic", "/data/isic", 0.05)]


def test_the_sweep_always_generates_the_synthetic_set(seen):
    """The sweep varies how the synthetic set is generated: a real Waterbirds folder (one fixed ratio) is not used."""
    ctx = Context.build("smoke", folders={"waterbirds": "/data/waterbirds"}, progress=False)
    with pytest.raises(_Routed):
        study.minority_sweep(ctx, ratios=[0.25], seeds=[0])
    assert seen == [("waterbirds", None, 0.25)]


def test_table2_models_default_to_the_profiles_list_and_keep_the_cnn_vit_keys():
    cpu = Context.build("cpu", progress=False)
    assert study.table2_models(cpu) == ("resnet_mini", "vit_mini")
    paper = Context.build("paper", progress=False)
    assert study.table2_models(paper) == ("resnet18", "resnet50", "resnext50_32x4d", "vit_base_patch16_224",
                                          "deit_base_patch16_224")
    assert [study.row_key(paper, "isic", m) for m in study.table2_models(paper)] == [
        "isic/cnn", "isic/resnet50", "isic/resnext50_32x4d", "isic/vit", "isic/deit_base_patch16_224"]
    assert study.table2_models(cpu, ["resnet18"]) == ("resnet18",)


def test_planned_runs_are_the_runs_the_notebook_trains(tmp_path):
    """The sweep's plan of notebook 01 equals the specs its study asks the Context for."""
    ctx = Context.build("smoke", root=tmp_path, progress=False)
    params = {"DATASETS": ["waterbirds", "isic"], "MODELS": None, "SEEDS": None, "MINORITY_RATIOS": None}
    planned = study.planned_runs(ctx, params)
    asked = []
    real = ctx.train_or_load
    ctx_spy = Context.build("smoke", root=tmp_path, progress=False)
    object.__setattr__(ctx_spy, "train_or_load", lambda spec: (asked.append(spec), (_ for _ in ()).throw(_Routed))[1])
    for dataset in params["DATASETS"]:
        for model in study.table2_models(ctx_spy):
            with pytest.raises(_Routed):
                study.run_and_summarize(ctx_spy, dataset, model=model, seed=0)
    for ratio in ctx.settings.minority_ratios:
        with pytest.raises(_Routed):
            study.minority_sweep(ctx_spy, ratios=[ratio], seeds=[0])
    assert real is not None and planned == asked
