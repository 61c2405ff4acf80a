"""Table 4's group-balanced refit (against sklearn) and zeroing neurons."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from support.lastlayer_sets import TEST, TRAIN, VAL, wga
from torch import nn

from shortcut_nb.lastlayer import group_balanced_indices, refit_last_layer, zero_neurons


def test_refit_last_layer_matches_sklearn_and_masks():
    x, y, g = VAL
    idx = group_balanced_indices(g, rng=np.random.default_rng(7))  # the refit's first draw
    lin = refit_last_layer(x, y, g, seed=7, C=0.5)
    sc = StandardScaler().fit(x[idx])
    ref = LogisticRegression(C=0.5, max_iter=1000).fit(sc.transform(x[idx]), y[idx])
    xt = TEST[0]
    np.testing.assert_array_equal(
        lin(torch.as_tensor(xt, dtype=torch.float32)).argmax(1).numpy(), ref.predict(sc.transform(xt))
    )
    # a pruned model: neurons 1 (spurious) and 4, 5 off
    keep = np.ones(x.shape[1], dtype=bool)
    keep[[1, 4, 5]] = False
    lin_m = refit_last_layer(x, y, g, seed=7, C=0.5, neuron_mask=keep)
    assert torch.all(lin_m.weight[:, ~torch.from_numpy(keep)] == 0)
    assert torch.all(lin_m.weight[:, torch.from_numpy(keep)] != 0)
    sc_m = StandardScaler().fit(x[idx][:, keep])
    ref_m = LogisticRegression(C=0.5, max_iter=1000).fit(sc_m.transform(x[idx][:, keep]), y[idx])
    np.testing.assert_array_equal(
        lin_m(torch.as_tensor(xt, dtype=torch.float32)).argmax(1).numpy(),
        ref_m.predict(sc_m.transform(xt[:, keep])),
    )
    # the balanced refit helps the worst group over an unbalanced one on the 95 % set
    xtr, ytr, gtr = TRAIN
    bal = refit_last_layer(xtr, ytr, gtr, seed=0)
    unbal = refit_last_layer(xtr, ytr, gtr, seed=0, balanced=False)
    xt_t = torch.as_tensor(xt, dtype=torch.float32)
    assert wga(bal(xt_t).argmax(1), TEST[1], TEST[2]) > wga(unbal(xt_t).argmax(1), TEST[1], TEST[2])
    with pytest.raises(ValueError, match="neuron_mask"):
        refit_last_layer(x, y, g, seed=0, neuron_mask=np.zeros(x.shape[1], dtype=bool))


def test_zero_neurons_copies():
    head = nn.Linear(6, 2)
    before = head.weight.detach().clone()
    out = zero_neurons(head, [1, 4])
    assert torch.equal(head.weight, before)  # original untouched
    assert torch.all(out.weight[:, [1, 4]] == 0)
    assert torch.equal(out.weight[:, [0, 2, 3, 5]], before[:, [0, 2, 3, 5]])
    assert torch.equal(out.bias, head.bias)
    mask = torch.tensor([True, False, False, False, False, True])
    assert torch.all(zero_neurons(head, mask).weight[:, [0, 5]] == 0)
    with pytest.raises(ValueError, match="neurons"):
        zero_neurons(head, [6])
