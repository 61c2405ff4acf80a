"""DFR and last-layer tools against an independent scikit-learn recomputation."""
from __future__ import annotations

import inspect
import itertools
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from shortcut_nb.lastlayer.dfr import (
    DFR_C_GRID,
    fit_dfr,
    group_balanced_indices,
    make_logistic_regression,
    mean_used_sscore,
    prune_h,
    refit_last_layer,
    single_weight_edit,
    used_neurons,
    zero_neurons,
)
from shortcut_nb.metrics import group_accuracies



def make_set(counts, *, d=12, seed=0):
    """Groups g = 2y + a with the given sizes; feature 0 is core (noisy), 1 spurious (clean)."""
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    y, a = g // 2, g % 2
    x = rng.normal(size=(len(g), d))
    x[:, 0] += 1.5 * (2 * y - 1)
    x[:, 1] = 2.0 * (2 * a - 1) + 0.5 * rng.normal(size=len(g))
    return x, y, g


TRAIN = make_set([190, 10, 10, 190], seed=1)  # 95 % spurious correlation
VAL = make_set([120, 30, 30, 120], seed=2)  # 80 %
TEST = make_set([100, 100, 100, 100], seed=3)  # balanced


def wga(preds, y, g) -> float:
    return min(group_accuracies(preds, y, g).values())


def sk_l1(C, random_state):
    """LogisticRegression with L1, written directly for the installed sklearn."""
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", random_state=random_state, max_iter=1000)
    return LogisticRegression(C=C, penalty="l1", solver="liblinear", random_state=random_state, max_iter=1000)


@pytest.fixture(scope="module")
def dfr_val():
    x, y, g = VAL
    return fit_dfr(x, y, g, seed=0)


def test_defaults_are_the_published_ones():
    assert DFR_C_GRID == (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
    params = inspect.signature(fit_dfr).parameters
    assert params["c_grid"].default == DFR_C_GRID
    assert params["n_refits"].default == 20
    assert params["solver"].default == "liblinear"


def test_tuning_split_and_balanced_subsample(dfr_val):
    x, y, g = VAL
    n = len(x)
    r = dfr_val
    ev, fit = r.tune_eval_idx, r.tune_fit_idx
    assert len(ev) == n // 2 and len(np.unique(ev)) == len(ev)
    assert not np.array_equal(ev, np.arange(n // 2))  # a random split, not the first rows
    fit_half = np.setdiff1d(np.arange(n), ev)
    assert len(fit_half) == n - n // 2
    # tuning fits only see a group-balanced subsample of the other half
    assert np.isin(fit, fit_half).all() and len(np.unique(fit)) == len(fit)
    min_g = np.bincount(g[fit_half], minlength=4).min()
    assert np.bincount(g[fit], minlength=4).tolist() == [min_g] * 4


def test_tuning_table_recomputed_with_sklearn(dfr_val):
    x, y, g = VAL
    r = dfr_val
    assert list(r.tuning_wga) == list(DFR_C_GRID)  # grid order kept
    fit, ev = r.tune_fit_idx, r.tune_eval_idx
    sc = StandardScaler().fit(x[fit])
    for c in DFR_C_GRID:
        clf = sk_l1(c, r.random_state).fit(sc.transform(x[fit]), y[fit])
        assert r.tuning_wga[c] == pytest.approx(wga(clf.predict(sc.transform(x[ev])), y[ev], g[ev]))
    best = max(r.tuning_wga.values())
    assert r.C == next(c for c in DFR_C_GRID if r.tuning_wga[c] == best)  # first maximum wins


def test_tie_break_goes_to_first_c_in_grid():
    # separable with a wide margin: every C reaches WGA 1, so the grid order decides
    x, y, g = make_set([60, 60, 60, 60], seed=5)
    x[:, 0] = 10.0 * (2 * y - 1) + 0.1 * x[:, 0]
    grid = (0.5, 1.0, 2.0)
    r = fit_dfr(x, y, g, seed=0, c_grid=grid, n_refits=2)
    assert set(r.tuning_wga.values()) == {1.0}
    assert r.C == 0.5
    r2 = fit_dfr(x, y, g, seed=0, c_grid=grid[::-1], n_refits=2)
    assert r2.C == 2.0


def test_final_model_is_mean_of_independent_refits(dfr_val):
    x, y, g = VAL
    r = dfr_val
    assert len(r.refit_idx) == 20
    min_g = np.bincount(g, minlength=4).min()
    for idx in r.refit_idx:
        assert np.bincount(g[idx], minlength=4).tolist() == [min_g] * 4
        assert len(np.unique(idx)) == len(idx)
    assert len({tuple(np.sort(i)) for i in r.refit_idx}) == 20  # fresh subsample each time
    sc = StandardScaler().fit(x)  # whole validation set
    np.testing.assert_allclose(r.scaler_mean, sc.mean_)
    np.testing.assert_allclose(r.scaler_scale, sc.scale_)
    coefs, icpts = [], []
    for idx in r.refit_idx:
        clf = sk_l1(r.C, r.random_state).fit(sc.transform(x[idx]), y[idx])
        coefs.append(clf.coef_)
        icpts.append(clf.intercept_)
    np.testing.assert_allclose(r.coef, np.mean(coefs, axis=0), atol=1e-10)
    np.testing.assert_allclose(r.intercept, np.mean(icpts, axis=0), atol=1e-10)
    assert r.coef.shape == (1, x.shape[1]) and r.intercept.shape == (1,)


def test_no_warnings_and_reproducible():
    x, y, g = VAL
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = fit_dfr(x, y, g, seed=3, n_refits=3)
        b = fit_dfr(x, y, g, seed=3, n_refits=3)
        c = fit_dfr(x, y, g, seed=4, n_refits=3)
        for pen in ("l1", "l2", "none"):
            refit_last_layer(x, y, g, seed=0, penalty=pen)
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.tune_eval_idx, b.tune_eval_idx)
    assert a.tuning_wga == b.tuning_wga
    assert not np.array_equal(a.tune_eval_idx, c.tune_eval_idx)
    assert not np.allclose(a.coef, c.coef)


def test_penalty_spelling_follows_sklearn_signature():
    class OldLR:  # sklearn < 1.8 signature
        def __init__(self, penalty="l2", *, C=1.0, l1_ratio=None, solver="lbfgs", random_state=None, max_iter=100):
            self.kw = dict(penalty=penalty, C=C, l1_ratio=l1_ratio, solver=solver)

    class NewLR:  # sklearn >= 1.8
        def __init__(self, penalty="deprecated", *, C=1.0, l1_ratio=0.0, solver="lbfgs", random_state=None, max_iter=100):
            self.kw = dict(penalty=penalty, C=C, l1_ratio=l1_ratio, solver=solver)

    old = make_logistic_regression(C=0.3, penalty="l1", estimator_cls=OldLR).kw
    assert old == dict(penalty="l1", C=0.3, l1_ratio=None, solver="liblinear")
    assert make_logistic_regression(C=1.0, penalty="none", estimator_cls=OldLR).kw["penalty"] is None
    new = make_logistic_regression(C=0.3, penalty="l1", estimator_cls=NewLR).kw
    assert new == dict(penalty="deprecated", C=0.3, l1_ratio=1.0, solver="liblinear")
    none = make_logistic_regression(C=1.0, penalty="none", estimator_cls=NewLR).kw
    assert none["C"] == np.inf and none["l1_ratio"] == 0.0
    with pytest.raises(ValueError, match="penalty"):
        make_logistic_regression(C=1.0, penalty="l3")  # type: ignore[arg-type]


def test_dfr_raises_wga_over_erm(dfr_val):
    xt, yt, gt = TEST
    erm_train = LogisticRegression().fit(TRAIN[0], TRAIN[1])
    erm_val = LogisticRegression().fit(VAL[0], VAL[1])  # same data DFR sees, unbalanced
    w_dfr = wga(dfr_val.predict(xt), yt, gt)
    w_train = wga(erm_train.predict(xt), yt, gt)
    w_val = wga(erm_val.predict(xt), yt, gt)
    assert w_dfr > w_train + 0.15, (w_dfr, w_train)
    assert w_dfr > w_val + 0.04, (w_dfr, w_val)
    # DFR leans on the core feature, not the spurious one
    assert abs(dfr_val.coef[0, 0]) > 5 * abs(dfr_val.coef[0, 1])


def test_folded_linear_matches_scaler_plus_sklearn(dfr_val):
    r = dfr_val
    x = np.concatenate([VAL[0], TEST[0]])
    ref = LogisticRegression().fit(np.eye(2, x.shape[1]), [0, 1])  # set up, then overwrite
    ref.coef_, ref.intercept_ = r.coef.copy(), r.intercept.copy()
    sc = StandardScaler().fit(VAL[0])
    ref_pred = ref.predict(sc.transform(x))
    np.testing.assert_array_equal(r.predict(x), ref_pred)
    for mode, dtype in itertools.product(("half", "zero"), (torch.float32, torch.float64)):
        lin = r.to_linear(binary_logits=mode, dtype=dtype)
        assert isinstance(lin, nn.Linear) and lin.out_features == 2
        out = lin(torch.as_tensor(x, dtype=dtype))
        np.testing.assert_array_equal(out.argmax(1).numpy(), ref_pred)
    # "half" logits reproduce the logistic probability too
    p = torch.softmax(r.to_linear(dtype=torch.float64)(torch.as_tensor(x)), 1)[:, 1].detach().numpy()
    np.testing.assert_allclose(p, ref.predict_proba(sc.transform(x))[:, 1], atol=1e-10)
    # folding keeps zeros: Prune_h of the raw head equals that of the averaged coefficients
    assert prune_h(r.to_linear()) == pytest.approx(r.prune_h())
    # the average is zero only where every refit is: never sparser than the refits
    per_refit = [prune_h(c) for c in r.refit_coefs]
    assert r.prune_h(of="refits") == pytest.approx(np.mean(per_refit))
    assert r.prune_h() <= min(per_refit)


def test_prune_h_hand_matrix():
    w = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]])
    assert prune_h(w) == pytest.approx(5 / 8)
    assert prune_h(w, mode="neurons") == pytest.approx(1 / 4)
    assert prune_h(torch.tensor(w)) == pytest.approx(5 / 8)
    w2 = np.array([[1e-4, 1.0, -1e-5, 2.0]])
    assert prune_h(w2) == 0.0
    assert prune_h(w2, tol=1e-3) == pytest.approx(0.5)
    np.testing.assert_array_equal(used_neurons(w), [False, True, True, True])
    assert mean_used_sscore(w, [0.9, 0.1, 0.2, 0.3]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="s_scores"):
        mean_used_sscore(w, [0.1, 0.2])
    with pytest.raises(ValueError, match="mode"):
        prune_h(w, mode="rows")  # type: ignore[arg-type]


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


def test_bad_inputs():
    x, y, g = VAL
    with pytest.raises(ValueError, match="c_grid"):
        fit_dfr(x, y, g, seed=0, c_grid=())
    with pytest.raises(ValueError, match="c_grid"):
        fit_dfr(x, y, g, seed=0, c_grid=(1.0, -0.1))
    with pytest.raises(ValueError, match="n_refits"):
        fit_dfr(x, y, g, seed=0, n_refits=0)
    with pytest.raises(ValueError, match="y must have shape"):
        fit_dfr(x, y[:-1], g, seed=0)
    with pytest.raises(ValueError, match=r"group\(s\) \[1\]"):
        fit_dfr(x[g != 1], y[g != 1], g[g != 1], seed=0, n_groups=4)
    with pytest.raises(TypeError, match="seed"):
        fit_dfr(x, y, g, seed=0.5)  # type: ignore[arg-type]
    r = fit_dfr(x, y, g, seed=0, C=0.3, n_refits=2)  # fixed C skips tuning
    assert r.C == 0.3 and r.tuning_wga == {} and len(r.refit_idx) == 2
