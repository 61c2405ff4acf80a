"""Notebook 06's ViT detectors against the counterfactual ground truth (tiny synthetic folder, untrained vit_mini)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from shortcut_nb.claims import CLAIMS
from shortcut_nb.counterfactuals import MASK_FREE
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.vit_heads import claims as C
from shortcut_nb.sections.vit_heads import detector_study as D
from shortcut_nb.sections.vit_heads import record as R
from shortcut_nb.sections.vit_heads import views as V
from shortcut_nb.sections.vit_heads.neuron_study import score_models
from shortcut_nb.sscore import score_neurons
from support.detector_records import unavailable_entry

from .conftest import SIZE


@pytest.fixture(scope="module")
def ctx(tiny_isic, tmp_path_factory):
    return Context.build("smoke", root=tmp_path_factory.mktemp("runs"), image_size=SIZE, progress=False,
                         folders={"isic": str(tiny_isic)})


@pytest.fixture(scope="module")
def detectors(ctx, study, samples, toy):
    cnn, vit, _, _ = toy
    torch.manual_seed(3)
    other_vit = copy.deepcopy(vit)  # another seed's ViT: the same architecture, other weights
    with torch.no_grad():
        for p in other_vit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seed1 = score_models({"cnn": cnn, "vit": other_vit}, samples, alpha=study.alpha, dataset="isic")
    return D.detector_studies(ctx, {"isic": study}, {"isic": {0: study, 1: seed1}}, n_pairs=6)


def test_the_vits_sscore_and_the_mask_free_detectors_are_scored_on_every_seed(detectors, study):
    d = detectors["isic"]
    assert d.available and list(d.evaluations) == [0, 1] and d.model_name == study.model_names["vit"]
    ev = d.evaluation
    assert list(ev.table) == ["sscore", *MASK_FREE] and set(ev.randomised) == {"last_block", "all"}
    assert d.evaluations[1].randomised == {} and d.alpha == study.alpha and d.area == study.area
    torch.testing.assert_close(ev.scores["sscore"], study.scores["vit"].float())
    scorer = D.sscore_scorer(study)
    torch.testing.assert_close(scorer(study.models["vit"]), score_neurons(study.models["vit"], study.samples,
                                                                          alpha=study.alpha))


def test_a_study_without_a_vit_is_left_out(ctx, samples, toy):
    cnn_only = score_models({"cnn": toy[0]}, samples, alpha=0.4, dataset="isic")
    assert D.detector_studies(ctx, {"isic": cnn_only}) == {}


def test_record_views_and_claims_of_the_vit_detectors(detectors, study, astudy):
    entries = {ds: d.record() for ds, d in detectors.items()}
    assert tuple(entries["isic"]) == R.DETECTOR_KEYS
    rec = R.record_payload([study], {}, profile="smoke", seconds=1.0, detectors=entries)
    assert tuple(rec) == R.KEYS and rec["detectors"] == entries
    json.dumps(rec, allow_nan=False)
    frame = V.detector_frame(entries)
    assert list(frame.loc["ISIC-like"].index) == ["s-score (hard)", "group gap", "spuriosity"]
    assert "AUROC (2 seeds)" in frame.columns
    assert "survives randomisation" in V.randomisation_frame(entries).columns
    fig = V.plot_detector_scatter(entries)
    assert "ISIC-like ViT" in fig.axes[0].get_title()
    checks = {c.id: c for c in CLAIMS if c.id.startswith("vit_detectors.")}
    assert set(checks) == {"vit_detectors.sscore", "vit_detectors.group_gap", "vit_detectors.spuriosity"}
    assert all(c.notebook == R.NAME and c.paper.startswith("not in the paper") for c in checks.values())
    v = checks["vit_detectors.sscore"].check(rec)
    low = entries["isic"]["seeds"]["sscore"]["auroc"]["low"]
    assert v.holds == (low is not None and low > 0.5) and len(v.per_seed) == 2
    text = C.takeaways(rec)
    assert "- ViT detectors vs the counterfactual ground truth, ISIC-like (6 validation pairs" in text
    none = {**rec, "detectors": {"isic": unavailable_entry("isic")}}
    assert checks["vit_detectors.sscore"].check(none).label == "undecided"
    assert np.isfinite(entries["isic"]["area"])
