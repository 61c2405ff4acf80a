"""shortcut_nb.vit_heads (notebook 06) and its widgets, on tiny models and tensors."""
from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shortcut_nb.attention import maps as att  # noqa: E402
from shortcut_nb import vit_heads as vh  # noqa: E402
from shortcut_nb.config import seed_everything  # noqa: E402
from shortcut_nb.models import build_model  # noqa: E402
from shortcut_nb.sscore import mask_area, neuron_cams, s_scores  # noqa: E402

SIZE = 16  # vit_mini: 8x8 grid of 2x2 patches


@pytest.fixture(autouse=True)
def _seed():
    seed_everything(0)
    yield
    plt.close("all")


def _masks(n: int) -> torch.Tensor:
    """ISIC-like: a square spurious patch in a corner that moves per image; image 3 has none."""
    m = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for i in range(n):
        r, c = (i % 2) * 10, (i // 2 % 2) * 10
        m[i, r:r + 6, c:c + 6] = True
    if n > 3:
        m[3] = False
    return m


@pytest.fixture(scope="module")
def toy():
    seed_everything(0)
    cnn = build_model("resnet_mini", image_size=SIZE).eval()
    vit = build_model("vit_mini", image_size=SIZE).eval()
    images = torch.randn(5, 3, SIZE, SIZE)
    masks = _masks(5)
    return cnn, vit, images, masks


@pytest.fixture(scope="module")
def study(toy):
    cnn, vit, images, masks = toy
    keep = masks.flatten(1).any(1)
    return vh.score_models({"cnn": cnn, "vit": vit}, images[keep], masks[keep], alpha=0.4, dataset="isic",
                           indices=[10, 11, 12, 14])


@pytest.fixture(scope="module")
def astudy(toy):
    _, vit, images, masks = toy
    return vh.attention_study(vit, images, masks, dataset="isic", n_examples=2, indices=list(range(100, 105)))


# --------------------------------------------------------------------------- neurons


def test_score_models_uses_the_same_images_alpha_and_chance_level(toy, study):
    cnn, vit, images, masks = toy
    keep = masks.flatten(1).any(1)
    idx = [0, 5, 77, 127]  # a few neurons keep the reference cheap
    for arch, model in (("cnn", cnn), ("vit", vit)):
        ref = s_scores(model, images[keep], masks[keep], alpha=0.4, neurons=idx)
        assert torch.allclose(study.scores[arch][idx], ref)
    assert study.area == pytest.approx(mask_area(masks[keep]))
    summ = study.summary()
    assert summ["n_samples"] == 4 and summ["indices"] == [10, 11, 12, 14] and summ["alpha"] == pytest.approx(0.4)
    for arch, d in (("cnn", 256), ("vit", 128)):
        s = np.asarray(summ[arch]["scores"])
        assert summ[arch]["d"] == d == s.size
        assert summ[arch]["mean"] == pytest.approx(s.mean(), abs=1e-6)
        assert summ[arch]["lift"] == pytest.approx(summ[arch]["mean"] / study.area)
        assert summ[arch]["above_chance"] == pytest.approx((s > study.area).mean())
        assert sum(summ[arch]["bands"].values()) == d
    json.dumps(summ)


def test_score_models_rejects_bad_input(toy):
    cnn, _, images, masks = toy
    with pytest.raises(ValueError, match="non-empty"):
        vh.score_models({"cnn": cnn}, images, masks, alpha=0.5)  # image 3 has an empty mask
    with pytest.raises(ValueError, match="models keys"):
        vh.score_models({"resnet": cnn}, images[:2], masks[:2], alpha=0.5)
    with pytest.raises(ValueError, match="masks must be"):
        vh.score_models({"cnn": cnn}, images[:2], masks[:1], alpha=0.5)
    with pytest.raises(ValueError, match="area must be in"):
        vh.sscore_summary([0.1, 0.2], 0.0)


def test_example_neurons_spread_over_the_ranking():
    scores = [0.1, 0.9, 0.5, 0.3, 0.7]
    assert vh.example_neurons(scores, 3) == [1, 2, 0]  # top, middle, bottom
    assert vh.example_neurons(scores, 10) == [1, 4, 2, 3, 0]  # at most d, all distinct
    with pytest.raises(ValueError, match="k must be"):
        vh.example_neurons(scores, 0)


def test_example_heatmaps_match_pytorch_grad_cam_on_the_vit(study):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    vit = study.models["vit"]
    ex = vh.example_heatmaps(study, "vit", image=1, neurons=[3, 40])

    class Enc(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.f_enc(x)

    def reshape(t):  # drop the class token, tokens -> (B, C, 8, 8)
        return t[:, 1:].reshape(t.shape[0], 8, 8, t.shape[-1]).permute(0, 3, 1, 2)

    with GradCAM(model=Enc(vit), target_layers=[vit.default_target_layer()], reshape_transform=reshape) as cam:
        for j, n in enumerate(ex["neurons"]):
            ref = cam(input_tensor=study.images[1:2], targets=[ClassifierOutputTarget(n)])[0]
            assert np.allclose(ex["cams"][j].numpy(), ref, atol=1e-4)
    # the per-image score is the paper's |b ⊙ m| / |b| on this image
    b = ex["cams"] >= np.float32(0.4)
    m = study.masks[1]
    for j in range(2):
        expect = float((b[j] & m).sum()) / float(b[j].sum()) if b[j].any() else 0.0
        assert ex["image_scores"][j] == pytest.approx(expect, abs=1e-6)
    assert ex["scores"] == pytest.approx([float(study.scores["vit"][3]), float(study.scores["vit"][40])])


def test_neuron_selection_is_inclusive_ascending_and_capped():
    s = [0.05, 0.6, 0.5, 0.9, 0.5, 0.2]
    sel = vh.neuron_selection(s, 0.5, k=3)
    assert sel["n_above"] == 4 and sel["d"] == 6
    assert sel["neurons"] == [2, 4, 1] and sel["scores"] == [0.5, 0.5, 0.6]  # just above, lowest first
    assert vh.neuron_selection(s, 0.95)["neurons"] == []
    with pytest.raises(ValueError, match="threshold must be"):
        vh.neuron_selection(s, 1.5)


def test_neuron_view_caption_and_heatmaps(study):
    view = vh.neuron_view(study, "vit", threshold=0.0, image=0, k=3)
    assert view["n_above"] == 128 and len(view["neurons"]) == 3 and view["cams"].shape == (3, SIZE, SIZE)
    assert torch.allclose(view["cams"], neuron_cams(study.models["vit"], study.images[:1], neurons=view["neurons"])[0])
    assert "128 of 128 neurons have s-score ≥ 0.00" in view["text"] and f"n{view['neurons'][0]}" in view["text"]
    empty = vh.neuron_view(study, "cnn", threshold=1.0)
    assert empty["neurons"] == [] and empty["cams"].shape[0] == 0 and "none to show" in empty["text"]
    with pytest.raises(ValueError, match="arch must be"):
        vh.neuron_view(study, "rnn")
    with pytest.raises(ValueError, match="image must be"):
        vh.neuron_view(study, "vit", image=9)


# --------------------------------------------------------------------------- attention


def _hand_share(attn_img: torch.Tensor, spur: torch.Tensor) -> torch.Tensor:
    """Reference: for each layer/head, mean over core query patches of the renormalised row's mass on spurious keys."""
    L, H = attn_img.shape[:2]
    out = torch.zeros(L, H, dtype=torch.float64)
    core = [q for q in range(spur.numel()) if not spur[q]]
    for l in range(L):
        for h in range(H):
            vals = []
            for q in core:
                row = attn_img[l, h, 1 + q, 1:].double()
                row = row / row.sum()
                vals.append(float(row[spur].sum()))
            out[l, h] = sum(vals) / len(vals)
    return out


def test_per_image_shares_match_a_hand_computation(toy):
    _, vit, images, masks = toy
    layout = att.token_layout(vit)
    shares, areas, used = vh.per_image_shares(vit, images, masks, batch_size=2)
    assert used == [0, 1, 2, 4]  # image 3 has no spurious patch
    attn = att.attention_maps(vit, images)
    spur = att.spurious_patches(masks, layout)
    for j, i in enumerate(used):
        assert torch.allclose(shares[j].double(), _hand_share(attn[i], spur[i]), atol=1e-5)
        assert areas[j] == pytest.approx(float(spur[i].float().mean()))
    # the batch function averages images equally, as our per-image list does
    batch = att.spurious_attention_share(attn[used], masks[used], layout, query="core")
    assert torch.allclose(shares.mean(0), batch, atol=1e-6)
    assert float(areas.mean()) == pytest.approx(float(att.spurious_area_share(masks[used], layout, query="core")))


def test_head_statistics_and_heads_beyond_area():
    g = torch.Generator().manual_seed(0)
    m = 12
    areas = torch.full((m,), 0.1)
    shares = 0.1 + 0.01 * torch.randn(m, 2, 3, generator=g)
    shares[:, 1, 2] = 0.3 + 0.01 * torch.randn(m, generator=g)  # clearly above the area
    shares[:, 0, 1] = torch.tensor([2.0 if i == 0 else 0.0 for i in range(m)]) * 0.9  # big mean, not significant
    st = vh.head_statistics(shares, areas)
    ex = shares.double().numpy() - 0.1
    assert st["n_images"] == m and st["area"] == pytest.approx(0.1)
    assert np.allclose(st["share"], shares.double().numpy().mean(0))
    assert np.allclose(st["lift"], st["share"] / 0.1)
    assert np.allclose(st["se"], ex.std(0, ddof=1) / math.sqrt(m))
    assert np.allclose(st["lower"], ex.mean(0) - 1.645 * st["se"])
    assert st["lift"][0, 1] > 1.25 and st["lower"][0, 1] < 0
    assert vh.heads_beyond_area(st) == [(1, 2)]
    assert vh.heads_beyond_area(st, lift_min=5.0) == []
    one = vh.head_statistics(shares[:1], areas[:1])
    assert np.isnan(one["lower"]).all() and vh.heads_beyond_area(one) == []
    with pytest.raises(ValueError, match="lift_min"):
        vh.heads_beyond_area(st, lift_min=0.5)
    with pytest.raises(ValueError, match="areas must be"):
        vh.head_statistics(shares, areas[:3])


def test_default_target_patch_is_the_core_patch_nearest_the_core_centroid():
    layout = att.TokenLayout(num_prefix_tokens=1, grid=(8, 8), patch_size=(2, 2), image_size=(16, 16),
                             prefix_names=("cls",))
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:, :8] = True  # left half spurious: core centroid (3.5, 5.5)
    assert vh.default_target_patch(mask, layout) == (3, 5)
    bird = torch.ones(16, 16, dtype=torch.bool)
    bird[10:14, 2:6] = False  # a small core object: patches rows 5-6, cols 1-2
    assert vh.default_target_patch(bird, layout) == (5, 1)
    tiny = torch.ones(16, 16, dtype=torch.bool)
    tiny[6, 9] = False  # the core object is smaller than half a patch: the least covered patch
    assert vh.default_target_patch(tiny, layout) == (3, 4)
    with pytest.raises(ValueError, match="mask must be"):
        vh.default_target_patch(torch.ones(1, 16, 16, dtype=torch.bool), layout)


def test_target_view_maps_shares_and_caption(astudy):
    v = astudy.layout
    view = vh.target_view(astudy, image=1, row=2, col=6, layer=1, head=3)
    L, H = astudy.num_layers, astudy.num_heads
    assert view["maps"].shape == (L, H, *v.grid)
    assert torch.allclose(view["maps"].sum((-2, -1)), torch.ones(L, H), atol=1e-5)
    assert torch.allclose(view["layer_means"], view["maps"].mean(1))
    spur = att.spurious_patches(astudy.masks[1][None], v)[0].reshape(v.grid)
    assert torch.allclose(view["share"], view["maps"][..., spur].sum(-1), atol=1e-5)
    assert view["area"] == pytest.approx(float(spur.float().mean()))
    assert view["selected_share"] == pytest.approx(float(view["share"][1, 3]))
    assert view["target_is_spurious"] == bool(spur[2, 6])
    assert "image 1 · target patch (2, 6)" in view["text"] and "layer 1 · head 3" in view["text"]
    mean = vh.target_view(astudy, image=1, row=2, col=6, layer=1)
    assert mean["selected_share"] == pytest.approx(float(view["share"][1].mean()))
    assert "mean over heads" in mean["text"]
    table = vh.target_table(view, "lift")
    assert table.shape == (L, H) and table.iloc[1, 3] == pytest.approx(view["selected_lift"], rel=1e-5)
    default = vh.target_view(astudy)
    assert not default["target_is_spurious"] and default["layer"] == L - 1 and default["head"] is None
    with pytest.raises(ValueError, match="row must be"):
        vh.target_view(astudy, row=8, col=0)
    with pytest.raises(ValueError, match="both row and col"):
        vh.target_view(astudy, row=1)
    with pytest.raises(ValueError, match="head must be"):
        vh.target_view(astudy, head=4)


def test_attention_study_keeps_examples_and_all_shares(toy, astudy):
    _, vit, images, _ = toy
    assert astudy.attn.shape == (2, 4, 4, 65, 65) and astudy.images.shape[0] == 2
    assert torch.allclose(astudy.attn, att.attention_maps(vit, images[:2]))
    assert astudy.used == [0, 1, 2, 4] and astudy.shares.shape == (4, 4, 4) and astudy.n_images == 5
    assert astudy.indices == [100, 101]


# --------------------------------------------------------------------------- record, claims, figures, widgets


def _views(astudy):
    return {"isic": (astudy, vh.target_view(astudy, image=0))}


def test_record_payload_is_json_and_consistent(study, astudy):
    rec = vh.record_payload([study], _views(astudy), profile="smoke", seconds=1.5)
    rec = json.loads(json.dumps(rec))  # valid JSON (NaN would not survive strict parsing below)
    json.dumps(rec, allow_nan=False)
    assert rec["mean_s"]["isic/vit"] == pytest.approx(rec["sscore"]["isic"]["vit"]["mean"])
    a = rec["attention"]["isic"]
    assert a["layers"] == 4 and a["heads"] == 4 and a["grid"] == [8, 8]
    assert len(a["target"]["share"]) == 4 and len(a["target"]["share"][0]) == 4
    st = astudy.stats()
    assert a["core"]["n_images"] == 4 and a["core"]["area"] == pytest.approx(st["area"])
    assert np.allclose(np.asarray(a["core"]["lift"], dtype=float), st["lift"], atol=1e-5)
    assert a["core"]["heads_beyond_area"] == [list(x) for x in vh.heads_beyond_area(st)]
    text = vh.takeaways(rec)
    assert "isic" in text and f"{rec['sscore']['isic']['vit']['mean']:.2f}" in text


def _claim(cid):
    from shortcut_nb.report.claims import load_claims

    return next(c for c in load_claims() if c.id == cid)


def test_claims_decide_both_ways():
    sscore = _claim("vit_heads.sscore")
    rec = {"sscore": {"isic": {"area": 0.05, "vit": {"mean": 0.2}, "cnn": {"mean": 0.4}},
                      "waterbirds": {"area": 0.85, "vit": {"mean": 0.5}, "cnn": {"mean": 0.6}}}}
    ours, holds = sscore.check(rec)
    assert holds and "isic: ViT 0.20 vs CNN 0.40" in ours
    rec["sscore"]["waterbirds"]["vit"]["mean"] = 0.7
    assert sscore.check(rec)[1] is False
    heads = _claim("vit_heads.heads")

    def att_rec(beyond):
        return {"layers": 4, "heads": 4, "core": {"heads_beyond_area": beyond, "max_lift": 1.6, "area": 0.05}}

    rec = {"attention": {"isic": att_rec([[2, 1]]), "waterbirds": att_rec([])}}
    ours, holds = heads.check(rec)
    assert holds and "isic: 1/16 heads" in ours and "verdict on isic" in ours
    rec["attention"]["isic"] = att_rec([])
    assert heads.check(rec)[1] is False


def test_figures_have_the_expected_panels(study, astudy):
    fig = vh.plot_fig8([study], image=0, k=3)
    assert len(fig.axes) == 2 * (1 + 3) + 1  # two rows (ViT, CNN) of image + 3 heatmaps, one histogram
    view = vh.target_view(astudy, image=0, layer=2, head=1)
    fig = vh.plot_fig9(view)
    assert len(fig.axes) == 2 * (1 + 4)
    assert fig.axes[3].get_title().startswith("layer 2")
    fig = vh.plot_head_tables(view, astudy)
    assert len(fig.axes) == 4  # two tables, two colour bars
    fig = vh.plot_neuron_view(vh.neuron_view(study, "vit", threshold=0.9, k=2))
    assert len(fig.axes) >= 2
    frame = vh.sscore_frame([study])
    assert list(frame["dataset"]) == ["isic", "isic"] and set(frame["paper mean s"]) == {0.23, 0.40}


def test_widgets_update_their_caption(study, astudy):
    pytest.importorskip("ipywidgets")
    from shortcut_nb.widgets import vit_heads as wv

    box = wv.attention_explorer(astudy, image=0, row=1, col=1)
    assert {c.description for c in box.controls.values()} == {"image", "patch row", "patch col", "layer", "head"}
    assert "target patch (1, 1)" in box.caption.value and "mean over heads" in box.caption.value
    box.controls["row"].value = 6
    assert "target patch (6, 1)" in box.caption.value
    box.controls["head"].value = 2
    box.controls["layer"].value = 0
    assert "layer 0 · head 2" in box.caption.value
    assert box.caption.value == vh.target_view(astudy, image=0, row=6, col=1, layer=0, head=2)["text"].replace(
        "&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    nbox = wv.neuron_explorer(study, threshold=0.0, k=2)
    assert {c.description for c in nbox.controls.values()} == {"model", "min s-score", "scored image"}
    before = nbox.caption.value
    assert "128 of 128" in before
    nbox.controls["threshold"].value = 1.0
    assert "0 of 128" in nbox.caption.value and "none to show" in nbox.caption.value
    nbox.controls["arch"].value = "cnn"
    assert "of 256 neurons" in nbox.caption.value
    with pytest.raises(ValueError, match="unknown control"):
        wv.attention_values(astudy, {"colour": 1})
    assert wv.head_options(2) == [("mean over heads", -1), ("head 0", 0), ("head 1", 1)]


def test_degenerate_data_without_spurious_patches_does_not_crash(toy, study):
    """Smoke-sized data can have no patch that is mostly spurious: everything still records and draws."""
    _, vit, images, _ = toy
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    empty = vh.attention_study(vit, images[:2], masks, dataset="isic", n_examples=1)
    assert empty.used == [] and empty.shares.shape == (0, 4, 4) and empty.stats()["n_images"] == 0
    view = vh.target_view(empty)
    assert view["area"] == 0 and view["selected_lift"] is None and "no spurious patch" in view["text"]
    rec = vh.record_payload([study], {"isic": (empty, view)}, profile="smoke", seconds=1.0)
    json.dumps(rec, allow_nan=False)
    a = rec["attention"]["isic"]
    assert a["core"]["heads_beyond_area"] == [] and a["target"]["lift"] is None
    assert "no sampled image has both core and spurious patches" in vh.takeaways(rec)
    assert _claim("vit_heads.heads").check(rec)[1] is False
    vh.plot_head_tables(view, empty)
    vh.plot_fig9(view)
    with pytest.raises(ValueError, match="needs spurious patches"):
        vh.target_table(view, "lift")
