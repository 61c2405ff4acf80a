"""DFR on a small validation set: a group missing, C not tunable -- noted, never fatal."""
from __future__ import annotations

import numpy as np
import pytest
from support.entanglement_toys import D, toy_features

from shortcut_nb.lastlayer import fit_dfr, fit_dfr_checked


def test_tuning_falls_back_to_a_fixed_C_when_a_half_misses_a_group(capsys):
    val = toy_features((30, 30, 30, 1), seed=1)  # group 3 has one sample: one tuning half always lacks it
    res, notes = fit_dfr_checked(val["z"], val["y"], val["g"], seed=0, n_refits=2, fallback_C=0.7)
    assert res.C == 0.7 and res.tuning_wga == {}
    assert len(notes) == 1 and notes[0].startswith("C not tuned") and "C=0.7" in notes[0]
    assert capsys.readouterr().out == ""  # the core prints nothing; the study shows the notes
    ref = fit_dfr(val["z"], val["y"], val["g"], seed=0, n_refits=2, C=0.7)
    np.testing.assert_array_equal(res.coef, ref.coef)


def test_a_group_missing_from_validation_is_balanced_over_the_groups_present():
    val = toy_features((30, 30, 30, 0), seed=1)
    res, notes = fit_dfr_checked(val["z"], val["y"], val["g"], seed=0, C=1.0, n_refits=2)
    assert "group(s) [3]" in notes[0]
    ref = fit_dfr(val["z"], val["y"], val["g"], seed=0, C=1.0, n_refits=2)  # groups 0..2 already contiguous
    np.testing.assert_allclose(res.coef, ref.coef)


def test_a_full_validation_set_is_plain_dfr():
    val = toy_features(seed=1)
    res, notes = fit_dfr_checked(val["z"], val["y"], val["g"], seed=0, c_grid=(1.0, 0.1), n_refits=2)
    ref = fit_dfr(val["z"], val["y"], val["g"], seed=0, c_grid=(1.0, 0.1), n_refits=2)
    assert notes == [] and res.C == ref.C and res.tuning_wga == ref.tuning_wga
    np.testing.assert_array_equal(res.coef, ref.coef)


def test_fallback_C_must_be_positive():
    with pytest.raises(ValueError, match="fallback_C"):
        fit_dfr_checked(np.zeros((8, D)), np.zeros(8, int), np.zeros(8, int), seed=0, fallback_C=0)
