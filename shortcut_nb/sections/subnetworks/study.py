"""Paper §5.3: subnetworks of a frozen model — PruSC-style pruning (Fig. 6) and group removal (Fig. 7).

Two experiments on the CNN, both learning a binary mask over the *frozen* weights
with :mod:`shortcut_nb.masks` (cached mask runs: :mod:`shortcut_nb.pipeline.mask_runs`):

* **Task-oriented pruning (Fig. 6).** After PruSC (Le et al. 2024, paper ref. [13]):
  cross-entropy + sparsity + a supervised contrastive term on the penultimate
  features, no group labels. PruSC builds a class-balanced de-biasing set from
  held-out data; we train the mask on the **validation split**, reading only the
  images and class labels (the loader strips ``a`` and ``g``). The synthetic
  validation split is group-balanced by construction (as in DFR's protocol), so the
  mask *sees* minority images without being told which they are. We report WGA,
  Prune_h (head weights pruned), Prune_f (all conv/linear weights pruned) and the
  mean neuron s-score before and after.
* **Group-specific components (Fig. 7).** After Csordás et al. 2021 (paper ref. [5]):
  a mask keeping 80 % of the weights is trained with cross-entropy on the training
  set without one group (ISIC-like: D \\ {BwoP}, D \\ {BwP}); per-group test
  accuracy of each subnetwork against the full model.

The studies return typed results; :mod:`.record` turns them into the recorded JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from ...masks import MaskResult, magnitude_overlap, undecided_share
from ...metrics import summarize, wga_change_interval
from ...pipeline.context import Context
from ...pipeline.mask_runs import MaskRecipe, MaskRun, ProfileRecipes, profile_recipes, train_or_load_mask
from ...pipeline.runs import RunSpec
from ...sscore import score_neurons, summarize_scores
from ...sscore.uncertainty import LEVEL, bootstrap_interval, bootstrap_means
from ...vocab import Arch, DatasetName
from .record import CLAIM_DATASET, PAPER_KEEP

#: The s-score draw of notebook 03 (Fig. 5's baseline): the same training images score every model.
SAMPLE_SEED = 0


def mask_recipes(ctx: Context, *, steps: int | None = None, keep_grid: Sequence[float] | None = None) -> ProfileRecipes:
    """The notebook's mask recipes: the profile's, with ``steps`` (None: the profile's, capped in a dry run)."""
    return profile_recipes(ctx.profile, steps=steps or ctx.settings.mask_steps, keep_grid=keep_grid)


def removal_keeps(recipes: ProfileRecipes, dataset: DatasetName, main_dataset: DatasetName) -> tuple[float, ...]:
    """Keep fractions of a dataset's Fig. 7 masks: the widget's grid on the notebook's dataset, 80 % elsewhere."""
    return tuple(recipes.keep_grid) if dataset == main_dataset else (PAPER_KEEP,)


def removal_groups(requested: Mapping[str, Sequence[int]] | None, datasets: Sequence[str]) -> dict[str, list[int]]:
    """Fig. 7's groups left out, per dataset: ``requested``'s, for the analysed datasets it names (None: groups 0
    and 1 of every analysed dataset, the paper's BwoP and BwP); a dataset that is not analysed is never touched (no
    synthetic set in a run on your own data)."""
    if requested is None:
        return {name: [0, 1] for name in datasets}
    return {name: [int(g) for g in groups] for name, groups in requested.items() if name in datasets}


def removal_recipe(base: MaskRecipe, group: int, keep: float, seed: int) -> MaskRecipe:
    """The Fig. 7 mask leaving out ``group``, keeping ``keep`` of the weights."""
    return replace(base, keep_fraction=float(keep), removed_groups=(int(group),), seed=seed)


def window_curve(values: Sequence[float], points: int = 10) -> list[list[float]]:
    """``[[1, values[0]], [step, mean], ...]``: the first step's value, then each of ``points`` windows' mean at its
    last step (1-based). One step's cross-entropy is a batch's; window means show the trend, not the batch."""
    every = max(1, len(values) // points)
    windows = [[min(i + every, len(values)), sum(values[i:i + every]) / len(values[i:i + every])]
               for i in range(0, len(values), every)]
    return ([[1, float(values[0])]] if values else []) + [w for w in windows if w[0] > 1]


@dataclass(frozen=True)
class MaskFacts:
    """What is recorded about one trained (or loaded) mask.

    Attributes:
        keep_target: the requested keep fraction (None: ``logits >= 0``).
        keep_fraction: fraction of all masked weights kept; ``prune_f = 1 - keep_fraction``.
        prune_f, prune_h: the paper's Prune_f (all conv/linear weights) and Prune_h (the head's).
        per_layer_keep: ``{layer: kept fraction}`` in module order.
        train_seconds, steps, train_keep: training time, steps and the fraction training itself kept.
        loaded: loaded from the cache (not trained now); path: the cached file.
        loss_curve: ``[[step, cross-entropy], ...]``: the first step's, then the mean over each tenth of training
            at its last step (the sparsity penalty left out: its size is the logits' sum, not a fit).
        undecided: share of masked weights whose keep probability is still in (0.1, 0.9) at the end.
        undecided_curve: that share over training, as ``loss_curve`` (``[]`` for a mask cached before it was
            recorded per step).
        magnitude_overlap: share of the kept weights magnitude pruning of the same size keeps too (1: the same cut;
            a random cut: about ``keep_fraction``).
    """

    keep_target: float | None
    keep_fraction: float
    prune_f: float
    prune_h: float
    per_layer_keep: dict[str, float]
    train_seconds: float
    steps: int
    train_keep: float
    loaded: bool
    path: str
    loss_curve: list[list[float]]
    undecided: float
    undecided_curve: list[list[float]]
    magnitude_overlap: float

    @classmethod
    def of(cls, mask: MaskResult, info: dict, model: nn.Module) -> "MaskFacts":
        """The facts of ``mask`` (trained on the frozen ``model``) and of its training run ``info``."""
        curve = window_curve([float(h["ce"]) for h in mask.history])
        shares = [float(h["undecided"]) for h in mask.history if "undecided" in h]
        undecided_curve = window_curve(shares) if len(shares) == len(mask.history) else []
        return cls(keep_target=mask.keep_target, keep_fraction=mask.keep_fraction(), prune_f=mask.prune_f(),
                   prune_h=mask.prune_h(), per_layer_keep=mask.per_layer_keep(), train_seconds=info["train_seconds"],
                   steps=info["steps"], train_keep=info["train_keep"], loaded=info["loaded"], path=info["path"],
                   loss_curve=curve, undecided=undecided_share(mask), undecided_curve=undecided_curve,
                   magnitude_overlap=magnitude_overlap(mask, model))


@dataclass(frozen=True)
class PruscResult:
    """Fig. 6: the model and its PruSC-style subnetwork on the test set, with neuron s-scores.

    ``baseline`` and ``prusc`` are :func:`evaluate_groups` dicts with ``"sscore"`` (a
    :func:`~shortcut_nb.sscore.summarize_scores` with ``head_weight``) added.
    """

    dataset: DatasetName
    model: str
    arch: Arch
    seed: int
    alpha: float
    sscore_samples: int
    recipe: MaskRecipe
    baseline: dict
    prusc: dict
    mask: MaskFacts


@dataclass(frozen=True)
class Subnetwork:
    """One Fig. 7 mask: the group left out, the subnetwork's test summary (with ``drop_interval``, the removed
    group's accuracy drop's bootstrap interval, :func:`removed_drop_interval`) and the mask's facts."""

    removed_group: int
    keep: float
    summary: dict
    mask: MaskFacts


@dataclass(frozen=True)
class RemovalResult:
    """Fig. 7: the full model's test summary and one :class:`Subnetwork` per removed group and keep fraction."""

    dataset: DatasetName
    model: str
    arch: Arch
    seed: int
    group_names: tuple[str, ...]
    train_group_counts: list[int]
    full: dict
    subnetworks: tuple[Subnetwork, ...]
    recipe: MaskRecipe


def evaluate_groups(ctx: Context, model: nn.Module, spec: RunSpec, *,
                 train_group_counts: Sequence[int] | None = None, out: Mapping[str, Any] | None = None) -> dict:
    """Per-group accuracy, AVG, WGA and GAP of ``model`` on the test split (see :func:`~shortcut_nb.metrics.summarize`),
    plus ``pred_class1`` (the share predicted class 1: a degenerate model predicts one class). ``out``: the model's
    ``ctx.evaluate`` output on the test split when already computed."""
    out = out if out is not None else ctx.evaluate(model, spec, "test")
    summary = summarize(out["pred"], out["y"], out["g"], train_group_counts=train_group_counts)
    summary["pred_class1"] = float((out["pred"] == 1).mean())
    return summary


def prusc_intervals(before: Mapping[str, Any], after: Mapping[str, Any], scores_before: Sequence[float],
                    scores_after: Sequence[float], *, seed: int = 0) -> dict[str, list[float]]:
    """Fig. 6's within-seed 95 % intervals: ``wga_change`` (ΔWGA, a paired bootstrap over the test images of both
    models' predictions ``before`` / ``after``, :func:`~shortcut_nb.metrics.wga_change_interval`) and
    ``mean_s_fall`` (mean s-score before minus after, a paired bootstrap over the d neurons' (d,) scores)."""
    n_groups = int(max(before["g"].max(), after["g"].max())) + 1
    fall = np.asarray(scores_before, dtype=np.float64) - np.asarray(scores_after, dtype=np.float64)
    means = bootstrap_means(fall, seed=seed)[:, 0]
    return {"wga_change": list(wga_change_interval(before["pred"], after["pred"], before["y"], before["g"],
                                                   n_groups=n_groups, seed=seed)),
            "mean_s_fall": [float(np.quantile(means, (1 - LEVEL) / 2)), float(np.quantile(means, (1 + LEVEL) / 2))]}


def removed_drop_interval(full: Mapping[str, Any], subnetwork: Mapping[str, Any], group: int, *,
                          seed: int = 0) -> list[float] | None:
    """Fig. 7's within-seed 95 % interval of ``group``'s accuracy drop (full model minus subnetwork): a percentile
    bootstrap over that group's test images of the paired per-image difference of correctness. ``full`` and
    ``subnetwork`` are both models' ``ctx.evaluate`` outputs on the same test split (``pred``, ``y``, ``g`` (N,));
    None when the group has no test image."""
    rows = np.asarray(full["g"]) == group
    if not rows.any():
        return None
    y = np.asarray(full["y"])[rows]
    drop = (np.asarray(full["pred"])[rows] == y).astype(np.float64) - (np.asarray(subnetwork["pred"])[rows] == y)
    low, high = bootstrap_interval(drop, seed=seed)
    return [float(low[0]), float(high[0])]


def prusc_experiment(ctx: Context, *, dataset: DatasetName = "isic", arch: Arch = "cnn", seed: int = 0,
                     recipe: MaskRecipe | None = None, alpha: float = 0.5, sscore_samples: int | None = None,
                     sample_seed: int = SAMPLE_SEED) -> PruscResult:
    """Fig. 6: a PruSC-style mask on the frozen trained model; WGA, Prune_h, Prune_f, s-scores before/after.

    Args:
        ctx: the notebook's context (profile, runs root, data folders, progress).
        dataset: ``"isic"`` (the paper's) or ``"waterbirds"``.
        arch: the profile's CNN (the paper's §5.3 is on ResNet-18) or ViT.
        seed: the trained model's seed.
        recipe: mask settings (default: the notebook's ``prusc`` recipe, :func:`mask_recipes`).
        alpha: Grad-CAM binarisation threshold of the s-score.
        sscore_samples: training images for the s-score (default: the profile's, 50 outside smoke).
        sample_seed: seed of the s-score draw (notebook 03's, so both score the same images).
    """
    recipe = recipe or mask_recipes(ctx).prusc
    spec = ctx.run_spec(dataset, arch=arch, seed=seed)
    model, info = ctx.train_or_load(spec)
    mask, minfo = train_or_load_mask(ctx, model, spec, recipe)
    pruned = mask.apply(model)
    # the same draw as notebook 03 (Fig. 5's baseline): training images whose spurious mask is non-empty
    samples = ctx.masked_samples(spec, seed=sample_seed, n=sscore_samples)
    sides, outs = {}, {}
    for name, net in (("baseline", model), ("prusc", pruned)):
        outs[name] = ctx.evaluate(net, spec, "test")
        summary = evaluate_groups(ctx, net, spec, train_group_counts=info["train_group_counts"], out=outs[name])
        summary["sscore"] = summarize_scores(score_neurons(net, samples, alpha=alpha), samples.area,
                                             head_weight=net.head.weight)
        sides[name] = summary
    sides["prusc"]["intervals"] = prusc_intervals(outs["baseline"], outs["prusc"], sides["baseline"]["sscore"]["scores"],
                                                  sides["prusc"]["sscore"]["scores"], seed=seed)
    return PruscResult(dataset=dataset, model=spec.model, arch=arch, seed=seed, alpha=float(alpha),
                       sscore_samples=len(samples), recipe=recipe, baseline=sides["baseline"], prusc=sides["prusc"],
                       mask=MaskFacts.of(mask, minfo, model))


def group_removal_experiment(ctx: Context, *, dataset: DatasetName = "isic", remove_groups: Sequence[int] = (0, 1),
                             keep_fractions: Sequence[float] | None = None, arch: Arch = "cnn", seed: int = 0,
                             recipe: MaskRecipe | None = None) -> RemovalResult:
    """Fig. 7: masks trained on D \\ {group} for each group and keep fraction; per-group test accuracy.

    Args:
        ctx: the notebook's context.
        dataset: ``"isic"`` (paper) or ``"waterbirds"`` (our analogue).
        remove_groups: groups to leave out, one mask each (``g = 2*y + a``; ISIC: 0 BwoP, 1 BwP).
        keep_fractions: keep fractions (default: the profile's grid; 0.8 is the paper's).
        arch: the profile's CNN or ViT.
        seed: the trained model's seed (and the masks').
        recipe: base settings (default: the profile's ``removal`` recipe); keep and groups are set per mask.
    """
    recipes = mask_recipes(ctx)
    base = recipe or recipes.removal
    keeps = tuple(keep_fractions) if keep_fractions is not None else recipes.keep_grid
    if not keeps:
        raise ValueError("keep_fractions must name at least one keep fraction")
    groups = [int(g) for g in remove_groups]
    spec = ctx.run_spec(dataset, arch=arch, seed=seed)
    model, info = ctx.train_or_load(spec)
    counts = list(info["train_group_counts"])
    if not groups or any(g not in range(len(counts)) for g in groups):
        raise ValueError(f"remove_groups must be a non-empty list of groups in 0..{len(counts) - 1} ({dataset}), got "
                         f"{list(remove_groups)!r}")
    full_out = ctx.evaluate(model, spec, "test")
    full = evaluate_groups(ctx, model, spec, train_group_counts=counts, out=full_out)
    subs = []
    for g in groups:
        for keep in keeps:
            mask, minfo = train_or_load_mask(ctx, model, spec, removal_recipe(base, g, keep, seed))
            out = ctx.evaluate(mask.apply(model), spec, "test")
            summary = evaluate_groups(ctx, mask.apply(model), spec, train_group_counts=counts, out=out)
            summary["drop_interval"] = removed_drop_interval(full_out, out, g, seed=seed)
            subs.append(Subnetwork(removed_group=g, keep=float(keep), summary=summary,
                                   mask=MaskFacts.of(mask, minfo, model)))
    names = ctx.split(spec, "test").groups.names
    return RemovalResult(dataset=dataset, model=spec.model, arch=arch, seed=seed, group_names=names,
                         train_group_counts=counts, full=full, subnetworks=tuple(subs), recipe=base)


def seed_experiments(ctx: Context, *, prusc: PruscResult, removals: Mapping[str, RemovalResult],
                     recipes: ProfileRecipes, remove_groups: Mapping[str, Sequence[int]], alpha: float = 0.5,
                     seeds: Sequence[int] | None = None) -> dict[int, tuple[PruscResult, dict[str, RemovalResult]]]:
    """Fig. 6 and Fig. 7 (80 % masks only) for every seed, to decide their claims over seeds:
    ``{seed: (PruscResult, {dataset: RemovalResult})}``.

    ``seeds``: None: the profile's (:meth:`Context.seeds`, ``prusc.seed`` first). The notebook's own results
    (``prusc``, ``removals``, for ``prusc.seed``) are reused; another seed's model comes from the run cache and its
    masks are trained on first use: one PruSC-style mask, and one per removed group at 80 % on the dataset Fig. 7's
    claim is decided on (:data:`~.record.CLAIM_DATASET`, when analysed); the other datasets are not re-run.
    """
    out = {}
    for s in ctx.seeds(prusc.seed, seeds):
        if s == prusc.seed:
            out[s] = (prusc, dict(removals))
            continue
        out[s] = (prusc_experiment(ctx, dataset=prusc.dataset, arch=prusc.arch, seed=s, recipe=recipes.prusc,
                                   alpha=alpha),
                  {name: group_removal_experiment(ctx, dataset=name, remove_groups=remove_groups[name],
                                                  keep_fractions=(PAPER_KEEP,), arch=r.arch, seed=s,
                                                  recipe=recipes.removal)
                   for name, r in removals.items() if name == CLAIM_DATASET})
    return out


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[MaskRun]:
    """The masks notebook 05 trains with these parameters (its ``parameters`` cell), for ``sweep plan``: the
    Fig. 6 mask and every Fig. 7 mask, then each other profile seed's (:func:`seed_experiments`: its Fig. 6 mask and
    its 80 % Fig. 7 masks on :data:`~.record.CLAIM_DATASET`); a sweep adds the fine-tunings they mask as their
    dependencies."""
    seed = int(parameters.get("SEED", 0))
    datasets = ctx.datasets(parameters.get("DATASETS"))
    dataset = ctx.headline(datasets, parameters.get("DATASET", "isic"))
    recipes = mask_recipes(ctx, steps=parameters.get("MASK_STEPS"), keep_grid=parameters.get("KEEP_GRID"))
    groups_out = removal_groups(parameters.get("REMOVE_GROUPS"), datasets)
    runs = [MaskRun(ctx.run_spec(dataset, arch="cnn", seed=seed), recipes.prusc)]
    for name, groups in groups_out.items():
        spec = ctx.run_spec(name, arch="cnn", seed=seed)
        runs += [MaskRun(spec, removal_recipe(recipes.removal, g, keep, seed))
                 for g in groups for keep in removal_keeps(recipes, name, dataset)]
    for other in ctx.seeds(seed)[1:]:
        runs.append(MaskRun(ctx.run_spec(dataset, arch="cnn", seed=other), recipes.prusc))
        spec = ctx.run_spec(CLAIM_DATASET, arch="cnn", seed=other)
        runs += [MaskRun(spec, removal_recipe(recipes.removal, g, PAPER_KEEP, other))
                 for g in groups_out.get(CLAIM_DATASET, ())]
    return runs
