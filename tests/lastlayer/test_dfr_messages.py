"""fit_dfr's error for a missing group says which group is empty, in which input, and what to do.

It used to advise ``require_all=False`` (an argument of ``metrics.group_accuracies`` that fit_dfr does not
take) when a random tuning half missed a group.
"""
from __future__ import annotations

import pytest
from support.lastlayer_sets import make_set

from shortcut_nb.lastlayer import fit_dfr, fit_dfr_checked
from shortcut_nb.lastlayer.dfr import MissingGroupError


def test_a_group_missing_from_a_tuning_half_is_named_with_the_half_and_the_remedy():
    x, y, g = make_set([40, 20, 20, 1], seed=2)  # group 3 has one sample: one of the two halves lacks it
    halves = set()
    for seed in range(6):
        with pytest.raises(MissingGroupError) as err:
            fit_dfr(x, y, g, seed=seed, n_refits=1)
        msg = str(err.value)
        assert "require_all" not in msg  # not an argument of fit_dfr
        assert msg.startswith("group(s) [3] have no samples in the ")
        assert "[40, 20, 20, 1]" in msg  # the whole set's group sizes
        assert "every group must be present in both" in msg and "Pass C= to skip tuning" in msg
        assert "fit_dfr_checked" in msg
        assert err.value.groups == [3] and err.value.sizes[3] == 0
        halves.add(err.value.where)
    assert halves == {"tuning-fit half", "selection half"}  # both halves' messages are checked
    r = fit_dfr(x, y, g, seed=0, C=1.0, n_refits=2)  # the remedy works: a fixed C needs no halves
    assert r.C == 1.0


def test_a_group_missing_from_g_says_dfr_needs_every_group():
    x, y, g = make_set([40, 0, 20, 20], seed=2)  # group 1 empty, groups 0, 2, 3 present
    with pytest.raises(ValueError, match=r"group\(s\) \[1\] have no samples in g") as err:
        fit_dfr(x, y, g, seed=0, n_groups=4)
    msg = str(err.value)
    assert "group sizes [40, 0, 20, 20]" in msg
    assert "DFR balances every group" in msg and "needs every group present in the data it balances" in msg
    assert "renumbering g over the groups present" in msg and "n_groups=" not in msg.split("n_groups=4")[1]
    assert "require_all" not in msg
    # the same error with C given (no tuning): the final refits balance the whole set
    with pytest.raises(MissingGroupError, match=r"group\(s\) \[1\]"):
        fit_dfr(x, y, g, seed=0, C=1.0)


def test_an_empty_last_group_suggests_n_groups():
    x, y, g = make_set([40, 20, 20], seed=2)
    with pytest.raises(MissingGroupError, match=r"group\(s\) \[3\].*pass n_groups=3 if the data has only 3 groups"):
        fit_dfr(x, y, g, seed=0, n_groups=4)
    assert fit_dfr(x, y, g, seed=0, n_groups=3, C=1.0, n_refits=1).coef.shape == (1, x.shape[1])


def test_fit_dfr_checked_notes_the_half_in_its_own_words():
    x, y, g = make_set([40, 20, 20, 1], seed=2)
    _, notes = fit_dfr_checked(x, y, g, seed=2, n_refits=1, fallback_C=0.7)
    assert notes == ["C not tuned (group(s) [3] have no samples in the selection half, group sizes there "
                     "[20, 11, 9, 0]: tuning needs every group in both random halves); used the fixed C=0.7 instead"]
