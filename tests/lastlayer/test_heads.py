"""The one head metric on features equals running the head, and refuses mismatched shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from support.entanglement_toys import spurious_head, toy_features

from shortcut_nb.lastlayer import head_metrics
from shortcut_nb.metrics import summarize


def test_head_metrics_equals_the_torch_head_scored_by_summarize():
    head, test = spurious_head(), toy_features(seed=2)
    W, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    out = head_metrics(W, b, test["z"], test["y"], test["g"], train_group_counts=[40, 10, 10, 40])
    pred = head(torch.from_numpy(test["z"])).argmax(1).numpy()
    ref = summarize(pred, test["y"], test["g"], train_group_counts=[40, 10, 10, 40])
    assert {k: out[k] for k in ref} == ref
    assert out["pred_class1"] == pytest.approx((pred == 1).mean())
    # tensors work as arrays do, and a missing bias is zero
    assert head_metrics(head.weight, head.bias, torch.from_numpy(test["z"]), test["y"], test["g"])["wga"] == out["wga"]
    assert head_metrics(W, None, test["z"], test["y"], test["g"])["wga"] == out["wga"]


def test_head_metrics_needs_matching_shapes():
    with pytest.raises(ValueError, match="weight"):
        head_metrics(np.zeros((2, 3)), np.zeros(2), np.zeros((4, 5)), np.zeros(4, int), np.zeros(4, int))
