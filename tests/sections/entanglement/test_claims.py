"""Notebook 04's record, claims and takeaways: built from the study's results, read from the JSON only."""
from __future__ import annotations

import json

import pytest
from support.entanglement_toys import as_results, run_toy

from shortcut_nb.report.claims import load_claims
from shortcut_nb.sections.entanglement import claims, record
from support.claims import astuple_verdict, point_holds


def test_record_payload_and_takeaways():
    results = as_results(run_toy())
    rec = record.payload(results, profile="smoke", seconds=1.0, settings={"alpha": 0.5},
                         run_log={"trained": 1, "loaded": 3})
    assert set(rec) == set(record.KEYS)
    text = json.dumps(rec, allow_nan=False)  # strict JSON: undefined numbers are null
    assert "keep_frequency" in json.dumps(rec["per_seed"]["waterbirds/cnn"][0]["dfr"])
    assert "keep_frequency" not in json.dumps(rec["per_seed"]["waterbirds/cnn"][0]["sweep"])
    assert rec["headline"] == "waterbirds/cnn" and rec["wga_dfr"] > rec["wga_baseline"]
    assert rec["runs"] == {"trained": 1, "loaded": 3}
    dfr = results["waterbirds/cnn"].runs[0]["dfr"]
    assert json.loads(text)["prune_h_refits"] == pytest.approx(dfr["prune_h_refits"])
    assert rec["mean_s_dfr"] == results["waterbirds/cnn"].summary["dfr"]["mean_s_refits"]
    assert rec["table"]["waterbirds/cnn"]["model"] == "toy" and rec["table"]["waterbirds/cnn"]["seeds"] == [0]
    words = claims.takeaways(json.loads(text))
    assert "waterbirds/cnn" in words and "Profile smoke" in words
    assert record.c_key(1.0) == "1" and record.c_key(0.07) == "0.07"
    # another model first: the headline is the first one present
    other = as_results(run_toy(), dataset="isic", arch="vit")
    assert record.payload(other, profile="smoke", seconds=1.0, settings={})["headline"] == "isic/vit"


def _row(arch, dataset, wga0, wga1, prune, s0, s1):
    return {"arch": arch, "dataset": dataset,
            "baseline": {"wga": wga0, "mean_s": s0},
            "dfr": {"wga": wga1, "prune_h_refits": prune, "prune_h_average": prune / 2, "mean_s_refits": s1}}


def test_claims_verdicts():
    good = {"table": {"waterbirds/cnn": _row("cnn", "waterbirds", 0.4, 0.8, 0.5, 0.45, 0.43),
                      "isic/cnn": _row("cnn", "isic", 0.3, 0.7, 0.8, 0.40, 0.39)}}
    ours, holds = astuple_verdict(claims._claim_cnn(good))
    assert holds and "WGA 0.40 → 0.80" in ours and "Prune_h 50% per refit (25% averaged head)" in ours
    for bad in (_row("cnn", "isic", 0.3, 0.35, 0.8, 0.4, 0.4),  # WGA barely moves
                _row("cnn", "isic", 0.3, 0.7, 0.1, 0.4, 0.4),  # dense
                _row("cnn", "isic", 0.3, 0.7, 0.8, 0.4, 0.2),  # s drops
                _row("cnn", "isic", 0.3, 0.7, 0.8, 0.4, None)):  # nothing kept
        assert not point_holds(claims._claim_cnn({"table": {"a": good["table"]["waterbirds/cnn"], "b": bad}}))
    with pytest.raises(KeyError):
        claims._claim_vit(good)
    registered = {c.id: c for c in load_claims()}
    assert {"entanglement.dfr_cnn", "entanglement.dfr_vit"} <= set(registered)
    assert registered["entanglement.dfr_cnn"].notebook == record.NAME
    # the paper's side comes from shortcut_nb.paper, in the words it always had
    assert registered["entanglement.dfr_cnn"].paper == ("Table 5 (ResNet-18): Waterbirds WGA 0.46 → 0.82, Prune_h 52 %, "
                                                        "s 0.45 → 0.42; ISIC WGA 0.37 → 0.71, Prune_h 80 %, s 0.40 → 0.39")
    assert registered["entanglement.dfr_vit"].paper == ("Table 6 (ViT-B/16): Waterbirds WGA 0.66 → 0.86, Prune_h 37 %, "
                                                        "s 0.14 → 0.14; ISIC WGA 0.16 → 0.76, Prune_h 89 %, s 0.23 → 0.26")


def test_claims_are_decided_on_the_interval_over_seeds():
    """Each effect is measured per seed and decided on its t-interval: the s change of 0.01 / 0.07 (mean 0.04,
    inside ±0.05) spreads over the tolerance, so the row is undecided, decided by that effect."""
    mean = _row("cnn", "isic", 0.3, 0.7, 0.8, 0.40, 0.37)
    seeds = [_row("cnn", "isic", 0.3, 0.7, 0.8, 0.40, 0.39), _row("cnn", "isic", 0.3, 0.7, 0.8, 0.40, 0.33)]
    v = claims._claim_cnn({"table": {"isic/cnn": mean}, "per_seed": {"isic/cnn": seeds}})
    assert v.label == "undecided" and v.per_seed == (True, False) and not v.holds
    s = v.effect
    assert s.unit == "|Δ mean s|" and s.side == "below" and s.per_seed == pytest.approx((0.01, 0.07))
    assert s.low < claims.S_UNCHANGED_TOL < s.high and s.paper == pytest.approx(0.01)  # Table 5, ISIC: 0.40 → 0.39
    gain = next(e for e in v.effects if e.unit == "ΔWGA")
    assert gain.paper == pytest.approx(0.71 - 0.37) and gain.value == pytest.approx(0.4)
    tight = [_row("cnn", "isic", 0.3, 0.7 + d, 0.8 + d, 0.40, 0.40 + d) for d in (-0.01, 0.0, 0.01)]
    v = claims._claim_cnn({"table": {"isic/cnn": mean}, "per_seed": {"isic/cnn": tight}})
    assert v.label == "holds" and v.effect.n_seeds == 3


def test_takeaways_say_why_the_reading_fails_when_the_kept_neurons_score_otherwise():
    """The 'why' line appears only when 'about unchanged' fails, and reads the record and the paper's Table 5."""
    rec = json.loads(json.dumps(record.payload(as_results(run_toy()), profile="smoke", seconds=1.0, settings={}),
                                allow_nan=False))
    del rec["per_seed"]  # the table's row is the one run the claim reads
    row = rec["table"]["waterbirds/cnn"]
    row["baseline"].update(wga=0.40, mean_s=0.40)
    row["dfr"].update(wga=0.80, prune_h_refits=0.9, mean_s_refits=0.40)
    assert "'About unchanged' is at stake" not in claims.takeaways(rec)  # inside the tolerance: no reason to give
    row["dfr"]["mean_s_refits"] = 0.20
    words = claims.takeaways(rec)
    assert "'About unchanged' is at stake: the neurons DFR keeps score 0.20 against 0.40" in words
    assert ("DFR on the CNN (undecided (one seed, no interval)) is decided by |Δ mean s-score| of the neurons DFR uses, "
            "waterbirds/cnn: 0.20 |Δ mean s| (one seed, no interval; paper 0.03; needs < 0.05).") in words
    assert "Prune_h 90% each refit" in words and "(paper: Prune_h 52%)" in words


def test_one_seed_decides_dfrs_gain_on_its_bootstrap_over_test_images():
    row = _row("cnn", "isic", 0.3, 0.45, 0.8, 0.40, 0.40)  # ΔWGA +0.15 against the 0.10 needed
    for interval, outcome in (([0.02, 0.28], "undecided"), ([0.12, 0.18], "holds"), ([-0.05, 0.05], "fails")):
        seed = {**row, "dfr": {**row["dfr"], "wga_change": interval}}
        v = claims._claim_cnn({"table": {"isic/cnn": row}, "per_seed": {"isic/cnn": [seed]}})
        gain = next(e for e in v.effects if e.unit == "ΔWGA")
        assert gain.interval_kind == "bootstrap within the seed" and (gain.low, gain.high) == tuple(interval)
        assert gain.outcome == outcome

