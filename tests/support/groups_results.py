"""Hand-made results of notebook 01's study (no training), for its record, view and claim tests."""
from __future__ import annotations

from shortcut_nb.sections.groups.study import GroupResult, SweepPoint


def aggregate(groups, *, avg=None, std=0.0) -> dict:
    """A :func:`~shortcut_nb.sections.groups.study.flatten_aggregate`-shaped dict with the given group accuracies."""
    avg = sum(groups) / len(groups) if avg is None else avg
    wga = min(groups)
    return {"n_seeds": 1, "groups": list(groups), "groups_std": [std] * len(groups), "avg": avg, "avg_std": std,
            "wga": wga, "wga_std": std, "gap": avg - wga, "gap_std": std, "avg_weighted": avg, "avg_weighted_std": std}


def group_result(dataset: str, arch: str, groups, *, avg=None) -> GroupResult:
    agg = aggregate(groups, avg=avg)
    run = {**{k: agg[k] for k in ("groups", "avg", "wga", "gap", "avg_weighted")}, "n": 16,
           "model": f"{arch}_mini", "seed": 0, "train_seconds": 1.0, "train_acc": 0.9}
    return GroupResult(dataset=dataset, arch=arch, model=f"{arch}_mini", aggregate=agg, per_seed=(run,))


def table2() -> dict[str, GroupResult]:
    return {"isic/cnn": group_result("isic", "cnn", [0.95, 0.99, 0.6, 0.4], avg=0.85),
            "waterbirds/cnn": group_result("waterbirds", "cnn", [0.98, 0.6, 0.5, 0.97], avg=0.83)}


def sweep() -> dict[str, SweepPoint]:
    groups = {0.5: [0.97, 0.96, 0.9, 0.92], 0.05: [0.99, 0.7, 0.5, 0.95], 0.0: [0.99, 0.3, 0.2, 0.96]}
    return {f"{r:g}": SweepPoint(ratio=r, aggregate=aggregate(g), per_seed=()) for r, g in groups.items()}
