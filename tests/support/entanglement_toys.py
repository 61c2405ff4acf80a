"""Toy features, heads and analysed runs for notebook 04's tests (no training, no images)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from shortcut_nb.sections.entanglement import study

D = 10
SCORES = np.array([0.1, 0.9] + [0.5] * (D - 2))


def toy_features(counts=(40, 40, 40, 40), *, seed=0) -> dict:
    """Neuron 0 carries the class (weakly), neuron 1 the spurious attribute (strongly), the rest is noise."""
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.full(c, k) for k, c in enumerate(counts)]).astype(np.int64)
    y, a = g // 2, g % 2
    z = rng.normal(size=(len(g), D))
    z[:, 0] = (2 * y - 1) * 1.5 + 0.5 * rng.normal(size=len(g))
    z[:, 1] = (2 * a - 1) * 2.0 + 0.3 * rng.normal(size=len(g))
    return {"z": z.astype(np.float32), "y": y, "g": g}


def spurious_head() -> nn.Linear:
    """A head that reads mostly the spurious neuron: right on majority groups, wrong on minority ones."""
    head = nn.Linear(D, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[1, 0], head.weight[1, 1] = 0.3, 2.0
    return head


def run_toy(**kw) -> dict:
    args = dict(head=spurious_head(), scores=SCORES, val=toy_features(seed=1), test=toy_features(seed=2), seed=0,
                n_refits=3, c_grid=(1.0, 0.1), band_draws=500, verbose=False)
    args.update(kw)
    return study.analyze_heads(**args)


def as_results(out: dict, *, dataset="waterbirds", arch="cnn", area=0.5) -> dict:
    run = dict(out, dataset=dataset, arch=arch, model="toy", seed=0,
               sscore=study.sscore_entry(SCORES, area, n=8, alpha=0.5))
    return study.collect_results([run])
