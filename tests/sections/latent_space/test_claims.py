"""Notebook 02's record (strict JSON, its keys declared once) and its claim and takeaways, read from that record."""
from __future__ import annotations

import json

import numpy as np

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.latent_space import claims, record, study, views
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

    assert all(len(r["attribute"]["lift_interval"]) == 2 for r in rec["neighbourhoods"].values())

    def with_lift(lift, p):  # a record made before the lift had an interval
        fake = json.loads(json.dumps(rec))
        for r in fake["neighbourhoods"].values():
            r["attribute"].update({"purity": 0.5 + lift, "baseline": 0.5, "lift": lift, "p_value": p})
            del r["attribute"]["lift_interval"]
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


def test_one_seed_is_decided_by_its_bootstrap_interval_of_the_lift(toy_source):
    """One seed: the lift's bootstrap interval over the images decides (holds above 0.05, undecided across it, fails
    below); recorded per seed it decides the same; an older record without it stays undecided for want of one."""
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"],
                                           k=5, n_shuffles=20)
    key = "waterbirds/cnn/train"

    def one_seed(interval, *, per_seed=False):
        rec = json.loads(json.dumps(record.payload(results, toy_source, profile="cpu", seconds=1.0)))
        att = rec["neighbourhoods"][key]["attribute"]
        att.update({"purity": 0.75, "baseline": 0.5, "lift": 0.25, "p_value": 0.005, "lift_interval": interval})
        if per_seed:  # the notebook's one seed, recorded in neighbourhoods_per_seed; the headline's left unmeasured
            rec["neighbourhoods_per_seed"] = {key: [{"seed": 0, **{k: att[k] for k in study.SEED_KEYS[1:]}}]}
            att["lift_interval"] = None
        return claims.within_class(rec)

    v = one_seed([0.15, 0.35])
    assert v.label == "holds" and v.effect.interval_kind == "bootstrap within the seed"
    assert (v.effect.low, v.effect.high) == (0.15, 0.35) and v.effect.value == 0.25
    assert one_seed([0.15, 0.35], per_seed=True).label == "holds"
    v = one_seed([0.0, 0.4])
    assert v.label == "undecided" and v.effect.low < claims.LIFT_MIN < v.effect.high
    assert "is decided by within-class attribute purity lift, waterbirds/cnn: 0.25 [0.00, 0.40]" in \
        claims.verdict_lines([("x", v)])[1]
    assert one_seed([-0.1, 0.02]).label == "fails"
    assert one_seed(None).label == "undecided (one seed, no interval)"


def test_takeaways_and_table_show_the_recorded_lift_interval(toy_source):
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"],
                                           k=5, n_shuffles=20)
    att = results["waterbirds/cnn/train"]["attribute"]
    att.update({"lift": 0.25, "lift_interval": [0.15, 0.35]})
    rec = record.payload(results, toy_source, profile="cpu", seconds=1.0)
    assert "(lift +0.25 [+0.15, +0.35], p ≤" in claims.takeaways(rec)
    row = views.neighbourhood_frame(results).iloc[0]
    assert (row["lift low"], row["lift high"]) == (0.15, 0.35)
    del att["lift_interval"]  # results computed before the interval existed
    assert "(lift +0.25, p ≤" in claims.takeaways(record.payload(results, toy_source, profile="cpu", seconds=1.0))
    assert views.neighbourhood_frame(results).iloc[0]["lift low"] is None
