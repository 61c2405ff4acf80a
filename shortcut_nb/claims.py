"""What a paper claim is, and the registry each section's ``claims`` module adds its claims to.

A claim is a function of the recorded JSON of one notebook (``<name>.json`` in
the runner's output folder) returning our numbers and whether the paper's
finding holds there. :mod:`shortcut_nb.report.claims` imports every section's
claims and writes the report; a claim whose notebook did not run is listed as
"not run", never silently dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from .intervals import LEVEL, t_interval
from .vocab import DATASET_LABELS, DETECTOR_LABELS, SCOPE_LABELS


Side = Literal["above", "below"]
Outcome = Literal["holds", "fails", "undecided"]
#: The verdict of a row whose effect has no interval: one seed, and no within-seed bootstrap recorded.
NO_INTERVAL = "undecided (one seed, no interval)"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


@dataclass(frozen=True)
class Effect:
    """One effect a claim is decided on: a number in the paper's unit, measured once per seed, with its interval.

    Attributes:
        name: what is measured, in words (e.g. ``ΔWGA of DFR, Waterbirds-like CNN``).
        unit: the unit the paper uses (``ΔWGA``, ``mean s-score``, ``AUROC``, ...).
        threshold: the claim's threshold on the effect.
        per_seed: the effect of each trained seed (one entry: one run; None: not measured for that seed).
        side: the paper's side of the threshold (``above``: the claim needs effect > threshold).
        paper: the paper's value of the same effect (None: the paper gives none).
        within: each seed's own 95 % bootstrap interval over samples ``(low, high)`` (None where not recorded).
        level: the intervals' coverage.

    The effect's ``value`` is the mean over the seeds measured; its interval (``low``, ``high``) is the
    Student-t interval over them (:func:`shortcut_nb.intervals.t_interval`) with two seeds or more, else the one
    seed's bootstrap interval, else none.
    """

    name: str
    unit: str
    threshold: float
    per_seed: tuple[float | None, ...]
    side: Side = "above"
    paper: float | None = None
    within: tuple[tuple[float, float] | None, ...] = ()
    level: float = LEVEL

    def __post_init__(self):
        if self.side not in ("above", "below"):
            raise ValueError(f"Effect {self.name!r}: side must be 'above' or 'below', got {self.side!r}")
        if self.within and len(self.within) != len(self.per_seed):
            raise ValueError(f"Effect {self.name!r}: within has {len(self.within)} intervals for "
                             f"{len(self.per_seed)} seeds; pass one per seed (None where not recorded)")

    @property
    def seeds(self) -> tuple[float, ...]:
        """The seeds' effects that were measured."""
        return tuple(float(v) for v in self.per_seed if _finite(v))

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def interval_kind(self) -> str | None:
        """``t over n seeds``, ``bootstrap within the seed`` or None (no interval)."""
        if self.n_seeds >= 2:
            return f"t over {self.n_seeds} seeds"
        one = next((w for v, w in zip(self.per_seed, self.within) if _finite(v)), None)
        return "bootstrap within the seed" if one is not None and all(_finite(b) for b in one) else None

    @property
    def estimate(self) -> tuple[float | None, float | None, float | None]:
        """``(value, low, high)`` (None where unknown)."""
        if self.n_seeds == 0:
            return None, None, None
        if self.n_seeds >= 2:
            return t_interval(self.seeds, level=self.level)
        value = self.seeds[0]
        if self.interval_kind is None:
            return value, None, None
        low, high = next(w for v, w in zip(self.per_seed, self.within) if _finite(v))
        return value, float(low), float(high)

    @property
    def value(self) -> float | None:
        return self.estimate[0]

    @property
    def low(self) -> float | None:
        return self.estimate[1]

    @property
    def high(self) -> float | None:
        return self.estimate[2]

    @property
    def outcome(self) -> Outcome:
        """*holds*: the interval lies wholly on the paper's side of the threshold; *fails*: wholly on the other side;
        *undecided*: it covers the threshold, or there is no interval."""
        _, low, high = self.estimate
        if low is None or high is None:
            return "undecided"
        above, below = low > self.threshold, high < self.threshold
        if self.side == "above":
            return "holds" if above else "fails" if below else "undecided"
        return "holds" if below else "fails" if above else "undecided"

    @property
    def margin(self) -> float | None:
        """How far the interval's end nearest the threshold lies on the paper's side of it (negative: on the other
        side or covering it); None without an interval."""
        _, low, high = self.estimate
        if low is None or high is None:
            return None
        return low - self.threshold if self.side == "above" else self.threshold - high

    def room(self) -> float:
        """The margin in units of the interval's half-width (how many half-widths clear the threshold); the
        part of a claim with the least room is the one that decides it."""
        value, low, high = self.estimate
        if low is None or high is None:
            return -math.inf
        half = max((high - low) / 2, 1e-12)
        return (value - self.threshold) / half * (1 if self.side == "above" else -1)

    def record(self) -> dict[str, Any]:
        """The JSON-able effect (the report's ``effect`` column)."""
        value, low, high = self.estimate
        return {"name": self.name, "unit": self.unit, "value": value, "low": low, "high": high,
                "interval": self.interval_kind, "paper": self.paper, "threshold": self.threshold, "side": self.side,
                "n_seeds": self.n_seeds, "per_seed": [None if not _finite(v) else float(v) for v in self.per_seed],
                "within": [None if w is None else [float(w[0]), float(w[1])] for w in self.within],
                "outcome": self.outcome}

    def text(self, digits: int = 2) -> str:
        """``ΔWGA of DFR: +0.31 [0.22, 0.40] (t over 3 seeds; paper +0.36; needs > 0.10)``."""
        value, low, high = self.estimate
        f = f"{{:+.{digits}f}}" if self.unit.startswith("Δ") or self.threshold == 0 else f"{{:.{digits}f}}"
        shown = "n/a" if value is None else f.format(value)
        if low is not None:
            shown += f" [{f.format(low)}, {f.format(high)}]"
        how = self.interval_kind or ("one seed, no interval" if value is not None else "not measured")
        paper = "no paper value" if self.paper is None else f"paper {f.format(self.paper)}"
        needs = f"needs {'>' if self.side == 'above' else '<'} {f.format(self.threshold)}"
        return f"{self.name}: {shown} {self.unit} ({how}; {paper}; {needs})"


@dataclass(frozen=True)
class Verdict:
    """What a claim's check finds in a notebook's record.

    Attributes:
        ours: our numbers, in words.
        holds: the paper's statement holds (with ``effects``: every effect's interval lies on the paper's side).
        per_seed: whether each seed alone is on the paper's side (empty: one run, nothing to split).
        margin: how far the deciding number lies from the criterion's threshold, signed so that a positive margin
            means "holds with room" (None where there is no interval).
        decided: False when the evidence settles neither way; the label is then ``undecided`` and ``holds`` False.
        effects: the effects the claim is decided on (:func:`decide_effects`); the first is the one that decides.
    """

    ours: str
    holds: bool
    per_seed: tuple[bool, ...] = ()
    margin: float | None = None
    decided: bool = True
    effects: tuple[Effect, ...] = ()

    @property
    def effect(self) -> Effect | None:
        """The effect that decides the row (the failing one, else the undecided one, else the one with least room)."""
        return self.effects[0] if self.effects else None

    @property
    def label(self) -> str:
        """With effects: ``holds`` / ``fails`` / ``undecided`` (``undecided (one seed, no interval)`` when the
        deciding effect has no interval, ``undecided (not measured)`` when no seed measured it). Without: ``yes`` /
        ``no``, ``mixed (k of n seeds)`` when a seed disagrees."""
        if self.effects:
            if self.decided:
                return "holds" if self.holds else "fails"
            first = self.effects[0]
            if first.n_seeds == 0:
                return "undecided (not measured)"
            return NO_INTERVAL if first.interval_kind is None else "undecided"
        if not self.decided:
            return "undecided"
        base = "yes" if self.holds else "no"
        if not self.per_seed or all(s == self.holds for s in self.per_seed):
            return base
        return f"mixed ({sum(self.per_seed)} of {len(self.per_seed)} seeds)"

    def summary(self) -> str:
        """The label with the deciding effect and its interval (for takeaways), e.g.
        ``undecided: ΔWGA after zeroing ...: +0.01 [-0.03, 0.05] ΔWGA (t over 3 seeds; ...)``."""
        if self.effects:
            return f"{self.label}: {self.effects[0].text()}"
        return self.label + ("" if self.margin is None else f", margin {self.margin:+.2f}")


def decide_effects(ours: str, effects: Sequence[Effect]) -> Verdict:
    """A verdict from the effects a claim rests on: it *holds* when every effect's interval lies on the paper's
    side of its threshold, *fails* when one lies wholly on the other side, and is *undecided* otherwise. The effect
    that decides comes first in ``effects`` of the verdict: a failing one, else an undecided one (one without an
    interval first, the one farthest on the wrong side of its threshold), else the one with least room
    (:meth:`Effect.room`)."""
    if not effects:
        raise ValueError("decide_effects needs at least one Effect")
    order = {"fails": 0, "undecided": 1, "holds": 2}

    def rank(e: Effect) -> tuple[int, bool, float]:
        # without an interval, the effect whose estimate lies farthest on the other side of its threshold
        far = math.inf if e.value is None else (e.value - e.threshold) * (1 if e.side == "above" else -1)
        return order[e.outcome], e.interval_kind is not None, e.room() if e.interval_kind is not None else far

    ranked = tuple(sorted(effects, key=rank))
    outcomes = {e.outcome for e in effects}
    holds = outcomes == {"holds"}
    n = min(len(e.per_seed) for e in effects)
    per_seed = tuple(all(_finite(e.per_seed[s]) and (float(e.per_seed[s]) > e.threshold if e.side == "above"
                                                     else float(e.per_seed[s]) < e.threshold) for e in effects)
                     for s in range(n)) if n > 1 else ()
    return Verdict(ours=ours, holds=holds, per_seed=per_seed, margin=ranked[0].margin,
                   decided=holds or "fails" in outcomes, effects=ranked)


def measured(name: str, unit: str, threshold: float, measure: Callable[[Any], float | None], mean: Any,
             seeds: Sequence[Any] = (), *, side: Side = "above", paper: float | None = None,
             within: Callable[[Any], tuple[float, float] | None] | None = None) -> Effect:
    """An :class:`Effect` read off record views: ``measure(view)`` on each seed's view (``seeds``), or on ``mean``
    (the one run) when none is recorded; ``within(view)``: that view's bootstrap interval over samples, if any."""
    views = list(seeds) if seeds else [mean]
    values = tuple(measure(v) for v in views)
    return Effect(name=name, unit=unit, threshold=threshold, per_seed=values, side=side, paper=paper,
                  within=tuple(within(v) for v in views) if within is not None else ())


def verdict_lines(checks: Sequence[tuple[str, Verdict]]) -> list[str]:
    """Takeaway lines of a section's verdicts: each reading's label, then, for each reading that does not hold,
    the measured effect that decides it with its interval (:meth:`Effect.text`)."""
    lines = ["- The paper's readings, decided on each effect's 95 % interval: "
             + "; ".join(f"{what}: {v.label}" for what, v in checks) + "."]
    for what, v in checks:
        if not v.holds and v.effect is not None:
            lines.append(f"  {what} ({v.label}) is decided by {v.effect.text()}.")
    return lines


def as_verdict(result: "Verdict | tuple[str, bool]") -> Verdict:
    """A check's result as a :class:`Verdict` (checks may return ``(ours, holds)``)."""
    if isinstance(result, Verdict):
        return result
    ours, holds = result
    return Verdict(ours=ours, holds=bool(holds))


@dataclass(frozen=True)
class Claim:
    id: str
    notebook: str
    claim: str
    paper: str
    check: Callable[[dict], "Verdict | tuple[str, bool]"]  # recorded JSON -> verdict


CLAIMS: list[Claim] = []


def claim(id: str, notebook: str, text: str, paper: str):
    def register(fn):
        CLAIMS.append(Claim(id=id, notebook=notebook, claim=text, paper=paper, check=fn))
        return fn

    return register


#: How claims name the metrics of a detector against the ground truth.
METRIC_NAMES = {"spearman": "Spearman", "auroc": "AUROC", "precision_at_k": "precision@k"}
#: The paper column of a claim the paper does not make (the detectors against a counterfactual ground truth).
NO_PAPER_VALUE = "not in the paper (no paper value): measured here against a counterfactual ground truth"


def interval_text(entry: Mapping[str, float | None] | None, digits: int = 2) -> str:
    """``0.73 [0.61, 0.82]`` of a recorded ``{"value", "low", "high"}`` (``n/a`` where undefined)."""
    if entry is None or entry.get("value") is None:
        return "n/a"
    if entry.get("low") is None or entry.get("high") is None:
        return f"{entry['value']:.{digits}f}"
    return f"{entry['value']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def recorded_interval(pair: Sequence[float | None] | None) -> tuple[float, float] | None:
    """A recorded within-seed ``[low, high]`` as a tuple (None: not recorded, e.g. an older record, or undefined)."""
    return None if pair is None or not (_finite(pair[0]) and _finite(pair[1])) else (float(pair[0]), float(pair[1]))


def _within(entry: Mapping[str, float | None]) -> tuple[float, float] | None:
    low, high = entry.get("low"), entry.get("high")
    return None if not (_finite(low) and _finite(high)) else (float(low), float(high))


def detector_effect(entry: Mapping[str, Any], key: str, *, dataset: str, metric: str = "auroc",
                    threshold: float = 0.5) -> Effect:
    """Detector ``key``'s ``metric`` against the counterfactual ground truth on one dataset's recorded entry, as an
    :class:`Effect`: one value per evaluated seed, each with its bootstrap interval over neurons; no paper value."""
    seeds = entry["per_seed"] if entry["n_seeds"] > 1 else [{"table": entry["table"]}]
    metrics = [s["table"][key][metric] for s in seeds]
    return Effect(name=f"{DETECTOR_LABELS.get(key, key)} vs the ground truth, {DATASET_LABELS.get(dataset, dataset)}",
                  unit=METRIC_NAMES.get(metric, metric), threshold=threshold,
                  per_seed=tuple(m["value"] for m in metrics), within=tuple(_within(m) for m in metrics))


def detector_verdict(entries: Mapping[str, Mapping[str, Any]], key: str, *, dataset: str, metric: str = "auroc",
                     threshold: float = 0.5) -> Verdict:
    """A neuron detector's ``metric`` against the counterfactual ground truth exceeds ``threshold``, decided on
    ``dataset``'s recorded entry (notebooks 03 and 06, ``detectors.<dataset>``) by :func:`decide_effects`: on
    the t-interval over seeds where several seeds were evaluated, else on the one model's bootstrap interval over
    neurons. ``ours`` also gives the other datasets' numbers."""
    labels = DATASET_LABELS
    entry = entries[dataset]
    if not entry["available"]:
        return Verdict(ours=f"{labels.get(dataset, dataset)}: no ground truth ({entry['reason']})", holds=False,
                       decided=False)
    parts = []
    for name, e in entries.items():
        if not e["available"]:
            continue
        text = (f"{labels.get(name, name)}: {METRIC_NAMES.get(metric, metric)} "
                f"{interval_text(e['table'][key][metric])} over neurons")
        if e["n_seeds"] > 1:
            text += (f"; mean over {e['n_seeds']} seeds {interval_text(e['seeds'][key][metric])}; per seed "
                     + " / ".join(interval_text(s["table"][key][metric]) for s in e["per_seed"]))
        parts.append(text + f" ({e['n_spurious']} of {e['n_neurons']} neurons spurious, {e['n_pairs']} pairs)")
    effect = detector_effect(entry, key, dataset=dataset, metric=metric, threshold=threshold)
    return decide_effects("; ".join(parts), [effect])


#: What each detector's claim states (``{model}``: the architecture); the s-score first, as the paper's detector.
DETECTOR_CLAIM_TEXTS = {
    "sscore": "The {model}'s s-score ranks the neurons the spurious attribute moves most (spurious share > 0.5) above "
              "the rest: AUROC > 0.5 (95 % interval above 0.5)",
    "group_gap": "The mask-free group gap (attribute labels, no masks) ranks the {model}'s spurious neurons above the "
                 "rest: AUROC > 0.5",
    "spuriosity": "The mask-free spuriosity gap (class labels only) ranks the {model}'s spurious neurons above the "
                  "rest: AUROC > 0.5",
}


def detector_claims(prefix: str, notebook: str, model: str, *, dataset: str) -> None:
    """Register the claims ``<prefix>.<detector>`` of :data:`DETECTOR_CLAIM_TEXTS`: each detector ranks the
    spurious neurons above the rest (:func:`detector_verdict` on ``dataset``'s entry of the record's
    ``detectors``); no paper value."""
    for key, text in DETECTOR_CLAIM_TEXTS.items():
        def check(rec: dict, key: str = key) -> Verdict:
            return detector_verdict(rec["detectors"], key, dataset=dataset)

        claim(f"{prefix}.{key}", notebook, text.format(model=model), NO_PAPER_VALUE)(check)


def detector_lines(entries: Mapping[str, Mapping[str, Any]], model: str) -> list[str]:
    """Takeaway lines of the detectors against the counterfactual ground truth (notebooks 03 and 06): per dataset,
    each detector's Spearman and AUROC with their intervals, and which detectors survive randomisation."""
    lines = []
    for name, e in entries.items():
        label = DATASET_LABELS.get(name, name)
        if not e["available"]:
            lines.append(f"- Detectors, {label}: no ground truth ({e['reason']}).")
            continue
        lines.append(f"- {model} detectors vs the counterfactual ground truth, {label} ({e['n_pairs']} validation "
                     f"pairs, {e['n_spurious']} of {e['n_neurons']} neurons with spurious share > {e['threshold']:g}): "
                     + "; ".join(f"{DETECTOR_LABELS.get(k, k)} Spearman {interval_text(m['spearman'])}, AUROC "
                                 f"{interval_text(m['auroc'])}" for k, m in e["table"].items()) + ".")
        kept = [f"{DETECTOR_LABELS.get(k, k)} ({SCOPE_LABELS.get(scope, scope)})"
                for scope, table in e["randomised"].items() for k, m in table.items() if any(m["survives"].values())]
        lines.append("  Randomisation check: " + ("every detector falls to chance when the weights are re-drawn."
                                                  if not kept else "still off chance with re-drawn weights: "
                                                  + ", ".join(kept) + " (reads the data or the architecture, not "
                                                  "only the trained weights)."))
    return lines
