"""The logistic regression factory spells the penalty the way the installed sklearn wants."""
from __future__ import annotations

import numpy as np
import pytest

from shortcut_nb.lastlayer import make_logistic_regression


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
