"""Notebook 06's claims and takeaways decide from the recorded JSON alone."""
from __future__ import annotations

import json

import pytest
import torch

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import claims, record
from support.claims import astuple_verdict, point_holds


def _claim(cid):
    return next(c for c in CLAIMS if c.id == cid)


def test_claims_are_registered_for_the_notebook():
    ids = {c.id: c for c in CLAIMS if c.id.startswith("vit_heads.")}
    assert set(ids) == {"vit_heads.sscore", "vit_heads.heads"}
    assert {c.notebook for c in ids.values()} == {record.NAME}


def test_claims_decide_both_ways():
    sscore = _claim("vit_heads.sscore")
    rec = {"sscore": {"isic": {"area": 0.05, "vit": {"mean": 0.2}, "cnn": {"mean": 0.4}},
                      "waterbirds": {"area": 0.85, "vit": {"mean": 0.5}, "cnn": {"mean": 0.6}}}}
    ours, holds = astuple_verdict(sscore.check(rec))
    assert holds and "isic: ViT 0.20 vs CNN 0.40" in ours
    rec["sscore"]["waterbirds"]["vit"]["mean"] = 0.7
    assert point_holds(sscore.check(rec)) is False
    heads = _claim("vit_heads.heads")

    def att_rec(beyond):
        return {"layers": 4, "heads": 4, "core": {"heads_beyond_area": beyond, "max_lift": 1.6, "area": 0.05}}

    rec = {"attention": {"isic": att_rec([[2, 1]]), "waterbirds": att_rec([])}}
    ours, holds = astuple_verdict(heads.check(rec))
    assert holds and "isic: 1/16 heads" in ours and "verdict on isic" in ours
    rec["attention"]["isic"] = att_rec([])
    assert point_holds(heads.check(rec)) is False


def test_takeaways_state_the_recorded_numbers(study, astudy):
    rec = json.loads(json.dumps(record.record_payload([study], {"isic": (astudy, ast.target_view(astudy))},
                                                      profile="smoke", seconds=1.5)))
    text = claims.takeaways(rec)
    vit, cnn = rec["sscore"]["isic"]["vit"], rec["sscore"]["isic"]["cnn"]
    assert "isic" in text and f"{vit['mean']:.2f}" in text and f"{cnn['mean']:.2f}" in text
    assert "(paper: 0.23 vs 0.40)" in text and f"of {4 * 4} heads" in text and "Profile smoke" in text
    # a ViT not lower than the CNN gets the reason when it started from the stand-in, not from ImageNet weights
    rec["sscore"]["isic"]["vit"]["mean"] = rec["sscore"]["isic"]["cnn"]["mean"] + 0.1
    assert "Why this differs" not in claims.takeaways(rec)  # no weights recorded: no reason given
    model = rec["sscore"]["isic"]["vit"]["model"]
    for weights in ("stand-in pretraining", {model: "stand-in pretraining"}):
        assert f"Why this differs from the paper: this ViT ({model}) starts from our stand-in pretraining" in \
            claims.takeaways({**rec, "weights": weights})
    assert "Why this differs" not in claims.takeaways({**rec, "weights": "ImageNet (timm)"})


def test_takeaways_and_claims_without_head_statistics(toy, study):
    _, vit, images, _ = toy
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    empty = ast.attention_study(vit, images[:2], masks, dataset="isic", n_examples=1)
    rec = json.loads(json.dumps(record.record_payload([study], {"isic": (empty, ast.target_view(empty))},
                                                      profile="smoke", seconds=1.0)))
    assert "no sampled image has both core and spurious patches" in claims.takeaways(rec)
    assert point_holds(_claim("vit_heads.heads").check(rec)) is False


def test_the_sscore_claim_is_decided_on_the_interval_over_seeds(study):
    """The headline record is one seed; the effect (ViT minus CNN mean s-score) is read per seed and decided on its
    t-interval; one seed is decided on its bootstrap interval over neurons (``vit_minus_cnn``)."""
    rec = {"sscore": {"isic": {"area": 0.05, "vit": {"mean": 0.20}, "cnn": {"mean": 0.40}}},
           "sscore_per_seed": {"isic": [{"seed": 0, "area": 0.05, "vit": 0.20, "cnn": 0.40},
                                        {"seed": 1, "area": 0.05, "vit": 0.30, "cnn": 0.25},
                                        {"seed": 2, "area": 0.05, "vit": 0.10, "cnn": 0.30}]}}
    v = _claim("vit_heads.sscore").check(rec)
    assert v.per_seed == (True, False, True) and v.label == "undecided"  # -0.20 / +0.05 / -0.20: covers 0
    e = v.effect
    assert e.unit == "Δ mean s" and e.side == "below" and e.value == pytest.approx(-0.35 / 3)
    assert e.paper == pytest.approx(0.23 - 0.40) and e.low < 0 < e.high
    assert "per seed: isic 0.20 vs 0.40 / 0.30 vs 0.25 / 0.10 vs 0.30" in v.ours
    for entry, d in zip(rec["sscore_per_seed"]["isic"], (0.20, 0.22, 0.18)):
        entry.update(vit=0.1, cnn=0.1 + d)
    assert _claim("vit_heads.sscore").check(rec).label == "holds"
    # one seed: its bootstrap over neurons decides
    one = {"sscore": rec["sscore"], "sscore_per_seed": {"isic": [
        {"seed": 0, "area": 0.05, "vit": 0.2, "cnn": 0.4, "vit_minus_cnn": {"value": -0.2, "low": -0.3, "high": -0.1}}]}}
    v = _claim("vit_heads.sscore").check(one)
    assert v.label == "holds" and v.effect.interval_kind == "bootstrap within the seed" and v.margin == pytest.approx(0.1)
    # the record's seed entries are each seed's study means, in the studies' order, with the bootstrap difference
    entries = record.seed_record({"isic": {3: study, 0: study}})["isic"]
    assert [e["seed"] for e in entries] == [3, 0] and tuple(entries[0]) == record.SEED_KEYS
    assert entries[0]["vit"] == study.stats("vit")["mean"] and entries[0]["area"] == study.area
    diff = entries[0]["vit_minus_cnn"]
    assert diff["value"] == pytest.approx(study.stats("vit")["mean"] - study.stats("cnn")["mean"], abs=1e-6)
    assert diff["low"] <= diff["value"] <= diff["high"]
