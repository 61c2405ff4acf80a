"""Prune_h, the neurons a head uses and their mean s-score, on hand-made matrices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb.lastlayer import mean_used_sscore, prune_h, used_neurons


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
