"""A benchmark of neuron-level shortcut detectors on one trained model: truth, scores, metrics, randomisation.

:func:`evaluate_detectors` takes a model, attribute- and core-flipped pairs of the same images (:func:`~.pairs.pairs`)
and the mask-based detectors to score (``{key: scorer}``, a scorer being ``model -> (K,)`` scores, e.g. the s-score
on a fixed set of masked samples). It runs three forward passes (the images and their two counterfactuals), from
which come the ground truth (:func:`~.effects.truth_from_activations`) *and* the mask-free detectors on the same
images (:func:`~.detectors.detectors_from_activations`: group gap and spuriosity), and scores every detector
against the truth (:func:`~.scoring.detector_table`: Spearman, AUROC and precision@k for ``share > threshold``,
bootstrap intervals over neurons).

The randomisation check (Adebayo et al.): for each scope of :func:`~.randomise.randomised_copy` the detectors are
recomputed on the randomised copy (the scorers again, the mask-free ones from one forward pass of the same images)
and scored against the *trained* model's truth. A detector whose metric stays away from chance (its interval
excludes Spearman 0 or AUROC 0.5: :func:`survives`) reads the data or the architecture, not what the model learnt.

Over seeds (one trained model per seed, the same pairs): :func:`seed_table` combines each metric's per-seed values
into their mean and Student-t interval (:func:`~.scoring.seed_interval`); :class:`DatasetDetectors` holds one
dataset's evaluations (or why it has no ground truth) and records them. :func:`top_neurons` is a detector's pick
of ``k`` neurons (for pruning them).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..sscore.uncertainty import N_BOOT
from .detectors import detectors_from_activations
from .effects import GroundTruth, activations, truth_from_activations
from .pairs import Pairs
from .randomise import SCOPES, Scope, randomised_copy
from .scoring import METRICS, Interval, detector_table, seed_interval

#: A mask-based detector: the model in, one score per penultimate neuron out ((K,), higher = more spurious).
Scorer = Callable[[nn.Module], Tensor]
#: The keys of the mask-free detectors (:func:`~.detectors.detectors_from_activations`).
MASK_FREE: tuple[str, ...] = ("group_gap", "spuriosity")
#: What a metric scores for a detector that ignores the model (precision@k: the share of spurious neurons).
CHANCE: dict[str, float] = {"spearman": 0.0, "auroc": 0.5}
#: A neuron is spurious when its spurious share exceeds this (the attribute moves it more than the core).
THRESHOLD = 0.5

__all__ = ["CHANCE", "DatasetDetectors", "DetectorEvaluation", "MASK_FREE", "Scorer", "THRESHOLD", "evaluate_detectors",
           "interval_record", "metrics_record", "seed_table", "seeds_record", "sscore_key", "survives", "top_neurons"]


def sscore_key(variant: str = "hard") -> str:
    """The record key of an s-score variant: ``"sscore"`` for the paper's hard score, ``"sscore_<variant>"`` else."""
    return "sscore" if variant == "hard" else f"sscore_{variant}"


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def interval_record(interval: Interval) -> dict[str, float | None]:
    """``{"value", "low", "high"}`` of an :class:`~.scoring.Interval` (NaN -> None, so the JSON stays valid)."""
    return {"value": _finite(interval.value), "low": _finite(interval.low), "high": _finite(interval.high)}


def metrics_record(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One detector's :func:`~.scoring.detector_metrics` as JSON: each metric's interval, ``n``, ``n_spurious``,
    ``k`` and ``chance`` (Spearman 0, AUROC 0.5, precision@k the share of spurious neurons)."""
    out: dict[str, Any] = {name: interval_record(metrics[name]) for name in METRICS}
    out.update(n=int(metrics["n"]), n_spurious=int(metrics["n_spurious"]), k=int(metrics["k"]),
               chance={**CHANCE, "precision_at_k": metrics["n_spurious"] / metrics["n"]})
    return out


def survives(entry: Mapping[str, Any], metric: str) -> bool:
    """Whether a recorded metric (``{"value", "low", "high"}``) of a randomised model stays away from chance: its
    interval lies wholly above or wholly below :data:`CHANCE` (an undefined interval does not)."""
    low, high = entry[metric]["low"], entry[metric]["high"]
    if low is None or high is None:
        return False
    return low > CHANCE[metric] or high < CHANCE[metric]


def top_neurons(scores: Tensor | np.ndarray | Sequence[float], k: int) -> list[int]:
    """The ``k`` neurons a detector ranks highest (ties towards the lower index, NaN last), highest first."""
    s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64).reshape(-1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= s.size:
        raise ValueError(f"k must be an int in [0, {s.size}], got {k!r}")
    order = np.argsort(-np.where(np.isfinite(s), s, -np.inf), kind="stable")
    return [int(i) for i in order[:k]]


@dataclass(frozen=True)
class DetectorEvaluation:
    """Every detector of one model scored against its counterfactual ground truth.

    Attributes:
        truth: the model's :class:`~.effects.GroundTruth` (per penultimate neuron).
        scores: ``{key: (K,) scores}`` of the trained model (the scorers' keys, then :data:`MASK_FREE`).
        table: ``{key: detector_metrics}`` (:func:`~.scoring.detector_table`) against ``truth.spurious_share``.
        randomised: ``{scope: {key: detector_metrics}}``: the detectors of the randomised copy against the trained
            model's truth (empty when no scope was asked for).
        n_pairs: pairs the truth and the mask-free detectors were measured on; threshold: the spurious share above
            which a neuron counts as spurious; seconds: wall time of ``truth`` (forward passes and detectors),
            ``scorers`` and ``randomised``.
    """

    truth: GroundTruth
    scores: dict[str, Tensor]
    table: dict[str, dict]
    randomised: dict[str, dict[str, dict]]
    n_pairs: int
    threshold: float = THRESHOLD
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        return list(self.table)

    def record(self) -> dict[str, Any]:
        """JSON-able: ``{"n_pairs", "threshold", "n_neurons", "n_spurious", "table": {key: metrics_record},
        "randomised": {scope: {key: metrics_record + "survives": {metric: bool}}}, "truth": {"spurious_share",
        "attribute_effect", "core_effect"} (per neuron, NaN -> None), "scores": {key: per neuron}, "seconds"}``."""
        share = self.truth.spurious_share
        randomised = {scope: {key: metrics_record(m) for key, m in table.items()}
                      for scope, table in self.randomised.items()}
        for table in randomised.values():
            for entry in table.values():
                entry["survives"] = {metric: survives(entry, metric) for metric in CHANCE}
        return {
            "n_pairs": int(self.n_pairs), "threshold": float(self.threshold), "n_neurons": int(share.numel()),
            "n_spurious": int((share > self.threshold).sum()),
            "table": {key: metrics_record(m) for key, m in self.table.items()},
            "randomised": randomised,
            "truth": {name: _per_neuron(getattr(self.truth, name))
                      for name in ("spurious_share", "attribute_effect", "core_effect")},
            "scores": {key: _per_neuron(s) for key, s in self.scores.items()},
            "seconds": dict(self.seconds),
        }


def _per_neuron(x: Tensor) -> list[float | None]:
    return [_finite(v) for v in torch.as_tensor(x).double().tolist()]


def _scores(model: nn.Module, z: Tensor, pairs: Pairs, scorers: Mapping[str, Scorer],
            given: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {key: torch.as_tensor(given[key] if key in given else scorer(model)).detach().float().cpu().reshape(-1)
           for key, scorer in scorers.items()}
    out.update(detectors_from_activations(z, model.head, pairs.flipped.y, pairs.flipped.a))
    return out


def evaluate_detectors(model: nn.Module, attribute_pairs: Pairs, core_pairs: Pairs,
                       scorers: Mapping[str, Scorer] | None = None, *, scores: Mapping[str, Tensor] | None = None,
                       randomise: Sequence[Scope] = SCOPES, threshold: float = THRESHOLD, n_boot: int = N_BOOT,
                       seed: int = 0, batch_size: int = 64) -> DetectorEvaluation:
    """Score the given detectors and the mask-free ones against ``model``'s ground truth (see the module docstring).

    Args:
        model: a trained split model (``.f_enc``, a linear ``.head``).
        attribute_pairs, core_pairs: pairs of the same images (:func:`~.pairs.pairs`, same dataset, n and seed).
        scorers: ``{key: model -> (K,) scores}``, e.g. the s-score; the mask-free detectors are always added.
        scores: the trained model's scores of some scorers, already computed (they are not computed again; the
            randomised copies still call the scorers).
        randomise: scopes of :func:`~.randomise.randomised_copy` to check (``()``: none).
        threshold: a neuron is spurious when its share exceeds it.
        n_boot, seed: bootstrap resamples over neurons and their seed (also the randomisation's seed).
        batch_size: images per forward pass.

    Returns:
        A :class:`DetectorEvaluation`.
    """
    scorers, given = dict(scorers or {}), dict(scores or {})
    if set(scorers) & set(MASK_FREE):
        raise ValueError(f"scorer keys {sorted(set(scorers) & set(MASK_FREE))} are the mask-free detectors' own")
    unknown = [s for s in randomise if s not in SCOPES]
    if unknown:
        raise ValueError(f"randomise must hold scopes among {SCOPES}, got {unknown}")
    if not torch.equal(attribute_pairs.indices, core_pairs.indices) or attribute_pairs.flipped.flip != "attribute" \
            or core_pairs.flipped.flip != "core":
        raise ValueError("attribute_pairs and core_pairs must be the attribute and the core flips of the same images: "
                         "draw both with pairs() from the same dataset, n and seed")
    tic = time.perf_counter()
    z = activations(model, attribute_pairs.images, batch_size=batch_size)
    truth = truth_from_activations(z, activations(model, attribute_pairs.counterfactuals, batch_size=batch_size),
                                   activations(model, core_pairs.counterfactuals, batch_size=batch_size),
                                   model.head.weight)
    seconds = {"truth": time.perf_counter() - tic}
    tic = time.perf_counter()
    trained = _scores(model, z, attribute_pairs, scorers, given)
    seconds["scorers"] = time.perf_counter() - tic
    options = dict(threshold=threshold, n_boot=n_boot, seed=seed)
    table = detector_table(trained, truth.spurious_share, **options)
    tic = time.perf_counter()
    randomised = {}
    for scope in randomise:
        copy = randomised_copy(model, scope=scope, seed=seed)
        z_copy = activations(copy, attribute_pairs.images, batch_size=batch_size)
        randomised[scope] = detector_table(_scores(copy, z_copy, attribute_pairs, scorers, {}), truth.spurious_share,
                                           **options)
    seconds["randomised"] = time.perf_counter() - tic
    return DetectorEvaluation(truth=truth, scores=trained, table=table, randomised=randomised,
                              n_pairs=len(attribute_pairs.indices), threshold=float(threshold), seconds=seconds)


def seed_table(evaluations: Mapping[int, DetectorEvaluation]) -> dict[str, dict[str, Any]]:
    """Each detector's metrics over seeds: ``{key: {metric: {"value", "low", "high", "values"}}}``, the mean over
    the seeds' point values and its Student-t interval (:func:`~.scoring.seed_interval`), with the values per seed
    in the order of ``evaluations`` (None where undefined). Detectors missing from a seed are left out."""
    if not evaluations:
        raise ValueError("evaluations is empty: pass {seed: DetectorEvaluation}")
    keys = [k for k in next(iter(evaluations.values())).table if all(k in e.table for e in evaluations.values())]
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        out[key] = {}
        for metric in METRICS:
            values = [e.table[key][metric].value for e in evaluations.values()]
            out[key][metric] = {**interval_record(seed_interval(values)), "values": [_finite(v) for v in values]}
    return out


def seeds_record(evaluations: Mapping[int, DetectorEvaluation], own_seed: int) -> dict[str, Any]:
    """What a notebook records of one dataset's evaluations, one per seed: the ``own_seed``'s
    :meth:`DetectorEvaluation.record`, plus ``"seeds"`` (:func:`seed_table`, ``{}`` for one seed), ``"n_seeds"``
    and ``"per_seed"`` (``[{"seed", "table"}]``, each seed's own table with its bootstrap intervals)."""
    if own_seed not in evaluations:
        raise ValueError(f"own_seed {own_seed} is not among the seeds evaluated {list(evaluations)}")
    return {**evaluations[own_seed].record(), "n_seeds": len(evaluations),
            "seeds": seed_table(evaluations) if len(evaluations) > 1 else {},
            "per_seed": [{"seed": int(seed), "table": {key: metrics_record(m) for key, m in e.table.items()}}
                         for seed, e in evaluations.items()]}


@dataclass
class DatasetDetectors:
    """One dataset's detectors against the ground truth, one evaluation per seed's model (same pairs), or the
    reason there is no ground truth (a folder that cannot flip its core: :func:`~.pairs.core_flip_unavailable`).

    Attributes:
        dataset, model_name: what was analysed.
        reason: why there is no ground truth, else None.
        evaluations: ``{seed: DetectorEvaluation}`` (empty without a ground truth).
        own_seed: the notebook's seed (its evaluation is the one randomised and shown).
        alpha: the s-score's threshold; area: its chance level (the mean mask area of its samples).
        pair_seed, split: the draw of the pairs and the split they come from.
    """

    dataset: str
    model_name: str
    reason: str | None
    evaluations: dict[int, DetectorEvaluation]
    own_seed: int
    alpha: float
    area: float
    pair_seed: int = 0
    split: str = "val"

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def evaluation(self) -> DetectorEvaluation:
        """The notebook's own seed's evaluation."""
        return self.evaluations[self.own_seed]

    def record(self) -> dict[str, Any]:
        """JSON-able: ``dataset``, ``model``, ``available``, ``reason``, ``split`` and, with a ground truth,
        ``pair_seed``, ``alpha``, ``area`` and :func:`seeds_record`'s keys."""
        head = {"dataset": self.dataset, "model": self.model_name, "available": self.available, "reason": self.reason,
                "split": self.split}
        if not self.available:
            return head
        return {**head, "pair_seed": int(self.pair_seed), "alpha": float(self.alpha), "area": float(self.area),
                **seeds_record(self.evaluations, self.own_seed)}
