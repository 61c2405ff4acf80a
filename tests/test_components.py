"""Notebook 05's package module: cached masks, Fig. 6/7 experiments, widget views, payload and claims."""
from __future__ import annotations

import json
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shortcut_nb import components as C  # noqa: E402
from shortcut_nb.claims import CLAIMS  # noqa: E402
from shortcut_nb.lastlayer.dfr import mean_used_sscore, prune_h  # noqa: E402
from shortcut_nb.pipeline.runs import checkpoint_path, run_spec, train_or_load  # noqa: E402


# --------------------------------------------------------------------------- synthetic results


def _removal(full=(0.9, 0.99, 0.6, 0.4), subs=None, dataset="isic") -> dict:
    """A group_removal_experiment-shaped dict with given per-group accuracies."""
    names = ["BwoP", "BwP", "MwoP", "MwP"] if dataset == "isic" else ["G0", "G1", "G2", "G3"]
    subs = subs if subs is not None else {(0, 0.8): (0.2, 0.99, 0.62, 0.41), (1, 0.8): (0.99, 0.99, 0.5, 0.5),
                                          (0, 0.6): (0.1, 0.9, 0.6, 0.4)}
    out = {"dataset": dataset, "model": "toy", "group_names": names, "full": {"groups": list(full)}, "subnetworks": {}}
    for (g, k), accs in subs.items():
        layers = {"f_enc.conv1": 0.9, "f_enc.layer1.conv": 0.3 + 0.1 * g, "f_enc.layer2.conv": 0.3 + 0.1 * g,
                  "head": k}
        out["subnetworks"][C.subnet_key(g, k)] = {
            "removed_group": g, "keep_target": k, "keep_fraction": k + 0.001, "prune_h": 1 - k, "prune_f": 1 - k,
            "per_layer_keep": layers, "summary": {"groups": list(accs)}, "train_seconds": 2.0 + g, "steps": 10,
            "train_keep": 0.95, "loaded": False, "path": "x.pt"}
    return out


def _prusc(wga=(0.3, 0.6), mean_s=(0.4, 0.2), used=(0.4, 0.25)) -> dict:
    def side(i):
        return {"wga": wga[i], "avg": 0.8, "groups": [0.9, 0.9, 0.7, wga[i]],
                "sscore": {"scores": [mean_s[i]] * 4, "mean": mean_s[i], "mean_used": used[i], "n_used": 4 - i,
                           "d": 4, "area": 0.05, "lift": mean_s[i] / 0.05, "lift_used": used[i] / 0.05}}

    return {"dataset": "isic", "model": "toy", "alpha": 0.5, "baseline": side(0), "prusc": side(1),
            "mask": {"prune_h": 0.6, "prune_f": 0.48, "keep_fraction": 0.52, "keep_target": 0.52,
                     "per_layer_keep": {"a": 0.5, "head": 0.4}, "train_seconds": 5.0, "steps": 10,
                     "train_keep": 0.6, "loaded": False, "path": "p.pt"}}


def _claim(cid):
    return next(c for c in CLAIMS if c.id == cid)


# --------------------------------------------------------------------------- recipes


def test_recipe_validation_names_the_argument():
    with pytest.raises(ValueError, match="objective"):
        C.MaskRecipe(objective="dfr")
    with pytest.raises(ValueError, match="keep_fraction"):
        C.MaskRecipe(keep_fraction=1.5)
    with pytest.raises(ValueError, match="steps"):
        C.MaskRecipe(steps=0)
    with pytest.raises(ValueError, match="data_split"):
        C.MaskRecipe(data_split="test")
    with pytest.raises(ValueError, match="keep_fraction"):
        C.MaskRecipe(keep_fraction=None, removed_groups=(0,))


def test_profile_recipes_overrides():
    r = C.profile_recipes("cpu", steps=7, keep_grid=[0.9, 0.8])
    assert r.prusc.steps == 7 and r.removal.steps == 7 and r.keep_grid == (0.9, 0.8)
    assert r.prusc.objective == "prusc" and r.prusc.data_split == "val" and r.prusc.keep_fraction == C.PRUSC_KEEP
    assert r.removal.objective == "ce" and r.removal.keep_fraction == 0.8 and r.removal.data_split == "train"
    with pytest.raises(ValueError, match="keep_grid"):
        C.profile_recipes("cpu", keep_grid=[0.0])
    with pytest.raises(ValueError, match="profile"):
        C.profile_recipes("gpu")


def test_labels_only_hides_groups():
    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"image": torch.full((3, 4, 4), float(i)), "y": torch.tensor(i % 2), "g": torch.tensor(3),
                    "a": torch.tensor(1), "mask": torch.ones(4, 4, dtype=torch.bool)}

    view = C.LabelsOnly(DS())
    assert len(view) == 3
    item = view[2]
    assert set(item) == {"image", "y"} and float(item["image"][0, 0, 0]) == 2.0 and int(item["y"]) == 0


# --------------------------------------------------------------------------- s-scores


def test_sscore_stats_against_dfr_reference():
    s = torch.tensor([0.1, 0.5, 0.9, 0.3])
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    st = C.sscore_stats(s, w, area=0.2)
    assert st["mean"] == pytest.approx(0.45)
    assert st["mean_used"] == pytest.approx(mean_used_sscore(w, s)) == pytest.approx(0.5)
    assert st["n_used"] == 2 and st["d"] == 4
    assert st["lift"] == pytest.approx(0.45 / 0.2) and st["lift_used"] == pytest.approx(0.5 / 0.2)
    dead = C.sscore_stats(s, torch.zeros(2, 4), area=0.2)
    assert math.isnan(dead["mean_used"]) and dead["n_used"] == 0
    with pytest.raises(ValueError, match="head_weight"):
        C.sscore_stats(s, torch.ones(2, 3), area=0.2)


# --------------------------------------------------------------------------- widget views


def test_layers_lost_most_orders_and_breaks_ties_by_module_order():
    keep = {"a": 0.5, "b": 0.2, "c": 0.9, "d": 0.2}
    assert C.layers_lost_most(keep, 3) == [("b", 0.2), ("d", 0.2), ("a", 0.5)]
    assert C.layers_lost_most(keep, 10)[-1] == ("c", 0.9)
    with pytest.raises(ValueError, match="n must"):
        C.layers_lost_most(keep, 0)


def test_subnetwork_view_picks_the_cell_and_computes_deltas():
    rem = _removal()
    v = C.subnetwork_view(rem, removed_group=0, keep_fraction=0.8, top=2)
    assert v["removed_name"] == "BwoP" and v["keep_target"] == 0.8
    assert v["full"] == [0.9, 0.99, 0.6, 0.4] and v["sub"] == [0.2, 0.99, 0.62, 0.41]
    assert v["delta"] == pytest.approx([-0.7, 0.0, 0.02, 0.01])
    assert [n for n, _ in v["lost_most"]] == ["f_enc.layer1.conv", "f_enc.layer2.conv"]
    assert C.subnetwork_view(rem, removed_group=0, keep_fraction=0.6)["sub"][0] == 0.1
    with pytest.raises(ValueError, match="available"):
        C.subnetwork_view(rem, removed_group=1, keep_fraction=0.6)
    text = C.view_summary(v)
    assert "BwoP accuracy 0.90 → 0.20" in text and "largest change elsewhere 0.02" in text


def test_widget_switches_among_precomputed_masks():
    from shortcut_nb.widgets import components as W

    rem = _removal()
    opts = W.choices(rem)
    assert opts["group"] == [("without BwoP", 0), ("without BwP", 1)]
    assert [v for _, v in opts["keep"]] == [0.8, 0.6]
    assert W.caption(rem, 1, 0.6).startswith("not precomputed")
    box = W.subnetwork_explorer(rem)
    assert box.controls["group"].value == 0 and box.controls["keep"].value == 0.8
    assert box.caption.value == C.view_summary(C.subnetwork_view(rem, removed_group=0, keep_fraction=0.8))
    box.controls["keep"].value = 0.6
    assert box.caption.value == C.view_summary(C.subnetwork_view(rem, removed_group=0, keep_fraction=0.6))
    box.controls["group"].value = 1  # (1, 0.6) was not precomputed: said, not raised
    assert box.caption.value.startswith("not precomputed")
    with pytest.raises(ValueError, match="keep_fraction"):
        W.subnetwork_explorer(rem, keep_fraction=0.5)
    with pytest.raises(ValueError, match="subnetworks"):
        W.choices({"subnetworks": {}})
    plt.close("all")


# --------------------------------------------------------------------------- tables and plots


def test_fig_frames_carry_our_and_the_papers_numbers():
    f6 = C.fig6_frame(_prusc())
    assert f6.loc["WGA"].tolist()[:2] == [0.3, 0.6] and f6.loc["WGA", "paper: PruSC"] == 0.73
    assert f6.loc["Prune_h", "ours: PruSC-style mask"] == 0.6 and f6.loc["Prune_f", "paper: PruSC"] == 0.48
    f7 = C.fig7_frame(_removal())
    assert list(f7.index[:3]) == ["full model", "without BwoP", "without BwP"]
    assert f7.loc["without BwoP", "BwoP"] == 0.2 and f7.loc["paper: without BwoP", "BwoP"] == 0.18
    wb = C.fig7_frame(_removal(dataset="waterbirds"))
    assert not any(i.startswith("paper") for i in wb.index)  # the paper has no Waterbirds Fig. 7
    assert "without BwoP" not in C.fig7_frame(_removal(), keep_fraction=0.6).index.tolist()[2:]


def test_plots_draw_the_expected_bars():
    fig = C.plot_fig7({"isic": _removal(), "waterbirds": _removal(dataset="waterbirds")})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == 4 * 3  # four groups x (full model + two masks at 80 %)
    fig = C.plot_per_layer_keep({"a": 0.5, "b": 0.2, "c": 0.9}, highlight=1)
    reds = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
    assert len(reds) == 1 and reds[0].get_width() == 0.2
    fig = C.plot_fig6(_prusc())
    assert len(fig.axes) == 3
    plt.close("all")


# --------------------------------------------------------------------------- payload and claims


def test_payload_is_json_and_claims_decide_as_the_paper_reads():
    rec = C.record_payload(_prusc(), {"isic": _removal()}, profile="cpu", seconds=12.0)
    back = json.loads(json.dumps(rec))
    assert back["wga_before"] == 0.3 and back["mean_s_after"] == 0.2 and back["prune_h"] == 0.6
    assert set(back["mask_seconds"]) == {"prusc", "isic/g0@0.80", "isic/g1@0.80", "isic/g0@0.60"}
    assert back["mask_seconds_per_step"] == pytest.approx((5 + 2 + 3 + 2) / 40)
    prusc, removal = _claim("components.prusc"), _claim("components.removal")
    assert prusc.check(rec)[1] is True
    ours, holds = removal.check(rec)
    assert holds and "BwoP 0.90 → 0.20" in ours and "BwP 0.99 → 0.99" in ours
    # WGA does not rise enough, or the mean s-score does not fall: the claim fails
    assert not prusc.check(C.record_payload(_prusc(wga=(0.3, 0.31)), {"isic": _removal()}, profile="cpu",
                                            seconds=1))[1]
    assert not prusc.check(C.record_payload(_prusc(mean_s=(0.2, 0.2)), {"isic": _removal()}, profile="cpu",
                                            seconds=1))[1]
    assert not prusc.check(C.record_payload(_prusc(mean_s=(0.209, 0.206)), {"isic": _removal()}, profile="cpu",
                                            seconds=1))[1]  # a fall of 0.003 is noise, not "lowers"
    # another group drops more than the tolerance: "others hold" fails
    bad = _removal(subs={(0, 0.8): (0.2, 0.9, 0.6, 0.4)})
    assert not removal.check(C.record_payload(_prusc(), {"isic": bad}, profile="cpu", seconds=1))[1]
    small = _removal(subs={(0, 0.8): (0.8, 0.99, 0.6, 0.4)})
    assert not removal.check(C.record_payload(_prusc(), {"isic": small}, profile="cpu", seconds=1))[1]
    text = C.takeaways(rec)
    assert "WGA 0.30 → 0.60" in text and "without BwoP: BwoP 0.90 → 0.20" in text and "Profile cpu" in text


# --------------------------------------------------------------------------- the pipeline on a tiny folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from shortcut_nb.data import ISICLikeSettings, generate_isic_like

    root = tmp_path_factory.mktemp("comp")
    folder = generate_isic_like(root / "isic", ISICLikeSettings(image_size=16, n_train=64, n_val=16, n_test=16, seed=3))
    spec = run_spec("smoke", "isic", folder=folder)
    model, _ = train_or_load(spec, root=root / "runs", progress_bar=False)
    return spec, model, root / "runs"


def test_masks_are_cached_by_checkpoint_and_recipe(tiny_run):
    spec, model, runs = tiny_run
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = C.MaskRecipe(objective="ce", keep_fraction=0.7, steps=2, batch_size=8, removed_groups=(0,))
    m1, i1 = C.train_or_load_mask(model, spec, recipe, root=runs, progress_bar=False)
    assert not i1["loaded"] and i1["steps"] == 2 and i1["train_seconds"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "frozen weights unchanged"
    assert abs(m1.keep_fraction() - 0.7) <= 0.02 and m1.settings["removed_groups"] == "0"
    m2, i2 = C.train_or_load_mask(model, spec, recipe, root=runs, progress_bar=False)
    assert i2["loaded"] and i2["path"] == i1["path"] and i2["train_seconds"] == i1["train_seconds"]
    assert all(torch.equal(m1.masks()[n], m2.masks()[n]) for n in m1.masks())
    other = C.mask_path(spec, C.MaskRecipe(objective="ce", keep_fraction=0.6, steps=2, batch_size=8,
                                           removed_groups=(0,)), root=runs)
    assert str(other) != i1["path"]
    # a retrained (changed) checkpoint gets another key
    ckpt = checkpoint_path(spec, root=runs)
    data = ckpt.read_bytes()
    try:
        ckpt.write_bytes(data + b"\0")
        assert str(C.mask_path(spec, recipe, root=runs)) != i1["path"]
    finally:
        ckpt.write_bytes(data)


def test_experiments_end_to_end_on_a_tiny_folder(tiny_run, monkeypatch):
    spec, model, runs = tiny_run
    monkeypatch.setattr(C, "run_spec", lambda profile, dataset, **kw: spec)  # route the experiment to the tiny folder
    recipe = C.MaskRecipe(objective="prusc", keep_fraction=0.52, steps=2, batch_size=8, data_split="val")
    out = C.prusc_experiment("smoke", recipe=recipe, alpha=0.5, sscore_samples=4, root=runs, progress_bar=False)
    assert out["sscore_samples"] == 4 and out["mask"]["keep_fraction"] == pytest.approx(0.52, abs=0.02)
    mask, _ = C.train_or_load_mask(model, spec, recipe, root=runs, progress_bar=False)
    pruned = mask.apply(model)
    # Prune_h agrees with the DFR module's reference on the masked head (no head weight is zero before)
    assert prune_h(model.head.weight) == 0.0
    assert out["mask"]["prune_h"] == pytest.approx(prune_h(pruned.head.weight))
    for side in ("baseline", "prusc"):
        r = out[side]
        assert len(r["groups"]) == 4 and all(0 <= a <= 1 for a in r["groups"]) and r["wga"] == min(r["groups"])
        assert len(r["sscore"]["scores"]) == r["sscore"]["d"] == model.head.in_features
        assert 0 <= r["sscore"]["mean"] <= 1 and 0 < r["sscore"]["area"] < 0.5
    assert out["baseline"]["sscore"]["n_used"] == model.head.in_features
    rem = C.group_removal_experiment("smoke", remove_groups=[1], keep_fractions=[0.8, 0.6], recipe=C.MaskRecipe(
        steps=1, batch_size=8), root=runs, progress_bar=False)
    assert set(rem["subnetworks"]) == {"g1@0.80", "g1@0.60"}
    assert rem["subnetworks"]["g1@0.60"]["keep_fraction"] == pytest.approx(0.6, abs=0.02)
    assert rem["full"]["groups"] == out["baseline"]["groups"]
    json.dumps(C.record_payload(out, {"isic": rem}, profile="smoke", seconds=1.0))
    with pytest.raises(ValueError, match="remove_groups"):
        C.group_removal_experiment("smoke", remove_groups=[4], root=runs, progress_bar=False)
