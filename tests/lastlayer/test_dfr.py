"""DFR (the authors' procedure) against an independent scikit-learn recomputation."""
from __future__ import annotations

import inspect
import itertools
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from support.lastlayer_sets import TEST, TRAIN, VAL, make_set, wga
from torch import nn

from shortcut_nb.lastlayer import DFR_C_GRID, fit_dfr, prune_h, refit_last_layer


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
    assert params["solver"].default is None  # liblinear (the authors') for two classes, saga beyond (see below)


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


def test_solver_is_the_authors_for_two_classes_and_saga_for_more():
    """liblinear fits no multinomial model: DFR on 3 classes runs with saga, and two classes keep liblinear."""
    rng = np.random.default_rng(0)
    for k, solver in ((2, "liblinear"), (3, "saga")):
        y = np.repeat(np.arange(k), 40)
        x = rng.normal(size=(len(y), 6)) + y[:, None]
        g = y * 2 + (np.arange(len(y)) % 2)
        result = fit_dfr(x, y, g, seed=0, C=1.0, n_refits=2)
        assert result.solver == solver
        assert result.coef.shape[0] == (1 if k == 2 else k)
