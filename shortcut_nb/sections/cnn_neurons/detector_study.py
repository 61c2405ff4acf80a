"""Notebook 03, "Does the s-score find the neurons that use the shortcut?": detectors against a causal ground truth.

For each dataset the validation split gives counterfactual pairs (:meth:`Context.counterfactual_pairs`: the same
images with the spurious attribute flipped and with the core flipped, re-rendered by the synthetic benchmark;
forward passes only). Every penultimate neuron's *spurious share* (how much of its change the attribute causes,
:mod:`shortcut_nb.counterfactuals`) is the ground truth, and each detector is scored against it
(:func:`~shortcut_nb.counterfactuals.evaluate_detectors`): the s-score at the notebook's α in the paper's hard
variant and the soft and IoU variants (on the study's own samples; every CAM method gives the same heatmap at the
neurons' own layer, so methods add nothing), and the mask-free group gap and spuriosity (on the pairs' images). The
notebook's own model is also randomised (last block, whole model) for Adebayo et al.'s check; every seed's model
(``by_seed``) is scored on the same pairs, for intervals over seeds.

:func:`detector_pruning` runs Table 4 (:meth:`~.study.NeuronStudy.table4_neurons`, the study's own
:func:`~shortcut_nb.lastlayer.table4.prune_and_refit`) with the top-k neurons of the ground truth and of each
detector: k is the number of neurons the s-score prunes at τ, or, when it prunes none, the number the ground truth
calls spurious.

A folder that is not the synthetic benchmark cannot flip its core: its entry says so (``reason``). A dataset left
out for want of masks (:attr:`Context.skipped`) gets :func:`mask_free_ranking`: its neurons ranked by the mask-free
detectors alone, on the cached validation features.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...config import model_device
from ...counterfactuals import (
    DatasetDetectors,
    DetectorEvaluation,
    Scorer,
    core_flip_unavailable,
    detectors_from_activations,
    evaluate_detectors,
    spearman,
    sscore_key,
    top_neurons,
)
from ...counterfactuals.randomise import SCOPES
from ...lastlayer.table4 import DEFAULT_TAU
from ...pipeline.context import Context
from ...sscore import unit_s_scores
from .study import NeuronStudy

#: The s-score variants scored as detectors (the paper's hard score first).
VARIANTS: tuple[str, ...] = ("hard", "soft", "iou")
#: The split the pairs (and the mask-free ranking) come from: Table 4 refits on it and measures on the test split.
SPLIT = "val"
#: Neurons listed per detector in a mask-free ranking.
N_TOP = 10

__all__ = ["DetectorStudy", "MaskFreeRanking", "N_TOP", "SPLIT", "VARIANTS", "detector_pruning", "detector_studies",
           "mask_free_ranking", "sscore_scorers"]


@dataclass
class DetectorStudy(DatasetDetectors):
    """One dataset's CNN detectors against the counterfactual ground truth
    (:class:`~shortcut_nb.counterfactuals.DatasetDetectors`), with Table 4 run on each detector's neurons.

    Attributes (beyond the base class's):
        tau: Table 4's pruning threshold (it sets k).
        pruning: :func:`detector_pruning` of the own seed (None without a ground truth).
    """

    tau: float = DEFAULT_TAU
    pruning: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        """The base record plus ``tau`` and ``pruning``."""
        return {**super().record(), "tau": float(self.tau), "pruning": self.pruning}


def sscore_scorers(study: NeuronStudy, *, alpha: float,
                   variants: Sequence[str] = VARIANTS) -> tuple[dict[str, Scorer], dict[str, torch.Tensor]]:
    """The s-score variants as scorers on ``study``'s samples (any CNN of its architecture, e.g. a randomised copy;
    Grad-CAM at the model's default layer), and the study's own model's scores (its grid at ``alpha`` for the hard
    score, its memoised unit scores for the others)."""
    device = model_device(study.model)
    images, masks = study.images.to(device), study.masks.to(device)

    def scorer(variant: str) -> Scorer:
        return lambda model: unit_s_scores(model, images, masks, layer=model.default_target_layer(), alpha=alpha,
                                           variant=variant)

    given = {sscore_key(v): torch.from_numpy(study.scores(alpha) if v == "hard" else
                                             study.unit_scores(alpha=alpha, variant=v).scores).float()
             for v in variants}
    return {sscore_key(v): scorer(v) for v in variants}, given


def detector_pruning(study: NeuronStudy, evaluation: DetectorEvaluation, *, alpha: float, tau: float,
                     seed: int = 0) -> dict[str, Any]:
    """Table 4 with the top-k neurons of the ground truth and of each detector zeroed (then refit without them).

    Returns:
        ``{"k", "rule", "baseline", "refit", "rows": {key: {"neurons", "overlap_truth", "pruned", "refit_pruned",
        "errors"}}}`` (``key``: ``"truth"`` and the detectors'; ``pruned`` / ``refit_pruned`` as Table 4's rows).
    """
    table = study.table4(alpha, tau, seed)
    share = evaluation.truth.spurious_share
    k = len(table["pruned_neurons"])
    if k:
        rule = f"top {k} of each detector: the {k} neurons the s-score prunes at τ = {tau:g} (Table 4)"
    else:
        k = int((share > evaluation.threshold).sum())
        rule = (f"no s-score above τ = {tau:g}: top {k} of each detector, the number of neurons whose spurious share "
                f"exceeds {evaluation.threshold:g}")
    picks = {"truth": top_neurons(share, k), **{key: top_neurons(s, k) for key, s in evaluation.scores.items()}}
    rows = {}
    for key, neurons in picks.items():
        t = study.table4_neurons(neurons, seed)
        rows[key] = {"neurons": neurons, "overlap_truth": len(set(neurons) & set(picks["truth"])),
                     "pruned": t["pruned"], "refit_pruned": t["refit_pruned"], "errors": t["errors"]}
    return {"k": k, "rule": rule, "baseline": table["baseline"], "refit": table["refit"], "rows": rows}


def detector_studies(ctx: Context, studies: Mapping[str, NeuronStudy],
                     by_seed: Mapping[str, Mapping[int, NeuronStudy]] | None = None, *, alpha: float, tau: float,
                     seed: int = 0, model: str | None = None, pair_seed: int = 0, n_pairs: int | None = None,
                     variants: Sequence[str] = VARIANTS) -> dict[str, DetectorStudy]:
    """``{dataset: DetectorStudy}`` for the notebook's studies (see the module docstring).

    Args:
        ctx: the notebook's context.
        studies: the notebook's own :class:`~.study.NeuronStudy` per dataset (seed ``seed``).
        by_seed: :func:`~.study.seed_studies` (every seed's study; None: the own seed alone).
        alpha, tau: the notebook's thresholds (τ sets Table 4's pruning and so k).
        seed: the notebook's model seed; model: the CNN (None: the profile's).
        pair_seed: seed of the pairs' draw; n_pairs: pairs (None: the profile's ``counterfactual_pairs``).
        variants: the s-score variants scored.
    """
    out = {}
    for name, st in studies.items():
        spec = ctx.run_spec(name, arch="cnn", seed=seed, model=model)
        reason = core_flip_unavailable(ctx.split(spec, SPLIT))
        common = dict(dataset=name, model_name=st.model_name, own_seed=int(seed), alpha=float(alpha),
                      tau=float(tau), area=st.area, pair_seed=int(pair_seed), split=SPLIT)
        if reason is not None:
            out[name] = DetectorStudy(reason=reason, evaluations={}, **common)
            continue
        attribute, core = ctx.counterfactual_pairs(spec, seed=pair_seed, n=n_pairs, split=SPLIT)
        seeds = {int(seed): st, **{int(s): v for s, v in ((by_seed or {}).get(name) or {}).items()}}
        evaluations = {}
        for s, seed_study in seeds.items():
            scorers, given = sscore_scorers(seed_study, alpha=alpha, variants=variants)
            evaluations[s] = evaluate_detectors(seed_study.model, attribute, core, scorers, scores=given,
                                                randomise=SCOPES if s == int(seed) else (), seed=s)
        result = DetectorStudy(reason=None, evaluations=evaluations, **common)
        result.pruning = detector_pruning(st, result.evaluation, alpha=alpha, tau=tau, seed=seed)
        out[name] = result
    return out


@dataclass
class MaskFreeRanking:
    """A dataset without masks: its CNN's neurons ranked by the mask-free detectors (no s-score, no ground truth).

    Attributes:
        dataset, model_name: what was analysed; reason: why the s-score is not computed (no masks).
        n_images: validation images the detectors read.
        scores: ``{"group_gap", "spuriosity"}`` per neuron (float64 (K,)).
        agreement: Spearman correlation of the two rankings.
    """

    dataset: str
    model_name: str
    reason: str
    n_images: int
    scores: dict[str, np.ndarray]
    agreement: float

    def top(self, key: str, k: int = N_TOP) -> list[int]:
        """The ``k`` neurons ``key`` ranks highest."""
        return top_neurons(self.scores[key], min(k, len(self.scores[key])))


def mask_free_ranking(ctx: Context, dataset: str, *, seed: int = 0, model: str | None = None) -> MaskFreeRanking:
    """Rank a dataset's CNN neurons by group gap (attribute labels) and spuriosity (class labels) on the cached
    features of its validation split; for the datasets :attr:`Context.skipped` lists (no masks: no s-score)."""
    spec = ctx.run_spec(dataset, arch="cnn", seed=seed, model=model)
    net, _ = ctx.train_or_load(spec)
    data = ctx.split(spec, SPLIT)
    z = torch.from_numpy(np.asarray(ctx.features(net, data)["z"]))
    head: nn.Module = net.head
    scores = {key: s.double().numpy() for key, s in detectors_from_activations(z, head, data.y, data.a).items()}
    return MaskFreeRanking(dataset=dataset, model_name=spec.model,
                           reason=ctx.skipped.get(dataset, "no spurious masks"), n_images=len(data), scores=scores,
                           agreement=spearman(scores["group_gap"], scores["spuriosity"]))
