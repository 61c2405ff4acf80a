"""Notebook 05's study on a tiny folder: Fig. 6 and Fig. 7 end to end, the data folder routed through the Context,
and the one scoring function and summary giving the numbers the section's own copies gave."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shortcut_nb.lastlayer import mean_used_sscore, prune_h
from shortcut_nb.models import build_model
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline.context import Context
from shortcut_nb.pipeline.mask_runs import MaskRecipe, train_or_load_mask
from shortcut_nb.sections.subnetworks import claims, record, study
from shortcut_nb.sscore import mask_area, s_scores, score_neurons, summarize_scores
from shortcut_nb.data.samples import MaskedSamples


@pytest.fixture(scope="module")
def tiny_ctx(tmp_path_factory):
    from shortcut_nb.data import ISICLikeSettings, generate_isic_like

    root = tmp_path_factory.mktemp("subnetworks")
    folder = generate_isic_like(root / "isic", ISICLikeSettings(image_size=16, n_train=64, n_val=16, n_test=16, seed=3))
    return Context.build("smoke", root=root / "runs", folders={"isic": folder}, progress=False)


def test_experiments_end_to_end_on_a_tiny_folder(tiny_ctx):
    ctx = tiny_ctx
    recipe = MaskRecipe(objective="prusc", keep_fraction=0.52, steps=2, batch_size=8, data_split="val")
    res = study.prusc_experiment(ctx, recipe=recipe, alpha=0.5, sscore_samples=4)
    out = record.prusc_entry(res)
    assert out["sscore_samples"] == 4 and out["mask"]["keep_fraction"] == pytest.approx(0.52, abs=0.02)
    assert out["recipe"]["objective"] == "prusc" and out["model"] == res.model
    m = out["mask"]  # did it learn: the loss curve, undecided logits, overlap with magnitude pruning
    assert [step for step, _ in m["loss_curve"]] == [1, 2] and 0.0 <= m["undecided"] <= 1.0
    assert [step for step, _ in m["undecided_curve"]] == [1, 2] and m["undecided_curve"][-1][1] == m["undecided"]
    assert 0.0 <= m["magnitude_overlap"] <= 1.0
    spec = ctx.run_spec("isic")
    model, _ = ctx.train_or_load(spec)
    mask, info = train_or_load_mask(ctx, model, spec, recipe)
    assert info["loaded"] and info["path"] == out["mask"]["path"]
    pruned = mask.apply(model)
    # Prune_h agrees with the DFR module's reference on the masked head (no head weight is zero before)
    assert prune_h(model.head.weight) == 0.0
    assert out["mask"]["prune_h"] == pytest.approx(prune_h(pruned.head.weight))
    for side in ("baseline", "prusc"):
        r = out[side]
        assert len(r["groups"]) == 4 and all(0 <= a <= 1 for a in r["groups"]) and r["wga"] == min(r["groups"])
        assert len(r["sscore"]["scores"]) == r["sscore"]["d"] == model.head.in_features
        assert 0 <= r["sscore"]["mean"] <= 1 and 0 < r["sscore"]["area"] < 0.5
    assert out["baseline"]["sscore"]["n_used"] == model.head.in_features
    assert out["prusc"]["sscore"]["mean_used"] == pytest.approx(
        mean_used_sscore(pruned.head.weight, torch.tensor(out["prusc"]["sscore"]["scores"])), abs=1e-5)
    rem = record.removal_entry(study.group_removal_experiment(ctx, remove_groups=[1], keep_fractions=[0.8, 0.6],
                                                              recipe=MaskRecipe(steps=1, batch_size=8)))
    assert set(rem["subnetworks"]) == {"g1@0.80", "g1@0.60"}
    assert rem["subnetworks"]["g1@0.60"]["keep_fraction"] == pytest.approx(0.6, abs=0.02)
    assert rem["full"]["groups"] == out["baseline"]["groups"] and rem["group_names"][1] == "BwP"
    json.dumps(record.payload(out, {"isic": rem}, profile="smoke", seconds=1.0, runs=ctx.run_log.as_record()))
    with pytest.raises(ValueError, match="remove_groups"):
        study.group_removal_experiment(ctx, remove_groups=[4])
    with pytest.raises(ValueError, match="keep_fractions"):
        study.group_removal_experiment(ctx, keep_fractions=[])


def test_sscores_are_drawn_with_the_sample_seed_not_the_model_seed(tiny_ctx, monkeypatch):
    """Notebook 03's draw (seed 0) scores every model, whichever seed the model was trained with."""
    seen = []
    real = Context.masked_samples

    def spy(self, spec, *, seed, n=None):
        seen.append(seed)
        return real(self, spec, seed=seed, n=n)

    monkeypatch.setattr(Context, "masked_samples", spy)
    recipe = MaskRecipe(objective="prusc", keep_fraction=0.52, steps=1, batch_size=8, data_split="val")
    study.prusc_experiment(tiny_ctx, recipe=recipe, sscore_samples=2, seed=0)
    study.prusc_experiment(tiny_ctx, recipe=recipe, sscore_samples=2, seed=0, sample_seed=5)
    assert seen == [study.SAMPLE_SEED, 5] and study.SAMPLE_SEED == 0


class _Routed(Exception):
    """Raised by the patched run_spec once it has seen the folder the study passes."""


@pytest.mark.parametrize("experiment", [study.prusc_experiment, study.group_removal_experiment])
def test_study_passes_the_notebooks_data_folder_to_the_run(experiment, monkeypatch):
    """The notebook's DATA_FOLDERS reach the run spec through the Context (the folder replaces the benchmark)."""
    seen = []

    def spy(profile, name, **kwargs):
        seen.append((name, kwargs.get("folder")))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", folders={"isic": "/data/isic"}, progress=False)
    with pytest.raises(_Routed):
        experiment(ctx, dataset="isic")
    assert seen == [("isic", "/data/isic")]


@pytest.mark.parametrize("arch", ["resnet_mini", "vit_mini"])
def test_one_scoring_and_summary_give_the_numbers_of_the_sections_former_copies(arch):
    """score_neurons + summarize_scores equal what notebook 05 computed before (s_scores with its default chunks,
    its own summary), so the recorded numbers do not change."""
    torch.manual_seed(0)
    model = build_model(arch, image_size=16).eval()
    images = torch.randn(5, 3, 16, 16)
    masks = torch.rand(5, 16, 16) > 0.7
    samples = MaskedSamples(images, masks, np.arange(5))
    old_scores = s_scores(model, images, masks, alpha=0.5).cpu()
    new_scores = score_neurons(model, samples, alpha=0.5)
    assert torch.equal(old_scores, new_scores)
    w = model.head.weight.detach().clone()
    w[:, ::3] = 0  # some neurons unused by the head
    s = old_scores.double().numpy()
    used = (w.numpy() != 0).any(axis=0)
    area = mask_area(masks)
    assert area == samples.area
    new = summarize_scores(new_scores, samples.area, head_weight=w)
    old = {"scores": s.round(6).tolist(), "mean": float(s.mean()), "mean_used": float(s[used].mean()),
           "n_used": int(used.sum()), "d": int(s.size), "area": area, "lift": float(s.mean() / area),
           "lift_used": float(s[used].mean() / area)}
    assert {k: new[k] for k in old} == old


def test_after_a_sweep_of_the_planned_masks_the_notebook_trains_nothing(tiny_ctx, tmp_path):
    """``planned_runs`` names every mask the notebook's calls ask for: swept first (submitit's debug executor,
    the job a SLURM array runs), the notebook's studies then load each model and mask."""
    from shortcut_nb.pipeline import sweep

    params = {"DATASET": "isic", "REMOVE_GROUPS": {"isic": [0]}, "KEEP_GRID": [0.8, 0.6], "MASK_STEPS": 2, "SEED": 0}
    ctx = Context.build("smoke", root=tmp_path / "runs", folders=tiny_ctx.folders, progress=False)
    planned = sweep.plan_runs(study.planned_runs(ctx, params), root=ctx.root)
    assert [r.kind for r in planned] == ["finetune", "mask", "mask", "mask"]
    assert all(r.dependencies == (planned[0].key,) for r in planned[1:]) and {r.state for r in planned} == {"missing"}
    sub = sweep.submit(planned, root=ctx.root, name="masks", executor="debug")
    assert "1 finetune, 3 mask" in sub.describe()
    assert {r.state for r in sweep.plan_runs(planned, root=ctx.root)} == {"done"}

    notebook = Context.build("smoke", root=ctx.root, folders=tiny_ctx.folders, progress=False)
    recipes = study.mask_recipes(notebook, steps=params["MASK_STEPS"], keep_grid=params["KEEP_GRID"])
    fig6 = study.prusc_experiment(notebook, recipe=recipes.prusc, sscore_samples=4)
    fig7 = study.group_removal_experiment(notebook, remove_groups=[0], recipe=recipes.removal,
                                          keep_fractions=study.removal_keeps(recipes, "isic", params["DATASET"]))
    assert notebook.run_log.as_record() == {"trained": 0, "loaded": 2 + 1 + 2}  # 2 models + 1 + 2 masks loaded
    assert fig6.mask.loaded and all(s.mask.loaded for s in fig7.subnetworks)
    assert {fig6.mask.path, *(s.mask.path for s in fig7.subnetworks)} == {str(ctx.root / r.key) for r in planned[1:]}


def test_the_loss_curve_is_the_cross_entropy_in_window_means():
    """The first step's cross-entropy, then each window's mean at its last step; the penalty never enters."""
    ce = [4.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert study.window_curve(ce, points=3) == [[1, 4.0], [2, 3.0], [4, 1.0], [6, 0.5], [7, 0.25]]
    assert study.window_curve([0.7, 0.6], points=10) == [[1, 0.7], [2, 0.6]]
    assert study.window_curve([]) == []


def test_seed_experiments_record_every_seeds_figs_6_and_7_for_the_claims(tiny_ctx):
    """The real path: seed 0 is the notebook's own (reused), seed 1 is trained and masked; each seed's entry holds
    the numbers the claims read, and the claims read two seeds."""
    ctx = tiny_ctx
    recipes = study.mask_recipes(ctx, steps=1)
    prusc = study.prusc_experiment(ctx, recipe=recipes.prusc, alpha=0.5, sscore_samples=4)
    removal = study.group_removal_experiment(ctx, remove_groups=[0], keep_fractions=[0.8, 0.6], recipe=recipes.removal)
    by_seed = study.seed_experiments(ctx, prusc=prusc, removals={"isic": removal}, recipes=recipes,
                                     remove_groups={"isic": [0]}, alpha=0.5, seeds=[0, 1])
    assert list(by_seed) == [0, 1] and by_seed[0][0] is prusc and by_seed[0][1]["isic"] is removal
    assert by_seed[1][0].seed == 1 and [s.keep for s in by_seed[1][1]["isic"].subnetworks] == [0.8]
    table = record.seed_record(by_seed)
    assert table[0]["wga_before"] == prusc.baseline["wga"] and table[0]["mean_s_after"] == prusc.prusc["sscore"]["mean"]
    assert set(table[1]["removal"]["isic"]["subnetworks"]) == {"g0@0.80"}
    rec = json.loads(json.dumps(record.payload(record.prusc_entry(prusc), {"isic": record.removal_entry(removal)},
                                               profile="smoke", seconds=1.0, per_seed=table)))
    for verdict in (claims._prusc_claim(rec), claims._removal_claim(rec)):
        assert all(e.n_seeds == 2 and e.interval_kind == "t over 2 seeds" for e in verdict.effects)
    # each seed's Fig. 6 carries its within-seed intervals, around its own ΔWGA and mean s-score fall
    for entry in table:
        (lo, hi), (s_lo, s_hi) = entry["intervals"]["wga_change"], entry["intervals"]["mean_s_fall"]
        assert lo <= entry["wga_after"] - entry["wga_before"] <= hi
        assert s_lo <= entry["mean_s_before"] - entry["mean_s_after"] + 1e-9 and s_lo <= s_hi
    one = json.loads(json.dumps(record.payload(record.prusc_entry(prusc), {"isic": record.removal_entry(removal)},
                                               profile="smoke", seconds=1.0, per_seed=table[:1])))
    assert all(e.interval_kind == "bootstrap within the seed" for e in claims._prusc_claim(one).effects)


def test_planned_runs_name_every_seeds_masks(tmp_path):
    """At cpu (five seeds) the plan holds the notebook's own masks, then each other seed's Fig. 6 mask and its 80 %
    Fig. 7 masks on ISIC (what seed_experiments trains), so a sweep leaves the notebook nothing to train."""
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    recipes = study.mask_recipes(ctx)
    runs = study.planned_runs(ctx, {"SEED": 1, "REMOVE_GROUPS": {"isic": [0, 1], "waterbirds": [0]}})
    own = [r for r in runs if r.spec.seed == 1]
    assert len(own) == 1 + 2 * len(recipes.keep_grid) + 1  # Fig. 6, ISIC's keep grid, Waterbirds at 80 %
    for other in (0, 2, 3, 4):
        mine = [(r.spec.data.name, r.recipe) for r in runs if r.spec.seed == other]
        assert mine == [("isic", recipes.prusc), ("isic", study.removal_recipe(recipes.removal, 0, 0.8, other)),
                        ("isic", study.removal_recipe(recipes.removal, 1, 0.8, other))]
