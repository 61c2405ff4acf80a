"""Notebook 01's study: train (or load) each run through the :class:`Context` and summarise its test predictions.

Table 2: per model and dataset, each seed's per-group test accuracy, AVG, WGA and GAP
(:func:`shortcut_nb.metrics.summarize`), aggregated over seeds (:func:`shortcut_nb.metrics.aggregate_seeds`).
Table 3: the Waterbirds-like set with the minority ratio varied and the training-set size fixed. The sweep
changes how the synthetic benchmark is generated, so it always runs on the synthetic set (a real folder has
one fixed ratio). Each seed's point also records bootstrap intervals over its test images of the sweep's three
criteria (:func:`sweep_intervals`), the interval a one-seed run is decided on.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...metrics import aggregate_seeds, group_accuracy_interval, summarize, wga_interval
from ...models import model_kind
from ...pipeline.context import Context
from ...pipeline.runs import RunSpec
from ...vocab import GROUP_NAMES, Arch, DatasetName
from .record import MAJORITY_GROUPS, MINORITY_GROUPS

__all__ = ["GroupResult", "SweepPoint", "flatten_aggregate", "run_and_summarize", "group_performance",
           "minority_sweep", "sweep_intervals", "table2_models", "row_key", "planned_runs"]

#: The minority ratio of the Table 2 runs (the paper's Waterbirds: 5 %).
DEFAULT_MINORITY_RATIO = 0.05


def flatten_aggregate(agg: Mapping[str, Any]) -> dict[str, Any]:
    """``aggregate_seeds`` output as flat keys: ``avg``, ``avg_std``, ``wga``, ``wga_std``, ``gap``, ``groups``..."""
    flat = {"n_seeds": agg["n_seeds"], "groups": agg["groups"]["mean"], "groups_std": agg["groups"]["std"]}
    for key in ("avg", "wga", "gap", "avg_weighted"):
        if agg.get(key) is None:
            flat[key], flat[f"{key}_std"] = None, None
        else:
            flat[key], flat[f"{key}_std"] = agg[key]["mean"], agg[key]["std"]
    return flat


@dataclass(frozen=True)
class GroupResult:
    """One model on one dataset over seeds: a row of Table 2.

    Attributes:
        dataset, arch, model: what was trained (``model`` is the profile's model name).
        aggregate: :func:`flatten_aggregate` of the seeds (``avg``, ``avg_std``, ``wga``, ..., ``groups`` (4,)).
        per_seed: each seed's :func:`run_and_summarize` dict.
    """

    dataset: DatasetName
    arch: Arch
    model: str
    aggregate: Mapping[str, Any]
    per_seed: tuple[Mapping[str, Any], ...]
    group_names: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        """An aggregate number by name (``r["avg"]``, ``r["groups"]``)."""
        return self.aggregate[key]

    @property
    def names(self) -> tuple[str, ...]:
        """The groups' names: the data's own, else the paper's for its datasets, else ``G0``, ``G1``, ..."""
        n = len(self.aggregate["groups"])
        return self.group_names or GROUP_NAMES.get(self.dataset, tuple(f"G{k}" for k in range(n)))

    @property
    def worst_group(self) -> str:
        """The name of the group with the lowest mean accuracy (the first lowest)."""
        groups = self.aggregate["groups"]
        return self.names[min(range(len(groups)), key=groups.__getitem__)]


@dataclass(frozen=True)
class SweepPoint:
    """The Waterbirds-like runs at one minority ratio over seeds: a row of Table 3."""

    ratio: float
    aggregate: Mapping[str, Any]
    per_seed: tuple[Mapping[str, Any], ...]

    def __getitem__(self, key: str) -> Any:
        return self.aggregate[key]


def table2_models(ctx: Context, models: Sequence[str] | None = None) -> tuple[str, ...]:
    """Table 2's models: ``models``, or the profile's list (cpu: its CNN and ViT; paper: the paper's five)."""
    chosen = tuple(models) if models else ctx.settings.table2_models or (ctx.settings.cnn, ctx.settings.vit)
    if not chosen:
        raise ValueError("models must name at least one model")
    return chosen


def row_key(ctx: Context, dataset: str, model: str) -> str:
    """``"<dataset>/cnn"`` / ``"<dataset>/vit"`` for the profile's own CNN and ViT (the models every other notebook
    analyses), ``"<dataset>/<model name>"`` for any other."""
    own = {ctx.settings.cnn: "cnn", ctx.settings.vit: "vit"}
    return f"{dataset}/{own.get(model, model)}"


def _spec(ctx: Context, dataset: DatasetName, model: str, seed: int, minority_ratio: float,
          **overrides: Any) -> RunSpec:
    return ctx.run_spec(dataset, model=model, arch=model_kind(model), seed=seed, minority_ratio=minority_ratio,
                        **overrides)


def _evaluated_run(ctx: Context, dataset: DatasetName, *, model: str, seed: int, minority_ratio: float,
                   **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run_and_summarize`'s summary and the run's test predictions (``pred``, ``y``, ``g`` (N,), and
    ``n_groups``)."""
    spec = _spec(ctx, dataset, model, seed, minority_ratio, **overrides)
    trained, info = ctx.train_or_load(spec)
    test = ctx.split(spec, "test")
    out = ctx.evaluate(trained, spec, "test")
    summary = summarize(out["pred"], out["y"], out["g"], train_group_counts=info["train_group_counts"],
                        n_groups=test.n_groups)
    summary.update({"model": spec.model, "seed": seed, "train_seconds": info["seconds"],
                    "group_names": list(test.groups.names),
                    "wga_interval": list(wga_interval(out["pred"], out["y"], out["g"], n_groups=test.n_groups,
                                                      seed=seed)),
                    "train_acc": info["history"][-1]["train_acc"] if info["history"] else None})
    return summary, {"pred": out["pred"], "y": out["y"], "g": out["g"], "n_groups": test.n_groups}


def run_and_summarize(ctx: Context, dataset: DatasetName, *, model: str, seed: int = 0,
                      minority_ratio: float = DEFAULT_MINORITY_RATIO, **overrides: Any) -> dict[str, Any]:
    """Train (or load) one run and summarise its test predictions (per-group accuracy, AVG, WGA, GAP).

    ``overrides`` go to :meth:`Context.run_spec` (e.g. ``folder=None`` for the synthetic benchmark).
    """
    return _evaluated_run(ctx, dataset, model=model, seed=seed, minority_ratio=minority_ratio, **overrides)[0]


def group_performance(ctx: Context, *, datasets: Sequence[DatasetName], seeds: Sequence[int],
                      models: Sequence[str] | None = None,
                      minority_ratio: float = DEFAULT_MINORITY_RATIO) -> dict[str, GroupResult]:
    """Paper Table 2: per model and dataset, mean ± std over seeds of AVG, WGA, GAP and group accuracies.

    A dataset with a folder in ``ctx.folders`` runs on that folder instead of the synthetic benchmark.

    Returns:
        ``{row_key: GroupResult}`` in the order datasets × models (:func:`row_key`).
    """
    results = {}
    for dataset in datasets:
        for model in table2_models(ctx, models):
            per_seed = [run_and_summarize(ctx, dataset, model=model, seed=s, minority_ratio=minority_ratio)
                        for s in seeds]
            results[row_key(ctx, dataset, model)] = GroupResult(
                dataset=dataset, arch=model_kind(model), model=model,
                aggregate=flatten_aggregate(aggregate_seeds(per_seed)), per_seed=tuple(per_seed),
                group_names=tuple(per_seed[0]["group_names"]))
    return results


def minority_sweep(ctx: Context, *, ratios: Sequence[float], seeds: Sequence[int],
                   arch: Arch = "cnn") -> dict[str, SweepPoint]:
    """Paper Table 3: Waterbirds-like set (always synthetic), minority ratio varied with the training-set size fixed.

    Returns:
        ``{"<ratio>": SweepPoint}`` (keys ``f"{ratio:g}"``), in the order of ``ratios``; each seed's summary
        carries that seed's :func:`sweep_intervals` at its ratio.
    """
    runs = {(ratio, s): _evaluated_run(ctx, "waterbirds", model=_arch_model(ctx, arch), seed=s, minority_ratio=ratio,
                                       folder=None) for ratio in ratios for s in seeds}
    intervals = {s: sweep_intervals({ratio: runs[ratio, s][1] for ratio in ratios}, seed=s) for s in seeds}
    results = {}
    for ratio in ratios:
        per_seed = [{**runs[ratio, s][0], **intervals[s][ratio]} for s in seeds]
        results[f"{ratio:g}"] = SweepPoint(ratio=ratio, aggregate=flatten_aggregate(aggregate_seeds(per_seed)),
                                           per_seed=tuple(per_seed))
    return results


def _minority(accuracies: np.ndarray) -> np.ndarray:
    """(..., n_groups) → (...): the mean accuracy of the minority groups."""
    return accuracies[..., list(MINORITY_GROUPS)].mean(-1)


def _majority(accuracies: np.ndarray) -> np.ndarray:
    """(..., n_groups) → (...): the weaker majority group's accuracy."""
    return accuracies[..., list(MAJORITY_GROUPS)].min(-1)


def sweep_intervals(tests: Mapping[float, Mapping[str, Any]], *, seed: int) -> dict[float, dict[str, Any]]:
    """One seed's 95 % bootstrap intervals over test images of the sweep's criteria
    (:func:`~shortcut_nb.metrics.group_accuracy_interval`, within-group resamples seeded with ``seed``).

    Each ratio's model is scored on its own test set (the generator draws a ratio's test images after its training
    images, so the ratios' test images differ): the fall between two ratios resamples the two test sets
    independently, not in pairs.

    Args:
        tests: ``{ratio: {"pred", "y", "g" (N,), "n_groups"}}``, one trained model's test predictions per ratio.
        seed: the resampling seed.

    Returns:
        ``{ratio: {"minority_interval": [low, high], "majority_interval": [low, high], "minority_fall_interval":
        {"<next higher ratio>": [low, high]}}}``: the minority accuracy (mean of the minority groups), the weaker
        majority group's accuracy, and the minority accuracy's fall from the next higher ratio (that ratio's minus
        this one's; ``{}`` at the highest ratio).
    """
    def interval(statistic, *ratios: float) -> list[float]:
        t = [([tests[r]["pred"]], tests[r]["y"], tests[r]["g"]) for r in ratios]
        return list(group_accuracy_interval(statistic, *t, n_groups=tests[ratios[0]]["n_groups"], seed=seed))

    out = {r: {"minority_interval": interval(lambda a: _minority(a[:, 0]), r),
               "majority_interval": interval(lambda a: _majority(a[:, 0]), r),
               "minority_fall_interval": {}} for r in tests}
    order = sorted(tests, reverse=True)
    for higher, lower in zip(order, order[1:]):
        out[lower]["minority_fall_interval"] = {
            f"{higher:g}": interval(lambda a: _minority(a[:, 0]) - _minority(a[:, 1]), higher, lower)}
    return out


def _arch_model(ctx: Context, arch: Arch) -> str:
    return ctx.settings.cnn if arch == "cnn" else ctx.settings.vit


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[RunSpec]:
    """What notebook 01 trains with these parameters (its ``parameters`` cell): for ``sweep plan``."""
    seeds = tuple(parameters.get("SEEDS") or ctx.settings.seeds)
    ratios = ctx.minority_ratios(parameters.get("MINORITY_RATIOS"))
    table2 = [_spec(ctx, ds, model, s, DEFAULT_MINORITY_RATIO) for ds in ctx.datasets(parameters.get("DATASETS"))
              for model in table2_models(ctx, parameters.get("MODELS")) for s in seeds]
    sweep = [_spec(ctx, "waterbirds", ctx.settings.cnn, s, r, folder=None) for r in ratios for s in seeds]
    return table2 + sweep
