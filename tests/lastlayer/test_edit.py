"""The single-weight edit finds the best single edit (brute force) and never lowers WGA."""
from __future__ import annotations

import itertools

import pytest
import torch
from support.lastlayer_sets import TRAIN, VAL, wga
from torch import nn

from shortcut_nb.lastlayer import refit_last_layer, single_weight_edit, zero_neurons


def _brute_force_best_wga(head, x, y, g, scales):
    best = -1.0
    xt = torch.as_tensor(x, dtype=torch.float32)
    for k, i, s in itertools.product(range(head.out_features), range(head.in_features), scales):
        h = zero_neurons(head, [])
        with torch.no_grad():
            h.weight[k, i] *= s
        best = max(best, wga(h(xt).argmax(1), y, g))
    return best


def test_single_weight_edit_never_lowers_wga():
    x, y, g = VAL
    scales = (0.0, 0.5, 2.0, -1.0)
    erm = refit_last_layer(*TRAIN, seed=0, balanced=False)
    heads = [erm]
    torch.manual_seed(0)
    for _ in range(3):
        heads.append(nn.Linear(x.shape[1], 2))
    xt = torch.as_tensor(x, dtype=torch.float32)
    n_edits = 0
    for head in heads:
        before = head.weight.detach().clone()
        w0 = wga(head(xt).argmax(1), y, g)
        edited, edit = single_weight_edit(head, x, y, g, scales=scales)
        assert torch.equal(head.weight, before)
        w1 = wga(edited(xt).argmax(1), y, g)
        assert w1 >= w0
        best = _brute_force_best_wga(head, x, y, g, scales)
        if edit is None:
            assert best <= w0 and torch.equal(edited.weight, before)
        else:
            n_edits += 1
            assert w1 > w0 and edit.wga_after == pytest.approx(w1) and edit.wga_before == pytest.approx(w0)
            assert w1 == pytest.approx(best)  # the search found the best single edit
            changed = (edited.weight != before).nonzero().tolist()
            assert changed == [[edit.class_index, edit.neuron]]
            assert edit.new_value == pytest.approx(edit.old_value * edit.scale)
    assert n_edits >= 1
    # a head that is already perfect is left alone
    perfect = nn.Linear(x.shape[1], 2)
    with torch.no_grad():
        perfect.weight.zero_()
        perfect.weight[1, 0], perfect.weight[0, 0] = 1.0, -1.0
        perfect.bias.zero_()
    sep = x.copy()
    sep[:, 0] = 5.0 * (2 * y - 1)
    _, edit = single_weight_edit(perfect, sep, y, g)
    assert edit is None
