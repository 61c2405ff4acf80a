"""Notebook 02's record (strict JSON, its keys declared once) and its claim and takeaways, read from that record."""
from __future__ import annotations

import json

import numpy as np

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.latent_space import claims, record, study
from support.claims import astuple_verdict, point_holds


def test_payload_takeaways_and_claim(toy_source):
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"],
                                           splits=["train"], k=5, n_shuffles=20)
    toy_source.coords("waterbirds", "cnn", "train", "pca")
    rec = record.payload(results, toy_source, profile="smoke", seconds=1.0, runs={"trained": 2, "loaded": 0})
    json.dumps(rec, allow_nan=False)  # strict JSON: no NaN
    assert tuple(rec) == record.KEYS and rec["runs"] == {"trained": 2, "loaded": 0}
    assert rec["features"]["n_extracted"] + rec["features"]["n_from_cache"] == rec["features"]["n_requested"] == 2
    assert rec["headline"] == "waterbirds/cnn/train" and rec["purity"] == results["waterbirds/cnn/train"]["attribute"]["purity"]
    assert set(rec["projection_seconds"]) == {"waterbirds/cnn/train"}
    assert rec["projection_seconds"]["waterbirds/cnn/train"]["pca_from_cache"] is False
    assert "within-class attribute purity" in claims.takeaways(rec)
    check = next(c for c in CLAIMS if c.id == "latent.within_class").check
    assert check is claims.within_class
    ours, _ = astuple_verdict(check(rec))
    assert "waterbirds/cnn" in ours and "isic/cnn" in ours

    def with_lift(lift, p):
        fake = json.loads(json.dumps(rec))
        for r in fake["neighbourhoods"].values():
            r["attribute"].update({"purity": 0.5 + lift, "baseline": 0.5, "lift": lift, "p_value": p})
        return fake

    assert point_holds(check(with_lift(0.3, 0.005))) is True
    assert "Fig. 3's reading holds in numbers" in claims.takeaways(with_lift(0.3, 0.005))
    assert point_holds(check(with_lift(0.02, 0.005))) is False  # significant but tiny
    assert "Where it does not: " in claims.takeaways(with_lift(0.02, 0.005))  # named, with why
    assert "Where it does not" not in claims.takeaways(with_lift(0.3, 0.005))
    # one run: no interval over seeds, so the claim stays undecided however large the lift
    assert check(with_lift(0.3, 0.005)).label == "undecided (one seed, no interval)"
    assert "Where it does not" in claims.takeaways(with_lift(0.3, 0.2))  # large but within shuffle noise
    empty = with_lift(0.3, 0.005)
    for r in empty["neighbourhoods"].values():
        r["attribute"]["purity"] = None
    assert point_holds(check(empty)) is False
    assert "nothing to measure" in claims.takeaways(empty)


def test_clean_makes_strict_json():
    assert record.clean({1: [np.float32(0.5), float("nan"), np.int64(3), np.bool_(True)]}) == {"1": [0.5, None, 3, True]}


def test_the_claim_is_decided_over_the_seeds_recorded(toy_source):
    """``neighbourhoods_per_seed`` (one entry per trained seed) decides the claim by its t-interval: lifts of
    0.20 / 0.25 / 0.30 hold (interval above 0.05); 0.00 / 0.10 / 0.20 cover 0.05 (undecided)."""
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"],
                                           k=5, n_shuffles=20)

    def seeds(*lifts):
        return {"waterbirds/cnn/train": [{"seed": i, "purity": 0.5 + lift, "baseline": 0.5, "lift": lift,
                                          "p_value": 0.01} for i, lift in enumerate(lifts)]}

    rec = record.payload(results, toy_source, profile="cpu", seconds=1.0, per_seed=seeds(0.2, 0.25, 0.3))
    assert rec["neighbourhoods_per_seed"]["waterbirds/cnn/train"][1]["lift"] == 0.25
    v = claims.within_class(json.loads(json.dumps(rec)))
    assert v.label == "holds" and v.effect.n_seeds == 3 and v.effect.value == 0.25 and v.effect.paper is None
    rec = record.payload(results, toy_source, profile="cpu", seconds=1.0, per_seed=seeds(0.0, 0.1, 0.2))
    v = claims.within_class(rec)
    assert v.label == "undecided" and v.effect.low < 0.05 < v.effect.high
    assert "is decided by within-class attribute purity lift, waterbirds/cnn: 0.10 [" in claims.takeaways(rec)
