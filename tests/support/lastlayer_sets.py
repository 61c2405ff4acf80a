"""Small labelled feature sets for the last-layer tests: feature 0 carries the class (noisy), 1 the attribute."""
from __future__ import annotations

import numpy as np

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
