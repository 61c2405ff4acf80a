"""All detectors of one model scored against its ground truth: the same numbers as the parts, randomisation, seeds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shortcut_nb.counterfactuals import (
    MASK_FREE,
    DatasetDetectors,
    detector_table,
    evaluate_detectors,
    ground_truth,
    mask_free_detectors,
    pairs,
    seed_interval,
    seed_table,
    seeds_record,
    sscore_key,
    survives,
    top_neurons,
)
from shortcut_nb.counterfactuals.evaluation import metrics_record
from shortcut_nb.data import load_dataset
from shortcut_nb.models import build_model


@pytest.fixture(scope="module")
def flipped(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    return pairs(ds, 60, seed=0, flip="attribute"), pairs(ds, 60, seed=0, flip="core")


class Counting:
    """A scorer that returns a fixed vector and remembers the models it was called with."""

    def __init__(self, values):
        self.values, self.models = torch.as_tensor(values, dtype=torch.float32), []

    def __call__(self, model):
        self.models.append(model)
        return self.values


def test_truth_and_mask_free_detectors_are_the_parts_own(planted, flipped):
    attribute, core = flipped
    ev = evaluate_detectors(planted, attribute, core, randomise=(), n_boot=50)
    truth = ground_truth(planted, attribute, core)
    for name in ("attribute_effect", "core_effect", "spurious_share", "attribute_logit", "core_logit"):
        torch.testing.assert_close(getattr(ev.truth, name), getattr(truth, name), equal_nan=True)
    alone = mask_free_detectors(planted, attribute.images, attribute.flipped.y, attribute.flipped.a)
    assert list(ev.scores) == list(MASK_FREE) and ev.randomised == {} and ev.n_pairs == 60
    for key in MASK_FREE:
        torch.testing.assert_close(ev.scores[key], alone[key])
    expected = detector_table(alone, truth.spurious_share, n_boot=50, seed=0)
    assert ev.table["group_gap"]["auroc"] == expected["group_gap"]["auroc"]
    assert ev.table["group_gap"]["spearman"].value > 0.9  # the planted neurons: group gap reads them
    assert {"truth", "scorers", "randomised"} <= set(ev.seconds)


def test_scorers_given_scores_and_randomised_copies(planted, flipped):
    attribute, core = flipped
    k = planted.head.in_features
    truth = ground_truth(planted, attribute, core).spurious_share
    oracle = Counting(truth.nan_to_num(0.0))
    other = Counting(torch.arange(k, dtype=torch.float32))
    ev = evaluate_detectors(planted, attribute, core, {"oracle": oracle, sscore_key(): other},
                            scores={sscore_key(): -torch.arange(k)}, randomise=("all",), n_boot=50, seed=3)
    assert list(ev.scores) == ["oracle", "sscore", *MASK_FREE]
    assert oracle.models[0] is planted and len(oracle.models) == 2  # the trained model, then its randomised copy
    assert len(other.models) == 1 and other.models[0] is not planted  # given for the trained model: copy only
    torch.testing.assert_close(ev.scores["sscore"], -torch.arange(k, dtype=torch.float32))
    assert ev.table["oracle"]["auroc"].value == 1.0 and ev.table["oracle"]["precision_at_k"].value == 1.0
    assert set(ev.randomised) == {"all"} and set(ev.randomised["all"]) == set(ev.table)
    # the oracle scorer ignores the model: it "survives" randomisation, which is what the check flags
    rec = ev.record()
    assert rec["randomised"]["all"]["oracle"]["survives"] == {"spearman": True, "auroc": True}
    json.dumps(rec, allow_nan=False)
    assert rec["n_neurons"] == k and rec["n_spurious"] == int((truth > 0.5).sum())
    assert len(rec["truth"]["spurious_share"]) == k and set(rec["scores"]) == set(ev.table)
    entry = rec["table"]["oracle"]
    assert entry["chance"] == {"spearman": 0.0, "auroc": 0.5,
                               "precision_at_k": pytest.approx(rec["n_spurious"] / entry["n"])}


def test_last_block_of_a_cnn_is_randomised_and_its_detectors_fall_towards_chance(isic_folder):
    ds = load_dataset(isic_folder, split="test", image_size=32)
    attribute, core = pairs(ds, 24, seed=1), pairs(ds, 24, seed=1, flip="core")
    model = build_model("resnet_mini", image_size=32).eval()
    seen = []
    ev = evaluate_detectors(model, attribute, core, {"probe": lambda m: seen.append(m) or torch.zeros(256)},
                            n_boot=20)
    assert set(ev.randomised) == {"last_block", "all"} and len(seen) == 3
    assert all(m is not model for m in seen[1:]) and seen[0] is model
    assert all(set(t) == set(ev.table) for t in ev.randomised.values())


def test_arguments_are_checked(planted, flipped):
    attribute, core = flipped
    with pytest.raises(ValueError, match="mask-free detectors' own"):
        evaluate_detectors(planted, attribute, core, {"group_gap": lambda m: torch.zeros(24)})
    with pytest.raises(ValueError, match="randomise must hold scopes"):
        evaluate_detectors(planted, attribute, core, randomise=("head",))
    with pytest.raises(ValueError, match="attribute and the core flips"):
        evaluate_detectors(planted, core, attribute)


def test_survives_is_an_interval_off_chance():
    def entry(low, high):
        return {"auroc": {"value": 0.5, "low": low, "high": high}}

    assert survives(entry(0.55, 0.7), "auroc") and survives(entry(0.2, 0.45), "auroc")
    assert not survives(entry(0.45, 0.6), "auroc") and not survives(entry(None, None), "auroc")
    assert not survives(entry(0.5, 0.5), "auroc")  # a constant detector: exactly chance


def test_top_neurons_break_ties_towards_the_lower_index_and_put_nan_last():
    assert top_neurons([0.2, 0.9, 0.9, float("nan"), 0.5], 3) == [1, 2, 4]
    assert top_neurons(torch.tensor([float("nan"), 0.1]), 2) == [1, 0]
    assert top_neurons([1.0, 2.0], 0) == []
    with pytest.raises(ValueError, match="k must be an int"):
        top_neurons([1.0, 2.0], 3)


def test_seed_table_and_the_record_of_several_seeds(planted, flipped):
    attribute, core = flipped
    runs = {seed: evaluate_detectors(planted, attribute, core, {"noise": lambda m, s=seed: torch.from_numpy(
        np.random.default_rng(s).normal(size=24)).float()}, randomise=(), n_boot=30, seed=seed) for seed in (4, 1, 7)}
    table = seed_table(runs)
    values = [runs[s].table["noise"]["auroc"].value for s in (4, 1, 7)]
    assert table["noise"]["auroc"]["values"] == pytest.approx(values)
    mean, low, high = seed_interval(values)
    assert (table["noise"]["auroc"]["value"], table["noise"]["auroc"]["low"]) == pytest.approx((mean, low))
    rec = seeds_record(runs, own_seed=1)
    assert rec["n_seeds"] == 3 and [e["seed"] for e in rec["per_seed"]] == [4, 1, 7]
    assert rec["per_seed"][1]["table"] == {k: metrics_record(m) for k, m in runs[1].table.items()}
    assert rec["table"] == rec["per_seed"][1]["table"]
    assert seeds_record({1: runs[1]}, own_seed=1)["seeds"] == {}
    with pytest.raises(ValueError, match="own_seed 5"):
        seeds_record(runs, own_seed=5)
    json.dumps(rec, allow_nan=False)


def test_a_dataset_without_a_ground_truth_records_why(planted, flipped):
    none = DatasetDetectors(dataset="mine", model_name="m", reason="not the synthetic benchmark", evaluations={},
                            own_seed=0, alpha=0.5, area=0.1)
    assert not none.available
    assert none.record() == {"dataset": "mine", "model": "m", "available": False,
                             "reason": "not the synthetic benchmark", "split": "val"}
    attribute, core = flipped
    ev = evaluate_detectors(planted, attribute, core, randomise=(), n_boot=20)
    some = DatasetDetectors(dataset="isic", model_name="m", reason=None, evaluations={0: ev}, own_seed=0, alpha=0.5,
                            area=0.1, pair_seed=2)
    rec = some.record()
    assert rec["available"] and rec["pair_seed"] == 2 and rec["n_seeds"] == 1 and some.evaluation is ev
