"""Table 4 on cached features: the trained head, its pruned copy and the two group-balanced refits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb.bands import select_neurons
from shortcut_nb.lastlayer import head_metrics, head_predictions, refit_last_layer, zero_neurons
from shortcut_nb.lastlayer.table4 import ROWS, head_summary, prune_and_refit, refit_gain
from shortcut_nb.metrics import group_accuracy_interval, summarize, wga_change_interval
from support.cnn_neurons import features, tiny_model, tiny_samples


def test_head_summary_equals_running_the_model():
    model = tiny_model()
    images = tiny_samples().images
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    g = 2 * y + torch.tensor([0, 0, 1, 1, 1, 0])
    with torch.no_grad():
        z = model.f_enc(images)
        pred = model(images).argmax(1)
    feats = {"z": z.numpy(), "y": y.numpy(), "g": g.numpy()}
    got = head_summary(model.head, feats)
    ref = summarize(pred.numpy(), y.numpy(), g.numpy())
    assert got["groups"] == ref["groups"] and got["avg"] == ref["avg"] and got["wga"] == ref["wga"]
    assert got == {**head_metrics(model.head.weight, model.head.bias, z, y, g), "n_zeroed": 0,
                   "n_used": model.head.in_features}
    with pytest.raises(ValueError, match="must agree"):
        head_summary(model.head, {**feats, "z": z.numpy()[:, :5]})
    with pytest.raises(TypeError, match="nn.Linear"):
        head_summary(model, feats)


def test_prune_and_refit_builds_the_four_table4_heads():
    d = 16
    test, val = features(20, d, 1), features(15, d, 2)
    head = refit_last_layer(test["z"], test["y"], test["g"], seed=3, balanced=False)  # uses every neuron
    scores = np.linspace(0, 0.9, d)
    scores[4:8] = 0.95  # the attribute neurons are "spurious"
    memo: dict = {}
    t = prune_and_refit(head, scores, tau=0.7, test=test, val=val, seed=0, memo=memo)
    pruned = select_neurons(torch.from_numpy(scores), 0.7).numpy()
    assert sorted(t["pruned_neurons"]) == sorted(pruned.tolist()) and set(range(4, 8)) <= set(pruned.tolist())
    assert t["baseline"] == head_summary(head, test) and t["baseline"]["n_used"] == d
    assert t["pruned"]["n_zeroed"] == len(pruned) and t["pruned"]["n_used"] == d - len(pruned)
    assert t["pruned"]["groups"] == head_summary(zero_neurons(head, pruned), test)["groups"]
    keep = np.setdiff1d(np.arange(d), pruned)
    ref = refit_last_layer(val["z"], val["y"], val["g"], seed=0, neuron_mask=keep)
    assert t["refit_pruned"]["groups"] == head_summary(ref, test)["groups"]
    assert t["refit_pruned"]["n_used"] == len(keep)
    ref = refit_last_layer(val["z"], val["y"], val["g"], seed=0)
    assert t["refit"]["groups"] == head_summary(ref, test)["groups"]
    assert all(t[k]["wga"] <= t[k]["avg"] + 1e-12 for k in ROWS)
    # ΔWGA of pruning, with its paired bootstrap over the test images: around the point value, and as the metric's
    low, high = t["pruned_change"]
    assert low <= t["pruned"]["wga"] - t["baseline"]["wga"] <= high and low < high
    model_pred = lambda h: (torch.as_tensor(test["z"]) @ h.weight.T + h.bias).argmax(1).numpy()  # noqa: E731
    assert (head_predictions(head.weight, head.bias, test["z"]) == model_pred(head)).all()
    assert [low, high] == list(wga_change_interval(model_pred(head), model_pred(zero_neurons(head, pruned)),
                                                   test["y"], test["g"], n_groups=4, seed=0))
    # the refits' gain over pruning, min(WGA refit, WGA refit after pruning) − WGA pruned, bootstrapped on the same
    # test images: around the point value, and the metrics' bootstrap of the three heads' predictions
    low, high = t["refit_change"]
    assert low <= min(t["refit"]["wga"], t["refit_pruned"]["wga"]) - t["pruned"]["wga"] <= high and low < high
    heads = [zero_neurons(head, pruned), refit_last_layer(val["z"], val["y"], val["g"], seed=0),
             refit_last_layer(val["z"], val["y"], val["g"], seed=0, neuron_mask=keep)]
    assert [low, high] == list(group_accuracy_interval(refit_gain, ([model_pred(h) for h in heads], test["y"],
                                                                    test["g"]), n_groups=4, seed=0))
    # refits and both bootstraps are memoised by neuron set: a second call fits and resamples nothing new
    n_memo = len(memo)
    prune_and_refit(head, scores, tau=0.7, test=test, val=val, seed=0, memo=memo)
    assert len(memo) == n_memo
    # nothing above tau: the pruned head is the baseline; everything above: no refit possible, said why
    none = prune_and_refit(head, np.zeros(d), tau=0.7, test=test, val=val)
    assert none["pruned"]["groups"] == none["baseline"]["groups"] and none["pruned_neurons"] == []
    assert none["pruned_change"] is None and none["refit_change"] is not None  # the refits still gain
    every = prune_and_refit(head, np.ones(d), tau=0.7, test=test, val=val)
    assert every["refit_pruned"] is None and "nothing left" in every["errors"]["refit_pruned"]
    assert every["refit_change"] is None  # no refit after pruning: no gain to bootstrap
    # a validation set missing a group cannot be balanced over the four groups: the refit rows are None, said why
    keep_rows = val["g"] != 3
    short = {k: v[keep_rows] for k, v in val.items()}
    miss = prune_and_refit(head, scores, tau=0.7, test=test, val=short)
    assert miss["refit"] is None and "group" in miss["errors"]["refit"] and miss["refit_change"] is None
    with pytest.raises(ValueError, match="tau must be"):
        prune_and_refit(head, scores, tau=1.5, test=test, val=val)
    with pytest.raises(ValueError, match="scores must have shape"):
        prune_and_refit(head, scores[:3], tau=0.7, test=test, val=val)


def test_refit_gain_is_the_lower_refits_wga_minus_the_pruned_wga():
    """Per-group accuracies of (pruned, refit, refit_pruned) → min of the refits' worst groups − the pruned one's,
    over any leading axes; an absent group (nan) is not a worst group."""
    acc = np.array([[[0.9, 0.4, 0.8, np.nan], [0.7, 0.6, 0.9, np.nan], [0.8, 0.9, 0.5, np.nan]],
                    [[0.5, 0.5, 0.5, 0.5], [0.9, 0.9, 0.9, 0.9], [0.6, 0.7, 0.8, 0.9]]])
    assert refit_gain(acc) == pytest.approx([0.5 - 0.4, 0.6 - 0.5])
