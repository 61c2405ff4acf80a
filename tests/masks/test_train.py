"""shortcut_nb.masks.train: training a mask on a frozen model (frozen weights, seeds, sparsity target, objectives)."""
from __future__ import annotations

import math

import pytest
import torch
from support.toy_masks import same_state, state, toy_batches, toy_model
from torch import nn

from shortcut_nb.masks import supcon_loss, train_mask, undecided_share
from shortcut_nb.models import SplitModel

def test_training_and_apply_never_change_frozen_weights():
    model = toy_model()
    before = state(model)
    model.train()  # training must not update BN statistics even if the user left train mode on
    res = train_mask(model, toy_batches(), objective="prusc", keep_fraction=0.5, steps=6, lr=0.3)
    assert model.training, "the model's train/eval flag is restored"
    model.eval()
    assert same_state(before, state(model))
    assert all(p.grad is None for p in model.parameters()), "no gradient reaches the frozen weights"
    masked = res.apply(model)
    assert same_state(before, state(model)), "apply() left the original untouched"
    assert isinstance(masked, SplitModel) and masked is not model
    assert not any(p.requires_grad for p in masked.parameters())
    # pruned weights are zero in the copy, kept weights equal the original
    for name, m in res.masks().items():
        w_new = dict(masked.named_parameters())[name]
        w_old = dict(model.named_parameters())[name]
        assert torch.equal(w_new[m], w_old[m]) and bool((w_new[~m] == 0).all())
    assert res.keep_fraction() < 0.6  # something was actually pruned


def test_same_seed_reproducible_other_seed_differs():
    model = toy_model()
    kw = dict(objective="prusc", steps=4, lr=0.1)
    r1 = train_mask(model, toy_batches(), seed=3, **kw)
    r2 = train_mask(model, toy_batches(), seed=3, **kw)
    r3 = train_mask(model, toy_batches(), seed=4, **kw)
    assert all(torch.equal(r1.logits[n], r2.logits[n]) for n in r1.logits)
    assert any(not torch.equal(r1.logits[n], r3.logits[n]) for n in r1.logits)


def test_penalty_switches_off_at_target():
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.9, steps=12, lr=1.0, sparsity_weight=1.0)
    hist = res.history
    assert hist[0]["penalty_on"]  # keep starts at 1.0 > 0.9
    for prev, cur in zip(hist, hist[1:]):
        assert cur["penalty_on"] == (prev["train_keep"] > 0.9)
    assert any(not h["penalty_on"] for h in hist), "training reached the target within 12 steps"


def test_each_step_records_the_undecided_share_of_the_logits_it_ended_with():
    model = toy_model()
    # lr 1.0 with a strong penalty: every logit starts at 2 (undecided at c = 0.9) and is pushed past -ln 9 = -2.2
    res = train_mask(model, toy_batches(), steps=6, lr=1.0, sparsity_weight=1.0)
    shares = [h["undecided"] for h in res.history]
    assert shares[-1] == undecided_share(res)
    assert shares[0] == 1.0 and shares[-1] < 0.5, shares


def test_prusc_never_reads_group_labels():
    model = toy_model()
    kw = dict(objective="prusc", keep_fraction=0.7, steps=4, lr=0.2, seed=1)
    ref = train_mask(model, toy_batches(g="true"), **kw)
    for mode in ("garbage", "missing", "poison"):
        other = train_mask(model, toy_batches(g=mode), **kw)
        assert all(torch.equal(ref.logits[n], other.logits[n]) for n in ref.logits), mode
    assert all(h["contrastive"] > 0 for h in ref.history)
    ce = train_mask(model, toy_batches(g="poison"), **{**kw, "objective": "ce"})
    assert any(not torch.equal(ref.logits[n], ce.logits[n]) for n in ref.logits), "the SupCon term has an effect"


def test_supcon_matches_definition():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=gen)
    y = torch.tensor([0, 1, 0, 1, 1, 2, 0])  # class 2 has no positive: not an anchor
    t = 0.5
    zn = z / z.norm(dim=1, keepdim=True)
    terms = []
    for i in range(7):
        pos = [p for p in range(7) if p != i and y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(zn[i] @ zn[a]) / t) for a in range(7) if a != i)
        terms.append(-sum(math.log(math.exp(float(zn[i] @ zn[p]) / t) / denom) for p in pos) / len(pos))
    assert math.isclose(float(supcon_loss(z, y, temperature=t)), sum(terms) / len(terms), rel_tol=1e-5)


def test_bad_input_errors():
    model = toy_model()
    b = toy_batches()
    with pytest.raises(ValueError, match="objective"):
        train_mask(model, b, objective="dfr")
    with pytest.raises(ValueError, match="keep_fraction"):
        train_mask(model, b, keep_fraction=1.5)
    with pytest.raises(ValueError, match="granularity"):
        train_mask(model, b, granularity="neuron")
    with pytest.raises(ValueError, match="'y'"):
        train_mask(model, [{"image": torch.randn(2, 3, 16, 16)}], steps=1)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    with pytest.raises(ValueError, match="f_enc"):
        train_mask(plain, b, objective="prusc")
    # "ce" works on any module; the head is then the last masked layer
    r = train_mask(plain, b, steps=1, keep_fraction=0.5)
    assert r.head_names == ("1.weight",)
    with pytest.raises(ValueError, match="does not fit"):
        r.apply(model)


def test_train_mask_reports_each_step():
    """on_step sees each step's history row once the step is done (the pipeline draws its progress bar from it)."""
    rows = []
    res = train_mask(toy_model(), toy_batches(), keep_fraction=0.8, steps=5, lr=0.1, on_step=rows.append)
    assert rows == res.history and len(rows) == 5
    assert all(set(r) >= {"ce", "train_keep", "seconds"} for r in rows)
