"""The single-weight edit: our reading of Hakemi et al. ([9] in the paper, §5.2)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..metrics import group_accuracies
from ._inputs import _features_np, _labels_np, _n_groups

__all__ = ["WeightEdit", "single_weight_edit"]


@dataclass(frozen=True)
class WeightEdit:
    """One edited classifier weight: ``weight[class_index, neuron] *= scale``.

    Accuracies are on the set given to :func:`single_weight_edit`.
    """

    class_index: int
    neuron: int
    scale: float
    old_value: float
    new_value: float
    wga_before: float
    wga_after: float
    avg_before: float
    avg_after: float


def _preds_and_accs(logits: torch.Tensor, y: torch.Tensor, g: torch.Tensor, n_groups: int):
    preds = logits.argmax(dim=1)
    accs = group_accuracies(preds, y, g, n_groups=n_groups, require_all=True)
    return min(accs.values()), float((preds == y).double().mean())


@torch.no_grad()
def single_weight_edit(
    head: nn.Linear,
    features,
    y,
    g,
    *,
    scales: Sequence[float] = (0.0,),
    n_groups: int | None = None,
    min_gain: float = 0.0,
    chunk: int = 4096,
) -> tuple[nn.Linear, WeightEdit | None]:
    """Edit the one classifier weight that most helps the worst group (our reading of [9]).

    The paper (§5.2) summarises Hakemi et al. as "searching for a single weight
    of the classification layer that most activates for the minority group and
    editing only that weight". This is our simple, exhaustive version of that
    idea, not the authors' code: for every class k, penultimate neuron i and
    factor s in ``scales``, consider ``W[k, i] <- s * W[k, i]`` and measure the
    worst-group accuracy on the given labelled set (a validation set with
    groups). The edit with the highest worst-group accuracy wins (ties: higher
    plain accuracy, then the first in (class, neuron, scale) order). It is
    applied only if it raises worst-group accuracy by more than ``min_gain``;
    otherwise the head comes back unchanged with ``None``. Hence the edit never
    lowers worst-group accuracy on this set (it may on others).

    All candidates are scored at once from the base logits: changing ``W[k, i]``
    only adds ``(s - 1) W[k, i] z_i`` to logit k. The winner is re-checked with
    the edited head itself before it is returned.

    Args:
        head: classifier ``nn.Linear(d, K)``; left untouched.
        features: penultimate features, shape (N, d).
        y: classes, shape (N,).
        g: groups, shape (N,).
        scales: factors to try (0.0 = remove the weight).
        n_groups: number of groups (None: ``max(g) + 1``); all must be present.
        min_gain: required improvement in worst-group accuracy.
        chunk: neurons scored per step (bounds memory at N x chunk).

    Returns:
        ``(edited_head, edit)``; ``edit`` is None when no edit helps.
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    if len(scales) == 0:
        raise ValueError("scales must hold at least one factor")
    dev = head.weight.device
    x = torch.as_tensor(_features_np(features), device=dev)  # float64 for scoring
    n, d = x.shape
    if d != head.in_features:
        raise ValueError(f"features have d={d} but head.in_features={head.in_features}")
    yt = torch.as_tensor(_labels_np(y, "y", n), device=dev)
    gt = torch.as_tensor(_labels_np(g, "g", n), device=dev)
    n_groups = _n_groups(gt.cpu().numpy(), n_groups)
    k_classes = head.out_features
    if k_classes < 2:
        raise ValueError("head must have at least 2 outputs")
    if yt.max() >= k_classes:
        raise ValueError(f"y has class {int(yt.max())} but the head has {k_classes} outputs")

    # base predictions with the head in its own dtype: what the user's model does
    base_logits = head(x.to(head.weight.dtype))
    wga0, avg0 = _preds_and_accs(base_logits, yt, gt, n_groups)

    W = head.weight.double()
    logits = x @ W.T + head.bias.double()  # (N, K)
    group_onehot = torch.nn.functional.one_hot(gt, n_groups).double()  # (N, G)
    group_n = group_onehot.sum(0)  # (G,)
    if (group_n == 0).any():
        empty = torch.nonzero(group_n == 0).flatten().tolist()
        raise ValueError(f"group(s) {empty} have no samples in the edit set")

    cands = []  # (wga, avg, k, i, s)
    for k in range(k_classes):
        others = logits.clone()
        others[:, k] = -torch.inf
        other_max, other_arg = others.max(dim=1)  # first maximal index among j != k
        for s in scales:
            for start in range(0, d, chunk):
                sl = slice(start, min(start + chunk, d))
                new_k = logits[:, k : k + 1] + (float(s) - 1.0) * W[k, sl] * x[:, sl]  # (N, c)
                # argmax picks the first index on ties
                win_k = (new_k > other_max[:, None]) | (
                    (new_k == other_max[:, None]) & (k < other_arg)[:, None]
                )
                pred = torch.where(win_k, torch.full_like(win_k, k, dtype=torch.long), other_arg[:, None])
                correct = (pred == yt[:, None]).double()  # (N, c)
                gacc = (group_onehot.T @ correct) / group_n[:, None]  # (G, c)
                wga = gacc.min(dim=0).values.tolist()
                avg = correct.mean(dim=0).tolist()
                for j, i in enumerate(range(sl.start, sl.stop)):
                    cands.append((wga[j], avg[j], k, i, float(s)))
    order = sorted(range(len(cands)), key=lambda c: (-cands[c][0], -cands[c][1], c))
    for c in order[:20]:  # re-check the best few exactly; float ties can flip a prediction
        wga_c, _, k, i, s = cands[c]
        if wga_c <= wga0 + min_gain:
            break
        edited = copy.deepcopy(head)
        old = float(edited.weight[k, i])
        edited.weight[k, i] = edited.weight[k, i] * s
        wga1, avg1 = _preds_and_accs(edited(x.to(head.weight.dtype)), yt, gt, n_groups)
        if wga1 > wga0 + min_gain:
            return edited, WeightEdit(
                class_index=k, neuron=i, scale=s, old_value=old,
                new_value=float(edited.weight[k, i]), wga_before=wga0, wga_after=wga1,
                avg_before=avg0, avg_after=avg1,
            )
    return copy.deepcopy(head), None
