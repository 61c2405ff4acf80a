"""Notebook 06's studies: CNN and ViT s-scores on the same samples, and the attention study, on tiny models."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from shortcut_nb import attention as att
from shortcut_nb.bands import band_counts
from shortcut_nb.data.samples import MaskedSamples
from shortcut_nb.pipeline import context as context_module
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import neuron_study as ns
from shortcut_nb.sscore import mask_area, neuron_cams, s_scores

SIZE = 16  # the toy images of this folder's conftest


# --------------------------------------------------------------------------- neurons


def test_score_models_uses_the_same_images_alpha_and_chance_level(toy, samples, study):
    cnn, vit, images, masks = toy
    keep = masks.flatten(1).any(1)
    for arch, model in (("cnn", cnn), ("vit", vit)):
        # the private copy this replaced: s_scores with batch 16 and chunk 128 on the same tensors
        ref = s_scores(model, images[keep], masks[keep], alpha=0.4, batch_size=16, chunk_size=128)
        assert torch.equal(study.scores[arch], ref)
    assert study.area == pytest.approx(mask_area(masks[keep]))
    assert study.area == samples.area
    summ = study.summary()
    assert summ["n_samples"] == 4 and summ["indices"] == [10, 11, 12, 14] and summ["alpha"] == pytest.approx(0.4)
    for arch, d in (("cnn", 256), ("vit", 128)):
        s = np.asarray(summ[arch]["scores"])
        raw = study.scores[arch].double().numpy()
        assert summ[arch]["d"] == d == s.size
        assert summ[arch]["mean"] == pytest.approx(s.mean(), abs=1e-6)
        # the old private summary's numbers, from the same formulas
        assert summ[arch]["mean"] == float(raw.mean()) and summ[arch]["median"] == float(np.median(raw))
        assert summ[arch]["std"] == float(raw.std())
        assert summ[arch]["lift"] == pytest.approx(summ[arch]["mean"] / study.area)
        assert summ[arch]["above_chance"] == pytest.approx((s > study.area).mean())
        assert summ[arch]["band_counts"] == band_counts(raw) and sum(summ[arch]["band_counts"].values()) == d
        assert summ[arch]["model"] == study.model_names[arch]
    json.dumps(summ)


def test_score_models_rejects_bad_input(toy, samples):
    cnn, _, images, masks = toy
    with pytest.raises(ValueError, match="non-empty"):  # image 3 has an empty mask
        ns.score_models({"cnn": cnn}, MaskedSamples(images, masks, np.arange(5)), alpha=0.5)
    with pytest.raises(ValueError, match="models keys"):
        ns.score_models({"resnet": cnn}, samples, alpha=0.5)
    with pytest.raises(ValueError, match="at least one"):
        ns.score_models({}, samples, alpha=0.5)
    with pytest.raises(ValueError, match="masks must be"):
        ns.score_models({"cnn": cnn}, MaskedSamples(images[:2], masks[:1], np.arange(2)), alpha=0.5)
    empty = ns.ModelScores(dataset="isic", alpha=0.5, samples=MaskedSamples(images[3:4], masks[3:4], np.arange(1)),
                           models={}, model_names={}, scores={"cnn": torch.tensor([0.1, 0.2])})
    with pytest.raises(ValueError, match="area must be in"):
        empty.stats("cnn")
    with pytest.raises(ValueError, match="arch must be"):
        empty.stats("vit")


class _Routed(Exception):
    """Raised by the patched run_spec once it has seen the folder the study passes."""


def test_neuron_study_passes_the_notebooks_data_folder_to_the_run(monkeypatch, tmp_path):
    """The notebook's DATA_FOLDERS reaches the run spec through the Context (the folder replaces the benchmark)."""
    seen = []

    def spy(profile, name, **kwargs):
        seen.append((name, kwargs.get("folder")))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", root=tmp_path, folders={"isic": "/data/isic"}, progress=False)
    with pytest.raises(_Routed):
        ns.neuron_study(ctx, "isic")
    assert seen == [("isic", "/data/isic")]


def test_neuron_study_draws_once_and_scores_every_model_on_it(toy, samples):
    """Each arch's run is trained or loaded; one draw (the sample seed, the profile's n) serves both models."""
    cnn, vit, _, _ = toy
    calls = []

    class FakeContext:
        settings = SimpleNamespace(sscore_samples=4)

        def run_spec(self, dataset, *, arch, seed, model=None):
            calls.append(("spec", dataset, arch, seed))
            return SimpleNamespace(model=f"{arch}_mini", arch=arch)

        def train_or_load(self, spec):
            return {"cnn": cnn, "vit": vit}[spec.arch], {"trained_now": False}

        def masked_samples(self, spec, *, seed, n=None):
            calls.append(("draw", seed, n))
            return samples

    st = ns.neuron_study(FakeContext(), "isic", seed=3, alpha=0.4, sample_seed=7)
    assert calls == [("spec", "isic", "cnn", 3), ("spec", "isic", "vit", 3), ("draw", 7, 4)]
    assert st.model_names == {"cnn": "cnn_mini", "vit": "vit_mini"} and st.indices == [10, 11, 12, 14]
    ref = ns.score_models({"cnn": cnn, "vit": vit}, samples, alpha=0.4, dataset="isic")
    assert all(torch.equal(st.scores[a], ref.scores[a]) for a in ("cnn", "vit"))
    with pytest.raises(ValueError, match="n_samples must be"):
        ns.neuron_study(FakeContext(), "isic", n_samples=0)


def test_example_neurons_spread_over_the_ranking():
    scores = [0.1, 0.9, 0.5, 0.3, 0.7]
    assert ns.example_neurons(scores, 3) == [1, 2, 0]  # top, middle, bottom
    assert ns.example_neurons(scores, 10) == [1, 4, 2, 3, 0]  # at most d, all distinct
    with pytest.raises(ValueError, match="k must be"):
        ns.example_neurons(scores, 0)


def test_example_heatmaps_match_pytorch_grad_cam_on_the_vit(study):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    vit = study.models["vit"]
    ex = ns.example_heatmaps(study, "vit", image=1, neurons=[3, 40])

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
    sel = ns.neuron_selection(s, 0.5, k=3)
    assert sel["n_above"] == 4 and sel["d"] == 6
    assert sel["neurons"] == [2, 4, 1] and sel["scores"] == [0.5, 0.5, 0.6]  # just above, lowest first
    assert ns.neuron_selection(s, 0.95)["neurons"] == []
    with pytest.raises(ValueError, match="threshold must be"):
        ns.neuron_selection(s, 1.5)


def test_neuron_view_caption_and_heatmaps(study):
    view = ns.neuron_view(study, "vit", threshold=0.0, image=0, k=3)
    assert view["n_above"] == 128 and len(view["neurons"]) == 3 and view["cams"].shape == (3, SIZE, SIZE)
    assert torch.allclose(view["cams"], neuron_cams(study.models["vit"], study.images[:1], neurons=view["neurons"])[0])
    assert "128 of 128 neurons have s-score ≥ 0.00" in view["text"] and f"n{view['neurons'][0]}" in view["text"]
    empty = ns.neuron_view(study, "cnn", threshold=1.0)
    assert empty["neurons"] == [] and empty["cams"].shape[0] == 0 and "none to show" in empty["text"]
    with pytest.raises(ValueError, match="arch must be"):
        ns.neuron_view(study, "rnn")
    with pytest.raises(ValueError, match="image must be"):
        ns.neuron_view(study, "vit", image=9)


# --------------------------------------------------------------------------- attention


def test_target_view_maps_shares_and_caption(astudy):
    v = astudy.layout
    view = ast.target_view(astudy, image=1, row=2, col=6, layer=1, head=3)
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
    mean = ast.target_view(astudy, image=1, row=2, col=6, layer=1)
    assert mean["selected_share"] == pytest.approx(float(view["share"][1].mean()))
    assert "mean over heads" in mean["text"]
    lift = ast.target_values(view, "lift")
    assert lift.shape == (L, H) and float(lift[1, 3]) == pytest.approx(view["selected_lift"], rel=1e-5)
    default = ast.target_view(astudy)
    assert not default["target_is_spurious"] and default["layer"] == L - 1 and default["head"] is None
    with pytest.raises(ValueError, match="row must be"):
        ast.target_view(astudy, row=8, col=0)
    with pytest.raises(ValueError, match="both row and col"):
        ast.target_view(astudy, row=1)
    with pytest.raises(ValueError, match="head must be"):
        ast.target_view(astudy, head=4)


def test_attention_study_keeps_examples_and_all_shares(toy, astudy):
    _, vit, images, masks = toy
    assert astudy.attn.shape == (2, 4, 4, 65, 65) and astudy.images.shape[0] == 2
    assert torch.allclose(astudy.attn, att.attention_maps(vit, images[:2]))
    assert astudy.used == [0, 1, 2, 4] and astudy.shares.shape == (4, 4, 4) and astudy.n_images == 5
    assert astudy.indices == [100, 101]
    shares, areas, used = att.per_image_shares(vit, images, masks, query="core")
    assert torch.equal(astudy.shares, shares) and torch.equal(astudy.areas, areas) and astudy.used == used
    st = astudy.stats()
    assert st is astudy.stats() and st["n_images"] == 4


def test_degenerate_data_without_spurious_patches_gives_empty_shares(toy):
    """Smoke-sized data can have no patch that is mostly spurious: the study and its view still work."""
    _, vit, images, _ = toy
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    empty = ast.attention_study(vit, images[:2], masks, dataset="isic", n_examples=1)
    assert empty.used == [] and empty.shares.shape == (0, 4, 4) and empty.stats()["n_images"] == 0
    view = ast.target_view(empty)
    assert view["area"] == 0 and view["selected_lift"] is None and "no spurious patch" in view["text"]
    with pytest.raises(ValueError, match="needs spurious patches"):
        ast.target_values(view, "lift")
    with pytest.raises(ValueError, match="n_examples"):
        ast.attention_study(vit, images[:2], masks, n_examples=0)


def test_neuron_study_passes_the_notebooks_models_to_the_run(monkeypatch, tmp_path):
    """CNN_MODEL / VIT_MODEL (None: the profile's) reach the run spec through the Context."""
    seen = []

    def spy(profile, name, **kwargs):
        seen.append((kwargs.get("arch"), kwargs.get("model")))
        raise _Routed

    monkeypatch.setattr(context_module, "run_spec", spy)
    ctx = Context.build("smoke", root=tmp_path, progress=False)
    with pytest.raises(_Routed):
        ns.neuron_study(ctx, "isic", archs=("vit",), models={"cnn": None, "vit": "deit_mini"})
    with pytest.raises(_Routed):
        ns.neuron_study(ctx, "isic")
    assert seen == [("vit", "deit_mini"), ("cnn", None)]


def test_vit_depth_profile_walks_every_norm1(study):
    prof = ns.vit_depth_profiles([study])[study.dataset]
    vit = study.models["vit"]
    assert prof.blocks == [f"blocks.{i}.norm1" for i in range(len(vit.f_enc.blocks))]
    assert prof.alpha == study.alpha and all(r["chance"] == pytest.approx(study.area) for r in prof.rows)
    # the last norm1's units are token means, not the penultimate neurons (the final class token)
    assert prof.scores[-1].shape == study.scores["vit"].shape


def test_planned_runs_name_both_models_of_every_seed_the_claim_reads(tmp_path):
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    runs = ns.planned_runs(ctx, {"DATASETS": ["isic"], "SEEDS": [0, 1]})
    cnn, vit = ctx.settings.cnn, ctx.settings.vit
    assert [(r.model, r.seed) for r in runs] == [(cnn, 0), (cnn, 1), (vit, 0), (vit, 1)]
    assert [(r.model, r.seed) for r in ns.planned_runs(ctx, {"DATASETS": ["isic"], "SEED": 2})][:3] == \
        [(cnn, 2), (cnn, 0), (cnn, 1)]


def test_seed_studies_reuse_the_notebooks_own_and_score_the_others(monkeypatch, study, tmp_path):
    """The notebook's study is not scored again; every other seed's is, on the same draw and alpha."""
    calls = []
    monkeypatch.setattr(ns, "neuron_study", lambda ctx, ds, **kw: calls.append((ds, kw["seed"], kw["sample_seed"],
                                                                               kw["alpha"])) or study)
    ctx = Context.build("cpu", root=tmp_path, progress=False)
    out = ns.seed_studies(ctx, ["isic"], None, alpha=0.3, sample_seed=4, studies={"isic": "mine"}, studies_seed=1)
    assert list(out["isic"]) == [1, 0, 2, 3, 4] and out["isic"][1] == "mine"
    assert calls == [("isic", s, 4, 0.3) for s in (0, 2, 3, 4)]
