"""Notebook 05's record and claims: the payload is JSON with the headline keys, the claims decide as the paper reads."""
from __future__ import annotations

import json

import pytest
from support.subnetwork_records import prusc_entry, removal_entry

from shortcut_nb.claims import CLAIMS
from shortcut_nb.sections.subnetworks import claims as C
from shortcut_nb.sections.subnetworks import record as R
from support.claims import as_verdict, astuple_verdict


def _claim(cid):
    return next(c for c in CLAIMS if c.id == cid)


def _payload(prusc=None, removal=None, **kw):
    return R.payload(prusc or prusc_entry(), {"isic": removal or removal_entry()}, profile="cpu", seconds=1.0, **kw)


def test_payload_is_json_with_the_declared_keys():
    rec = R.payload(prusc_entry(), {"isic": removal_entry()}, profile="cpu", seconds=12.0,
                    runs={"trained": 1, "loaded": 2})
    back = json.loads(json.dumps(rec))
    assert tuple(back) == R.KEYS
    assert back["wga_before"] == 0.3 and back["mean_s_after"] == 0.2 and back["prune_h"] == 0.6
    assert back["mean_s_used_before"] == 0.4 and back["mean_s_used_after"] == 0.25 and back["prune_f"] == 0.48
    assert set(back["mask_seconds"]) == {"prusc", "isic/g0@0.80", "isic/g1@0.80", "isic/g0@0.60"}
    assert back["mask_seconds_per_step"] == pytest.approx((5 + 2 + 3 + 2) / 40)
    assert back["runs"] == {"trained": 1, "loaded": 2}
    assert R.subnet_key(1, 0.8) == "g1@0.80"


def test_claims_decide_as_the_paper_reads():
    rec = R.payload(prusc_entry(), {"isic": removal_entry()}, profile="cpu", seconds=12.0)
    prusc, removal = _claim("components.prusc"), _claim("components.removal")
    assert prusc.notebook == removal.notebook == R.NAME
    assert as_verdict(prusc.check(rec)).holds is True
    ours, holds = astuple_verdict(removal.check(rec))
    assert holds and "BwoP 0.90 → 0.20" in ours and "BwP 0.99 → 0.99" in ours
    # WGA does not rise enough, or the mean s-score does not fall: the claim fails
    assert not as_verdict(prusc.check(_payload(prusc_entry(wga=(0.3, 0.31))))).holds
    assert not as_verdict(prusc.check(_payload(prusc_entry(mean_s=(0.2, 0.2))))).holds
    assert not as_verdict(prusc.check(_payload(prusc_entry(mean_s=(0.209, 0.206))))).holds  # a fall of 0.003 is noise
    # another group drops more than the tolerance: "others hold" fails
    assert not as_verdict(removal.check(_payload(removal=removal_entry(subs={(0, 0.8): (0.2, 0.9, 0.6, 0.4)})))).holds
    assert not as_verdict(removal.check(_payload(removal=removal_entry(subs={(0, 0.8): (0.8, 0.99, 0.6, 0.4)})))).holds
    with pytest.raises(KeyError):
        removal.check(_payload(removal=removal_entry(subs={(1, 0.8): (0.99, 0.99, 0.5, 0.5)})))


def test_takeaways_state_the_runs_numbers_and_the_papers():
    text = C.takeaways(R.payload(prusc_entry(), {"isic": removal_entry()}, profile="cpu", seconds=12.0))
    assert "WGA 0.30 → 0.60" in text and "without BwoP: BwoP 0.90 → 0.20" in text and "Profile cpu" in text
    assert "(paper: 0.37 → 0.73, 65 % / 48 %)" in text and "(paper: 0.40 → 0.18)" in text


def test_takeaways_say_whether_each_mask_learned():
    """The cross-entropy curve's ends, the undecided share, training's own keep and the magnitude overlap."""
    assert "Did the masks learn?" not in C.takeaways(_payload())  # records without the diagnostics say nothing
    prusc = prusc_entry()
    prusc["mask"].update(loss_curve=[[1, 0.29], [100, 0.004]], undecided=0.98, magnitude_overlap=0.78, train_keep=0.03)
    text = C.takeaways(_payload(prusc))
    assert ("Did the masks learn? Fig. 6: cross-entropy 0.29 → 0.00, 98% of weights undecided, training's own mask "
            "(logits ≥ 0) keeping 3%, 78% of its kept weights are magnitude pruning's (a random cut of that size: "
            "about 52%)") in text
