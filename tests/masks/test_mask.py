"""shortcut_nb.masks: the mask over a frozen model (WeightMask), the eval cut, MaskResult, the Gumbel sample."""
from __future__ import annotations

import math

import pytest
import torch
from support.toy_masks import toy_batches, toy_model

from shortcut_nb.masks import MaskResult, WeightMask, gumbel_sigmoid, per_layer_keep_table, train_mask
from shortcut_nb.models import build_model

def test_all_ones_mask_reproduces_original_outputs():
    model = build_model("resnet_mini", image_size=16).eval()
    x = torch.randn(4, 3, 16, 16)
    wrapper = WeightMask(model)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(wrapper(x, wrapper.ones_masks()), ref)
        # init logits are 2.0 > 0, so the default eval mask keeps everything
        z, out = wrapper.features(x)
        assert torch.equal(z, model.f_enc(x)) and torch.equal(out, ref)
    untrained = train_mask(model, toy_batches(n=8, batch=8), steps=0)
    assert untrained.keep_fraction() == 1.0 and untrained.prune_f() == 0.0
    with torch.no_grad():
        assert torch.equal(untrained.apply(model)(x), ref)
    # a zero mask on the head does change outputs (the comparison can fail)
    masks = wrapper.ones_masks()
    masks["head.weight"] = torch.zeros_like(masks["head.weight"])
    with torch.no_grad():
        assert not torch.allclose(wrapper(x, masks), ref)


def test_masked_forward_matches_apply():
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.6, steps=4, lr=0.3)
    x = torch.randn(5, 3, 16, 16)
    wrapper = WeightMask(model)
    masks = {n: m.float() for n, m in res.masks().items()}
    with torch.no_grad():
        torch.testing.assert_close(wrapper(x, masks), res.apply(model)(x))


def test_eval_mask_deterministic_including_ties():
    model = toy_model()
    # steps=0: all logits tie at init; the top-k must still be deterministic
    tied = train_mask(model, toy_batches(), keep_fraction=0.5, steps=0)
    copy = MaskResult(logits={k: v.clone() for k, v in tied.logits.items()}, weight_shapes=tied.weight_shapes,
                      granularity="weight", keep_target=0.5, head_names=tied.head_names)
    a, b, c = tied.masks(), tied.masks(), copy.masks()
    assert all(torch.equal(a[n], b[n]) and torch.equal(a[n], c[n]) for n in a)
    assert abs(tied.keep_fraction() - 0.5) < 0.02
    res = train_mask(model, toy_batches(), keep_fraction=None, steps=5, lr=0.5, sparsity_weight=1.0)
    m1, m2 = res.masks(), res.masks()
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    # without a target the eval mask is logits >= 0 (up to the no-empty-layer guarantee)
    for n, lg in res.logits.items():
        if bool((lg >= 0).any()):
            assert torch.equal(m1[n], (lg >= 0).expand(res.weight_shapes[n]))


def test_save_load_roundtrip(tmp_path):
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.7, granularity="channel", steps=3, lr=0.2)
    back = MaskResult.load(res.save(tmp_path / "mask.pt"))
    assert back.granularity == "channel" and back.keep_target == 0.7
    assert all(torch.equal(back.masks()[n], res.masks()[n]) for n in res.masks())
    assert back.history == res.history


def test_no_layer_fully_pruned_even_with_huge_penalty():
    model = toy_model()
    res = train_mask(model, toy_batches(), steps=8, lr=1.0, sparsity_weight=1e6)
    # the penalty won: every logit went negative, so logits >= 0 alone would prune every layer
    assert all(bool((lg < 0).all()) for lg in res.logits.values())
    keep = res.per_layer_keep()
    assert len(keep) == 4 and all(v > 0 for v in keep.values())
    assert all(int(m.sum()) >= 1 for m in res.masks().values())
    # same with an extreme target and with channel masks (one whole row per layer survives)
    tiny = train_mask(model, toy_batches(), steps=2, keep_fraction=1e-4)
    assert all(v > 0 for v in tiny.per_layer_keep().values())
    ch = train_mask(model, toy_batches(), steps=8, lr=1.0, sparsity_weight=1e6, granularity="channel")
    for n, m in ch.masks().items():
        assert int(m.flatten(1).all(1).sum()) >= 1, n


@pytest.mark.parametrize("granularity", ["weight", "channel"])
def test_keep_fraction_target_reached(granularity):
    model = build_model("resnet_mini", image_size=16).eval()
    batches = toy_batches(n=32, batch=16)
    for target in (0.8, 0.3):
        res = train_mask(model, batches, keep_fraction=target, granularity=granularity, steps=2, lr=0.2)
        assert abs(res.keep_fraction() - target) <= 0.02, (target, res.keep_fraction())
        table = per_layer_keep_table(res)
        n_total = sum(n for _, _, n in table)
        assert math.isclose(sum(k * n for _, k, n in table) / n_total, res.keep_fraction(), rel_tol=1e-9)
        assert math.isclose(res.prune_f(), 1 - res.keep_fraction())
        head_keep = dict((name, k) for name, k, _ in table)["head"]
        assert math.isclose(res.prune_h(), 1 - head_keep)


def test_channel_granularity_masks_whole_rows():
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.5, granularity="channel", steps=4, lr=0.3)
    some_pruned = False
    for n, m in res.masks().items():
        rows = m.flatten(1)
        assert bool((rows.all(1) | ~rows.any(1)).all()), f"{n}: a row is partly masked"
        some_pruned |= bool((~rows.any(1)).any())
        assert res.logits[n].shape == (m.shape[0],) + (1,) * (m.dim() - 1)
    assert some_pruned


def test_gumbel_sigmoid_straight_through():
    logits = torch.tensor([-1.0, 0.0, 1.5], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    samples = gumbel_sigmoid(logits.expand(40000, 3), generator=gen)
    assert set(samples.detach().unique().tolist()) <= {0.0, 1.0}
    # logistic noise: P(keep) = sigmoid(logit)
    torch.testing.assert_close(samples.detach().mean(0), torch.sigmoid(logits.detach()), atol=0.01, rtol=0)
    samples.sum().backward()
    assert bool((logits.grad > 0).all()), "soft gradients flow through the hard sample"


def test_magnitude_ordered_start_keeps_the_largest_weights_of_every_layer():
    """init_spread > 0: before any step, the top-k cut keeps each layer's largest weights (and the uniform start
    is the default)."""
    model = toy_model()
    uniform = WeightMask(model)
    assert all(torch.all(uniform.logit(n) == 2.0) for n in uniform.names)
    res = train_mask(model, toy_batches(), keep_fraction=0.5, steps=0, init_spread=1.0)
    params = dict(model.named_parameters())
    masks = res.masks()
    kept_total = sum(float(m.sum()) for m in masks.values())
    assert abs(kept_total / sum(m.numel() for m in masks.values()) - 0.5) < 0.02
    for name, mask in masks.items():
        w = params[name].detach().abs()
        kept, dropped = w[mask.bool()], w[~mask.bool()]
        assert kept.numel() > 0
        if dropped.numel():
            assert kept.min() >= dropped.max(), name
    assert all(float(lg.min()) >= 1.0 - 1e-6 and float(lg.max()) <= 3.0 + 1e-6 for lg in res.logits.values())


def test_magnitude_ordered_start_by_row_norm_for_channels():
    model = toy_model()
    wm = WeightMask(model, granularity="channel", init_spread=0.5)
    name = wm.names[0]
    w = dict(model.named_parameters())[name].detach()
    norms = w.reshape(w.shape[0], -1).norm(dim=1)
    logits = wm.logit(name).detach().reshape(-1)
    assert torch.equal(torch.argsort(logits, stable=True), torch.argsort(norms, stable=True))
    assert float(logits.max() - logits.min()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="init_spread"):
        WeightMask(model, init_spread=-1.0)
