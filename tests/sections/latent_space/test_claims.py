"""Notebook 02's record (strict JSON, its keys declared once) and its claim and takeaways, read from that record."""
from __future__ import annotations

import json

import numpy as np

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.latent_space import claims, record, study
from support.claims import as_verdict, astuple_verdict


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

    assert as_verdict(check(with_lift(0.3, 0.005))).holds is True
    assert "Fig. 3's reading holds in numbers" in claims.takeaways(with_lift(0.3, 0.005))
    assert as_verdict(check(with_lift(0.02, 0.005))).holds is False  # significant but tiny
    assert "Where it does not: " in claims.takeaways(with_lift(0.02, 0.005))  # named, with why
    assert "Where it does not" not in claims.takeaways(with_lift(0.3, 0.005))
    assert as_verdict(check(with_lift(0.3, 0.2))).holds is False  # large but within shuffle noise
    empty = with_lift(0.3, 0.005)
    for r in empty["neighbourhoods"].values():
        r["attribute"]["purity"] = None
    assert as_verdict(check(empty)).holds is False
    assert "nothing to measure" in claims.takeaways(empty)


def test_clean_makes_strict_json():
    assert record.clean({1: [np.float32(0.5), float("nan"), np.int64(3), np.bool_(True)]}) == {"1": [0.5, None, 3, True]}
