"""Notebook 06's claims and takeaways decide from the recorded JSON alone."""
from __future__ import annotations

import json

import pytest
import torch

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import claims, record
from support.claims import as_verdict, astuple_verdict


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
    assert as_verdict(sscore.check(rec)).holds is False
    heads = _claim("vit_heads.heads")

    def att_rec(beyond):
        return {"layers": 4, "heads": 4, "core": {"heads_beyond_area": beyond, "max_lift": 1.6, "area": 0.05}}

    rec = {"attention": {"isic": att_rec([[2, 1]]), "waterbirds": att_rec([])}}
    ours, holds = astuple_verdict(heads.check(rec))
    assert holds and "isic: 1/16 heads" in ours and "verdict on isic" in ours
    rec["attention"]["isic"] = att_rec([])
    assert as_verdict(heads.check(rec)).holds is False


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
    assert as_verdict(_claim("vit_heads.heads").check(rec)).holds is False


def test_the_sscore_claim_is_decided_on_the_mean_over_seeds_and_on_each_seed(study):
    """The headline record is one seed; the verdict reads every seed's means and says mixed when they differ."""
    rec = {"sscore": {"isic": {"area": 0.05, "vit": {"mean": 0.20}, "cnn": {"mean": 0.40}}},
           "sscore_per_seed": {"isic": [{"seed": 0, "area": 0.05, "vit": 0.20, "cnn": 0.40},
                                        {"seed": 1, "area": 0.05, "vit": 0.30, "cnn": 0.25},
                                        {"seed": 2, "area": 0.05, "vit": 0.10, "cnn": 0.30}]}}
    v = _claim("vit_heads.sscore").check(rec)
    assert v.per_seed == (True, False, True) and v.label == "mixed (2 of 3 seeds)"
    assert v.holds and v.margin == pytest.approx((0.40 + 0.25 + 0.30) / 3 - 0.20)
    assert "mean over 3 seeds, ViT vs CNN: isic 0.20 vs 0.32" in v.ours
    assert "per seed: isic 0.20 vs 0.40 / 0.30 vs 0.25 / 0.10 vs 0.30" in v.ours
    rec["sscore_per_seed"]["isic"][2]["vit"] = 0.50  # the mean ViT (0.33) now exceeds the mean CNN (0.32)
    assert not _claim("vit_heads.sscore").check(rec).holds
    # the record's seed entries are each seed's study means, in the studies' order
    entries = record.seed_record({"isic": {3: study, 0: study}})["isic"]
    assert [e["seed"] for e in entries] == [3, 0] and tuple(entries[0]) == record.SEED_KEYS
    assert entries[0]["vit"] == study.stats("vit")["mean"] and entries[0]["area"] == study.area
