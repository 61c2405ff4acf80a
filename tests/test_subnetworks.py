"""Tests for shortcut_nb.masks: binary weight masks over a frozen model (paper §5.3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from shortcut_nb.config import seed_everything
from shortcut_nb.models import SplitModel, build_model
from shortcut_nb.masks.weight_masks import (
    MaskResult,
    WeightMask,
    exclude_groups,
    gumbel_sigmoid,
    per_layer_keep_table,
    supcon_loss,
    train_group_removal_mask,
    train_mask,
)



def toy_model() -> SplitModel:
    """conv -> BN -> ReLU -> pool -> linear encoder, linear head: 4 masked weights, BN left alone."""
    seed_everything(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 6),
    )
    model = SplitModel(backbone, nn.Linear(6, 2), name="toy", kind="cnn")
    # non-trivial BN statistics so eval mode matters
    with torch.no_grad():
        model.f_enc[1].running_mean.uniform_(-0.5, 0.5)
        model.f_enc[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def toy_batches(n: int = 64, batch: int = 16, size: int = 16, *, seed: int = 0, g: str = "true") -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    a = torch.randint(0, 2, (n,), generator=gen)
    x[:, 0] += 1.5 * y[:, None, None]  # a learnable class signal
    out = []
    for i in range(0, n, batch):
        b = {"image": x[i : i + batch], "y": y[i : i + batch], "a": a[i : i + batch]}
        if g == "true":
            b["g"] = 2 * b["y"] + b["a"]
        elif g == "garbage":
            b["g"] = torch.randint(-1000, 1000, (len(b["y"]),), generator=gen)
        elif g == "poison":
            b = _NoG(b)
        out.append(b)
    return out


class _NoG(dict):
    """A batch whose 'g' must never be read."""

    def __getitem__(self, key):
        if key == "g":
            raise AssertionError("the training objective read the group label 'g'")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "g":
            raise AssertionError("the training objective read the group label 'g'")
        return super().get(key, default)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- frozen weights


def test_training_and_apply_never_change_frozen_weights():
    model = toy_model()
    before = _state(model)
    model.train()  # training must not update BN statistics even if the user left train mode on
    res = train_mask(model, toy_batches(), objective="prusc", keep_fraction=0.5, steps=6, lr=0.3, progress=False)
    assert model.training, "the model's train/eval flag is restored"
    model.eval()
    assert _same_state(before, _state(model))
    assert all(p.grad is None for p in model.parameters()), "no gradient reaches the frozen weights"
    masked = res.apply(model)
    assert _same_state(before, _state(model)), "apply() left the original untouched"
    assert isinstance(masked, SplitModel) and masked is not model
    assert not any(p.requires_grad for p in masked.parameters())
    # pruned weights are zero in the copy, kept weights equal the original
    for name, m in res.masks().items():
        w_new = dict(masked.named_parameters())[name]
        w_old = dict(model.named_parameters())[name]
        assert torch.equal(w_new[m], w_old[m]) and bool((w_new[~m] == 0).all())
    assert res.keep_fraction() < 0.6  # something was actually pruned


# ----------------------------------------------------------------------------- identity and determinism


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
    untrained = train_mask(model, toy_batches(n=8, batch=8), steps=0, progress=False)
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
    res = train_mask(model, toy_batches(), keep_fraction=0.6, steps=4, lr=0.3, progress=False)
    x = torch.randn(5, 3, 16, 16)
    wrapper = WeightMask(model)
    masks = {n: m.float() for n, m in res.masks().items()}
    with torch.no_grad():
        torch.testing.assert_close(wrapper(x, masks), res.apply(model)(x))


def test_eval_mask_deterministic_including_ties():
    model = toy_model()
    # steps=0: all logits tie at init; the top-k must still be deterministic
    tied = train_mask(model, toy_batches(), keep_fraction=0.5, steps=0, progress=False)
    copy = MaskResult(logits={k: v.clone() for k, v in tied.logits.items()}, weight_shapes=tied.weight_shapes,
                      granularity="weight", keep_target=0.5, head_names=tied.head_names)
    a, b, c = tied.masks(), tied.masks(), copy.masks()
    assert all(torch.equal(a[n], b[n]) and torch.equal(a[n], c[n]) for n in a)
    assert abs(tied.keep_fraction() - 0.5) < 0.02
    res = train_mask(model, toy_batches(), keep_fraction=None, steps=5, lr=0.5, sparsity_weight=1.0, progress=False)
    m1, m2 = res.masks(), res.masks()
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    # without a target the eval mask is logits >= 0 (up to the no-empty-layer guarantee)
    for n, lg in res.logits.items():
        if bool((lg >= 0).any()):
            assert torch.equal(m1[n], (lg >= 0).expand(res.weight_shapes[n]))


def test_same_seed_reproducible_other_seed_differs():
    model = toy_model()
    kw = dict(objective="prusc", steps=4, lr=0.1, progress=False)
    r1 = train_mask(model, toy_batches(), seed=3, **kw)
    r2 = train_mask(model, toy_batches(), seed=3, **kw)
    r3 = train_mask(model, toy_batches(), seed=4, **kw)
    assert all(torch.equal(r1.logits[n], r2.logits[n]) for n in r1.logits)
    assert any(not torch.equal(r1.logits[n], r3.logits[n]) for n in r1.logits)


def test_save_load_roundtrip(tmp_path):
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.7, granularity="channel", steps=3, lr=0.2, progress=False)
    back = MaskResult.load(res.save(tmp_path / "mask.pt"))
    assert back.granularity == "channel" and back.keep_target == 0.7
    assert all(torch.equal(back.masks()[n], res.masks()[n]) for n in res.masks())
    assert back.history == res.history


# ----------------------------------------------------------------------------- sparsity


def test_no_layer_fully_pruned_even_with_huge_penalty():
    model = toy_model()
    res = train_mask(model, toy_batches(), steps=8, lr=1.0, sparsity_weight=1e6, progress=False)
    # the penalty won: every logit went negative, so logits >= 0 alone would prune every layer
    assert all(bool((lg < 0).all()) for lg in res.logits.values())
    keep = res.per_layer_keep()
    assert len(keep) == 4 and all(v > 0 for v in keep.values())
    assert all(int(m.sum()) >= 1 for m in res.masks().values())
    # same with an extreme target and with channel masks (one whole row per layer survives)
    tiny = train_mask(model, toy_batches(), steps=2, keep_fraction=1e-4, progress=False)
    assert all(v > 0 for v in tiny.per_layer_keep().values())
    ch = train_mask(model, toy_batches(), steps=8, lr=1.0, sparsity_weight=1e6, granularity="channel",
                    progress=False)
    for n, m in ch.masks().items():
        assert int(m.flatten(1).all(1).sum()) >= 1, n


@pytest.mark.parametrize("granularity", ["weight", "channel"])
def test_keep_fraction_target_reached(granularity):
    model = build_model("resnet_mini", image_size=16).eval()
    batches = toy_batches(n=32, batch=16)
    for target in (0.8, 0.3):
        res = train_mask(model, batches, keep_fraction=target, granularity=granularity, steps=2, lr=0.2,
                         progress=False)
        assert abs(res.keep_fraction() - target) <= 0.02, (target, res.keep_fraction())
        table = per_layer_keep_table(res)
        n_total = sum(n for _, _, n in table)
        assert math.isclose(sum(k * n for _, k, n in table) / n_total, res.keep_fraction(), rel_tol=1e-9)
        assert math.isclose(res.prune_f(), 1 - res.keep_fraction())
        head_keep = dict((name, k) for name, k, _ in table)["head"]
        assert math.isclose(res.prune_h(), 1 - head_keep)


def test_penalty_switches_off_at_target():
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.9, steps=12, lr=1.0, sparsity_weight=1.0,
                     progress=False)
    hist = res.history
    assert hist[0]["penalty_on"]  # keep starts at 1.0 > 0.9
    for prev, cur in zip(hist, hist[1:]):
        assert cur["penalty_on"] == (prev["train_keep"] > 0.9)
    assert any(not h["penalty_on"] for h in hist), "training reached the target within 12 steps"


def test_channel_granularity_masks_whole_rows():
    model = toy_model()
    res = train_mask(model, toy_batches(), keep_fraction=0.5, granularity="channel", steps=4, lr=0.3,
                     progress=False)
    some_pruned = False
    for n, m in res.masks().items():
        rows = m.flatten(1)
        assert bool((rows.all(1) | ~rows.any(1)).all()), f"{n}: a row is partly masked"
        some_pruned |= bool((~rows.any(1)).any())
        assert res.logits[n].shape == (m.shape[0],) + (1,) * (m.dim() - 1)
    assert some_pruned


# ----------------------------------------------------------------------------- objectives


def test_prusc_never_reads_group_labels():
    model = toy_model()
    kw = dict(objective="prusc", keep_fraction=0.7, steps=4, lr=0.2, seed=1, progress=False)
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


def test_gumbel_sigmoid_straight_through():
    logits = torch.tensor([-1.0, 0.0, 1.5], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    samples = gumbel_sigmoid(logits.expand(40000, 3), generator=gen)
    assert set(samples.detach().unique().tolist()) <= {0.0, 1.0}
    # logistic noise: P(keep) = sigmoid(logit)
    torch.testing.assert_close(samples.detach().mean(0), torch.sigmoid(logits.detach()), atol=0.01, rtol=0)
    samples.sum().backward()
    assert bool((logits.grad > 0).all()), "soft gradients flow through the hard sample"


# ----------------------------------------------------------------------------- group removal


def test_exclude_groups():
    g = torch.tensor([0, 1, 2, 3, 1, 0])
    assert exclude_groups(g, 1).tolist() == [0, 2, 3, 5]
    assert exclude_groups(np.array([0, 1, 2, 3]), [0, 3]).tolist() == [1, 2]
    with pytest.raises(ValueError, match="groups"):
        exclude_groups(g, "BwP")


class _GroupDataset(torch.utils.data.Dataset):
    """Items of the removed group carry NaN images: if training touched one, the logits would be NaN."""

    def __init__(self, n: int = 48, poison_group: int = 1):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 16, 16, generator=gen)
        self.y = torch.randint(0, 2, (n,), generator=gen)
        a = torch.randint(0, 2, (n,), generator=gen)
        self.g = 2 * self.y + a
        self.x[self.g == poison_group] = float("nan")

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "y": self.y[i], "g": self.g[i]}


def test_group_removal_uses_only_remaining_groups():
    model = toy_model()
    ds = _GroupDataset(poison_group=1)
    assert bool((ds.g == 1).any())
    res = train_group_removal_mask(model, ds, remove_group=1, steps=4, lr=0.2, batch_size=16, progress=False)
    assert all(bool(torch.isfinite(lg).all()) for lg in res.logits.values())
    assert all(math.isfinite(h["ce"]) for h in res.history)
    assert abs(res.keep_fraction() - 0.8) <= 0.02 and res.settings["removed_groups"] == "1"
    # the same through batches (rows of the group dropped per batch) and a loader factory
    batches = [{"image": ds.x[i : i + 16], "y": ds.y[i : i + 16], "g": ds.g[i : i + 16]} for i in range(0, 48, 16)]
    for source in (batches, lambda: iter(batches)):
        r = train_group_removal_mask(model, source, remove_group=[1], steps=4, lr=0.2, progress=False)
        assert all(bool(torch.isfinite(lg).all()) for lg in r.logits.values())
    # control: not removing the poisoned group does give NaN
    bad = train_group_removal_mask(model, ds, remove_group=3, steps=2, batch_size=48, progress=False)
    assert not all(bool(torch.isfinite(lg).all()) for lg in bad.logits.values())


# ----------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    model = toy_model()
    b = toy_batches()
    with pytest.raises(ValueError, match="objective"):
        train_mask(model, b, objective="dfr", progress=False)
    with pytest.raises(ValueError, match="keep_fraction"):
        train_mask(model, b, keep_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match="granularity"):
        train_mask(model, b, granularity="neuron", progress=False)
    with pytest.raises(ValueError, match="'y'"):
        train_mask(model, [{"image": torch.randn(2, 3, 16, 16)}], steps=1, progress=False)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    with pytest.raises(ValueError, match="f_enc"):
        train_mask(plain, b, objective="prusc", progress=False)
    # "ce" works on any module; the head is then the last masked layer
    r = train_mask(plain, b, steps=1, keep_fraction=0.5, progress=False)
    assert r.head_names == ("1.weight",)
    with pytest.raises(ValueError, match="does not fit"):
        r.apply(model)


def test_headless_mask_progress_does_not_write_a_line_per_step(monkeypatch, capsys):
    """Under papermill/CI (plain progress) the bar redraws at most every 10 s, postfix updates included."""
    from shortcut_nb.progress import PLAIN_ENV

    monkeypatch.setenv(PLAIN_ENV, "1")
    train_mask(toy_model(), toy_batches(), keep_fraction=0.8, steps=40, lr=0.1, progress=True)
    err = capsys.readouterr().err
    redraws = err.count("\r")
    assert "mask (ce)" in err and redraws <= 6, f"{redraws} redraws for 40 steps"


def test_magnitude_ordered_start_keeps_the_largest_weights_of_every_layer():
    """init_spread > 0: before any step, the top-k cut keeps each layer's largest weights (and the uniform start
    is the default)."""
    model = toy_model()
    uniform = WeightMask(model)
    assert all(torch.all(uniform.logit(n) == 2.0) for n in uniform.names)
    res = train_mask(model, toy_batches(), keep_fraction=0.5, steps=0, init_spread=1.0, progress=False)
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
