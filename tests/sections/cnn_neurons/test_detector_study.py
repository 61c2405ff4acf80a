"""Notebook 03's detectors against the counterfactual ground truth: every seed on the same pairs, the randomisation
check on the own seed, Table 4 with each detector's neurons, the record, and the mask-free ranking of a folder without
masks (tiny synthetic folders, tiny untrained CNNs)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from shortcut_nb.counterfactuals import MASK_FREE, detectors_from_activations
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.cnn_neurons import detector_study as D
from shortcut_nb.sections.cnn_neurons import record as R
from support.cnn_neurons import SIZE, tiny_model, tiny_samples, tiny_study

KEYS = ["sscore", "sscore_soft", "sscore_iou", *MASK_FREE]


@pytest.fixture(scope="module")
def bare_folder(tiny_isic, tmp_path_factory):
    """The tiny ISIC-like folder without its masks (and without its renderer's records: a researcher's folder)."""
    bare = tmp_path_factory.mktemp("bare") / "bare"
    shutil.copytree(tiny_isic, bare)
    (bare / "generator.json").unlink()
    meta = pd.read_csv(bare / "metadata.csv").drop(columns=["mask_filename"])
    meta.to_csv(bare / "metadata.csv", index=False)
    return bare


@pytest.fixture(scope="module")
def ctx(tiny_isic, bare_folder, tmp_path_factory):
    return Context.build("smoke", root=tmp_path_factory.mktemp("runs"), image_size=SIZE, progress=False,
                         folders={"isic": str(tiny_isic), "bare": str(bare_folder)})


@pytest.fixture(scope="module")
def studies():
    torch.manual_seed(5)
    other = tiny_model()
    with torch.no_grad():  # another seed's model: other weights
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    own = tiny_study()
    return own, {0: own, 1: tiny_study(other, tiny_samples())}


@pytest.fixture(scope="module")
def detectors(ctx, studies):
    own, by_seed = studies
    return D.detector_studies(ctx, {"isic": own}, {"isic": by_seed}, alpha=0.5, tau=0.7, seed=0, n_pairs=6)["isic"]


def test_every_seed_is_scored_on_the_same_pairs_and_the_own_seed_randomised(detectors, studies):
    own, _ = studies
    assert detectors.available and detectors.reason is None and list(detectors.evaluations) == [0, 1]
    ev = detectors.evaluation
    assert list(ev.table) == KEYS and ev.n_pairs == 6
    assert set(ev.randomised) == {"last_block", "all"} and detectors.evaluations[1].randomised == {}
    np.testing.assert_allclose(ev.scores["sscore"].numpy(), own.scores(0.5), rtol=1e-6)
    np.testing.assert_allclose(ev.scores["sscore_soft"].numpy(), own.unit_scores(alpha=0.5, variant="soft").scores,
                               rtol=1e-6)
    assert not torch.equal(detectors.evaluations[1].scores["group_gap"], ev.scores["group_gap"])  # other weights
    assert detectors.area == own.area and detectors.tau == 0.7 and detectors.split == "val"


def test_scorers_score_any_model_on_the_studys_samples(studies):
    own, _ = studies
    scorers, given = D.sscore_scorers(own, alpha=0.5)
    assert list(scorers) == list(given) == KEYS[:3]
    np.testing.assert_allclose(scorers["sscore"](own.model).numpy(), given["sscore"].numpy(), atol=1e-6)
    np.testing.assert_allclose(scorers["sscore_iou"](own.model).numpy(), given["sscore_iou"].numpy(), atol=1e-6)


def test_pruning_picks_each_detectors_top_k_through_table4(detectors, studies):
    own, _ = studies
    p = detectors.pruning
    table = own.table4(0.5, 0.7, 0)
    k = len(table["pruned_neurons"])
    share = detectors.evaluation.truth.spurious_share
    assert p["k"] == (k or int((share > 0.5).sum()))
    assert ("prunes at τ = 0.7" in p["rule"]) == (k > 0)
    assert set(p["rows"]) == {"truth", *KEYS} and all(len(r["neurons"]) == p["k"] for r in p["rows"].values())
    assert p["rows"]["truth"]["overlap_truth"] == p["k"] and p["baseline"] == table["baseline"]
    row = p["rows"]["group_gap"]
    again = own.table4_neurons(row["neurons"], 0)
    assert row["pruned"] == again["pruned"] and row["refit_pruned"] == again["refit_pruned"]
    assert row["pruned"]["n_zeroed"] == p["k"]


def test_table4_neurons_zeroes_exactly_the_given_neurons(studies):
    own, _ = studies
    t = own.table4_neurons([3, 1, 7], 0)
    assert t["pruned_neurons"] == [1, 3, 7] and t["pruned"]["n_zeroed"] == 3
    assert t["baseline"] == own.table4(0.5, 0.7, 0)["baseline"]
    assert own.table4_neurons([], 0)["pruned"] == t["baseline"]


def test_the_record_is_json_with_the_declared_keys(detectors):
    rec = R.detector_record(detectors)
    assert tuple(rec) == R.DETECTOR_KEYS
    assert set(rec["pruning"]) == set(R.PRUNING_KEYS)
    assert all(set(r) == set(R.PRUNING_ROW_KEYS) for r in rec["pruning"]["rows"].values())
    assert rec["n_seeds"] == 2 and set(rec["seeds"]) == set(KEYS) and len(rec["per_seed"]) == 2
    assert set(rec["randomised"]["all"]["sscore"]["survives"]) == {"spearman", "auroc"}
    json.dumps(rec, allow_nan=False)


def test_a_folder_that_cannot_flip_its_core_says_so(ctx, studies):
    own, _ = studies
    out = D.detector_studies(ctx, {"bare": own}, alpha=0.5, tau=0.7)["bare"]
    assert not out.available and out.evaluations == {} and out.pruning is None
    assert "not the synthetic benchmark" in out.reason
    rec = R.detector_record(out)
    assert rec["available"] is False and set(rec) == {"dataset", "model", "available", "reason", "split", "tau",
                                                      "pruning"}


def test_a_dataset_without_masks_is_ranked_by_the_mask_free_detectors(ctx, monkeypatch):
    with pytest.warns(UserWarning, match="bare is left out"):
        kept = ctx.datasets(["isic", "bare"], needs_masks=True)
    assert kept == ("isic",) and "bare" in ctx.skipped
    # only folders without masks: an error, unless the notebook ranks them without masks (notebook 03)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no dataset to score: bare"):
        ctx.datasets(["bare"], needs_masks=True)
    with pytest.warns(UserWarning):
        assert ctx.datasets(["bare"], needs_masks=True, mask_free_fallback=True) == ()
    assert ctx.headline((), "isic") is None
    model = tiny_model()
    monkeypatch.setattr(Context, "train_or_load", lambda self, spec: (model, {"trained_now": False}))
    ranking = D.mask_free_ranking(ctx, "bare")
    val = ctx.split(ctx.run_spec("bare"), "val")
    z = torch.stack([model.f_enc(val[i]["image"][None]).detach()[0] for i in range(len(val))])
    expected = detectors_from_activations(z, model.head, val.y, val.a)
    for key in MASK_FREE:
        np.testing.assert_allclose(ranking.scores[key], expected[key].numpy(), rtol=1e-4, atol=1e-5)
    assert ranking.n_images == len(val) and "mask_filename" in ranking.reason
    rec = R.mask_free_record(ranking)
    assert tuple(rec) == R.MASK_FREE_KEYS and len(rec["top"]["group_gap"]) == D.N_TOP
    top = rec["top"]["group_gap"]
    assert all(rec["scores"]["group_gap"][a] >= rec["scores"]["group_gap"][b] for a, b in zip(top, top[1:]))
    json.dumps(rec, allow_nan=False)
