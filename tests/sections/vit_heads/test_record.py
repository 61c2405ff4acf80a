"""What notebook 06 records: valid JSON, the declared keys, numbers consistent with the studies."""
from __future__ import annotations

import json

import numpy as np
import pytest

from shortcut_nb.attention import heads_beyond_area
from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import neuron_study as ns
from shortcut_nb.sections.vit_heads import record


def _views(astudy):
    return {"isic": (astudy, ast.target_view(astudy, image=0))}


def test_record_payload_is_json_and_consistent(study, astudy):
    rec = record.record_payload([study], _views(astudy), profile="smoke", seconds=1.5,
                                runs={"trained": 1, "loaded": 3})
    rec = json.loads(json.dumps(rec, allow_nan=False))  # valid JSON: NaN would not survive strict dumping
    assert tuple(rec) == record.KEYS and rec["runs"] == {"trained": 1, "loaded": 3}
    assert rec["alpha"] == pytest.approx(0.4) and rec["profile"] == "smoke"
    sscore = rec["sscore"]["isic"]
    assert set(record.SSCORE_KEYS) | {"cnn", "vit"} == set(sscore)
    assert sscore["vit"]["band_counts"] == study.stats("vit")["band_counts"]
    assert rec["mean_s"]["isic/vit"] == pytest.approx(sscore["vit"]["mean"])
    a = rec["attention"]["isic"]
    assert tuple(a) == record.ATTENTION_KEYS and tuple(a["target"]) == record.TARGET_KEYS
    assert tuple(a["core"]) == record.CORE_KEYS
    assert a["layers"] == 4 and a["heads"] == 4 and a["grid"] == [8, 8]
    assert len(a["target"]["share"]) == 4 and len(a["target"]["share"][0]) == 4
    assert a["target"]["dataset_index"] == 100
    st = astudy.stats()
    assert a["core"]["n_images"] == 4 and a["core"]["area"] == pytest.approx(st["area"])
    assert np.allclose(np.asarray(a["core"]["lift"], dtype=float), st["lift"], atol=1e-5)
    assert a["core"]["heads_beyond_area"] == [list(x) for x in heads_beyond_area(st)]
    with pytest.raises(ValueError, match="at least one"):
        record.record_payload([], {}, profile="smoke", seconds=0.0)


def test_record_of_data_without_spurious_patches_stays_valid_json(toy, study):
    import torch

    _, vit, images, _ = toy
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    empty = ast.attention_study(vit, images[:2], masks, dataset="isic", n_examples=1)
    rec = record.record_payload([study], {"isic": (empty, ast.target_view(empty))}, profile="smoke", seconds=1.0)
    json.dumps(rec, allow_nan=False)
    a = rec["attention"]["isic"]
    assert a["core"]["heads_beyond_area"] == [] and a["target"]["lift"] is None and a["core"]["max_lift"] is None
    assert a["core"]["area"] is None and rec["runs"] == {}


def test_record_payload_holds_weights_and_the_depth_profile(study, astudy):
    depth = {ds: p.record() for ds, p in ns.vit_depth_profiles([study]).items()}
    rec = record.record_payload([study], _views(astudy), profile="smoke", seconds=1.0, weights="random", depth=depth)
    assert tuple(rec) == record.KEYS and rec["weights"] == "random"
    prof = rec["depth_profile"][study.dataset]
    assert tuple(prof) == record.DEPTH_KEYS and all(tuple(b) == record.DEPTH_ROW_KEYS for b in prof["blocks"])
    json.dumps(rec)
