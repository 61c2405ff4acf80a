"""Notebook 05's record and claims: the payload is JSON with the headline keys, the claims decide as the paper reads."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from support.subnetwork_records import prusc_entry, removal_entry

from shortcut_nb.claims import CLAIMS
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.subnetworks import claims as C
from shortcut_nb.sections.subnetworks import record as R
from shortcut_nb.sections.subnetworks import study
from support.claims import astuple_verdict, point_holds


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
    assert point_holds(prusc.check(rec)) is True
    ours, holds = astuple_verdict(removal.check(rec))
    assert holds and "BwoP 0.90 → 0.20" in ours and "BwP 0.99 → 0.99" in ours
    # WGA does not rise enough, or the mean s-score does not fall: the claim fails
    assert not point_holds(prusc.check(_payload(prusc_entry(wga=(0.3, 0.31)))))
    assert not point_holds(prusc.check(_payload(prusc_entry(mean_s=(0.2, 0.2)))))
    assert not point_holds(prusc.check(_payload(prusc_entry(mean_s=(0.209, 0.206)))))  # a fall of 0.003 is noise
    # another group drops more than the tolerance: "others hold" fails
    assert not point_holds(removal.check(_payload(removal=removal_entry(subs={(0, 0.8): (0.2, 0.9, 0.6, 0.4)}))))
    assert not point_holds(removal.check(_payload(removal=removal_entry(subs={(0, 0.8): (0.8, 0.99, 0.6, 0.4)}))))
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


def _result(seed, wga, mean_s, full, subs):
    """Stand-ins of study.PruscResult and RemovalResult with the fields record.seed_record reads."""
    prusc = SimpleNamespace(seed=seed, baseline={"wga": wga[0], "sscore": {"mean": mean_s[0]}},
                            prusc={"wga": wga[1], "sscore": {"mean": mean_s[1]}})
    removal = SimpleNamespace(full={"groups": list(full)}, subnetworks=[
        SimpleNamespace(removed_group=g, keep=k, summary={"groups": list(accs)}) for (g, k), accs in subs.items()])
    return prusc, {"isic": removal}


def test_the_per_seed_table_is_recorded_and_decides_figs_6_and_7():
    """Each seed's Fig. 6 and Fig. 7 (80 % masks only) numbers are recorded; the claims read their t-interval."""
    full = (0.9, 0.99, 0.6, 0.4)
    by_seed = {s: _result(s, (0.3, 0.6 + d), (0.4, 0.2 + d), full,
                          {(0, 0.8): (0.2 + d, 0.99, 0.62, 0.41), (1, 0.8): (0.99, 0.99, 0.5, 0.5),
                           (0, 0.6): (0.1, 0.9, 0.6, 0.4)})
               for s, d in ((0, 0.0), (1, 0.02), (2, -0.02))}
    table = R.seed_record(by_seed)
    assert [e["seed"] for e in table] == [0, 1, 2] and set(table[0]) == set(R.SEED_KEYS)
    assert set(table[1]["removal"]["isic"]["subnetworks"]) == {"g0@0.80", "g1@0.80"}  # 80 % only
    rec = json.loads(json.dumps(_payload(per_seed=table)))
    assert rec["per_seed"] == table
    v = C._prusc_claim(rec)
    gain = v.effects[[e.unit for e in v.effects].index("ΔWGA")]
    assert v.label == "holds" and gain.n_seeds == 3 and gain.value == pytest.approx(0.3)
    assert gain.paper == pytest.approx(0.73 - 0.37)
    r = C._removal_claim(rec)
    drop = next(e for e in r.effects if e.name.startswith("BwoP accuracy drop"))
    assert drop.per_seed == pytest.approx((0.7, 0.68, 0.72)) and drop.paper == pytest.approx(0.92 - 0.18)
    assert r.label == "holds"
    # one seed whose other groups fall: the largest other drop, 0.01 / 0.01 / 0.31, covers the 0.05 tolerance
    table[2]["removal"]["isic"]["subnetworks"]["g0@0.80"]["groups"][2] = 0.3
    r = C._removal_claim(json.loads(json.dumps(_payload(per_seed=table))))
    assert r.label == "undecided" and r.effect.name == "largest accuracy drop of another group without BwoP"
    assert "Fig. 7 (group removal) (undecided) is decided by largest accuracy drop" in C.takeaways(
        _payload(per_seed=table))


def test_one_seed_decides_the_removed_groups_drop_on_its_bootstrap_over_its_images():
    def removal(interval):
        entry = removal_entry()
        entry["subnetworks"]["g0@0.80"]["summary"]["drop_interval"] = interval
        return _payload(removal=entry)

    drop = lambda rec: next(e for e in C._removal_claim(rec).effects if e.name.startswith("BwoP accuracy drop"))  # noqa: E731
    wide, tight = drop(removal([0.1, 0.95])), drop(removal([0.6, 0.8]))  # the drop 0.9 → 0.2 is 0.7; needs > 0.15
    assert wide.interval_kind == tight.interval_kind == "bootstrap within the seed"
    assert wide.outcome == "undecided" and tight.outcome == "holds" and (tight.low, tight.high) == (0.6, 0.8)
    assert drop(_payload()).interval_kind is None  # not recorded: no interval


def test_removed_drop_interval_is_a_paired_bootstrap_over_that_groups_images():
    rng = np.random.default_rng(0)
    g = np.repeat([0, 1, 2], [200, 50, 50])
    y = rng.integers(0, 2, len(g))
    full = {"pred": y.copy(), "y": y, "g": g}  # always right
    wrong = np.where((g == 0) & (rng.random(len(g)) < 0.6), 1 - y, y)  # group 0 loses about 60 %
    low, high = study.removed_drop_interval(full, {"pred": wrong, "y": y, "g": g}, 0, seed=1)
    point = float((wrong[g == 0] != y[g == 0]).mean())
    assert low < point < high and high - low < 0.2
    assert study.removed_drop_interval(full, {"pred": wrong, "y": y, "g": g}, 1) == [0.0, 0.0]  # untouched group
    assert study.removed_drop_interval(full, full, 3) is None  # no test image of that group
    assert study.removed_drop_interval(full, {"pred": wrong, "y": y, "g": g}, 0, seed=1) == [low, high]  # seeded


def test_seed_experiments_reuse_the_notebooks_own_and_run_every_other_seed(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(study, "prusc_experiment", lambda ctx, **kw: calls.append(("prusc", kw["seed"])) or "p")
    monkeypatch.setattr(study, "group_removal_experiment", lambda ctx, **kw: calls.append(
        ("removal", kw["dataset"], tuple(kw["remove_groups"]), kw["keep_fractions"], kw["seed"])) or "r")
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    own = SimpleNamespace(seed=1, dataset="isic", arch="cnn")
    out = study.seed_experiments(ctx, prusc=own, removals={"isic": SimpleNamespace(arch="cnn"),
                                                          "waterbirds": SimpleNamespace(arch="cnn")},
                                 recipes=study.mask_recipes(ctx), remove_groups={"isic": [0, 1], "waterbirds": [0]})
    assert list(out) == [1, 0, 2, 3, 4] and out[1][0] is own and out[0] == ("p", {"isic": "r"})
    # Fig. 7's claim is decided on ISIC: the Waterbirds-like masks are not trained again for the other seeds
    assert calls == [c for s in (0, 2, 3, 4) for c in (("prusc", s), ("removal", "isic", (0, 1), (0.8,), s))]
