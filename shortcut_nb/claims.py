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
from typing import Any, Callable, Mapping, Sequence

from .vocab import DATASET_LABELS, DETECTOR_LABELS, SCOPE_LABELS


@dataclass(frozen=True)
class Verdict:
    """What a claim's check finds in a notebook's record.

    Attributes:
        ours: our numbers, in words.
        holds: the paper's statement, checked on the mean over seeds (the table the paper reports).
        per_seed: the same criterion checked on each seed's numbers alone (empty: one run, nothing to split).
        margin: how far the deciding number lies from the criterion's threshold, signed so that a positive margin
            means "holds with room" (None where a criterion has no single threshold).
        decided: False when the evidence settles neither way (an effect whose interval covers the threshold:
            :func:`decide_interval`); the label is then ``undecided`` and ``holds`` is False.
    """

    ours: str
    holds: bool
    per_seed: tuple[bool, ...] = ()
    margin: float | None = None
    decided: bool = True

    @property
    def label(self) -> str:
        """``yes`` / ``no`` when every seed agrees with the mean, else ``mixed (k of n seeds)``; ``undecided`` when
        the evidence settles neither way (with how many seeds held alone, when there are several)."""
        if not self.decided:
            return "undecided" + (f" ({sum(self.per_seed)} of {len(self.per_seed)} seeds hold alone)"
                                  if self.per_seed else "")
        base = "yes" if self.holds else "no"
        if not self.per_seed or all(s == self.holds for s in self.per_seed):
            return base
        return f"mixed ({sum(self.per_seed)} of {len(self.per_seed)} seeds)"

    def summary(self) -> str:
        """The label with the margin, e.g. ``mixed (2 of 3 seeds), margin +0.03`` (for takeaways)."""
        return self.label + ("" if self.margin is None else f", margin {self.margin:+.2f}")


def decide(ours: str, margin_of: Callable[[Any], float], mean: Any, seeds: Sequence[Any] = ()) -> Verdict:
    """A verdict from one criterion written as a margin (>= 0: holds), checked on the mean and on each seed.

    ``margin_of(view)`` reads a record view (the mean over seeds, or one seed's numbers) and returns how far it
    lies from the criterion's threshold; with one seed or none, ``per_seed`` stays empty.
    """
    margin = float(margin_of(mean))
    per_seed = tuple(float(margin_of(view)) >= 0 for view in seeds) if len(seeds) > 1 else ()
    return Verdict(ours=ours, holds=margin >= 0, per_seed=per_seed, margin=margin)


def decide_interval(ours: str, interval: Sequence[float | None], threshold: float,
                    seeds: Sequence[Sequence[float | None]] = ()) -> Verdict:
    """A verdict on "the effect exceeds ``threshold``" from an estimate and its interval ``(value, low, high)``.

    It holds when the interval's lower end is above ``threshold``, fails when its upper end is below it, and is
    undecided when the interval covers it (or is unknown: None / NaN ends). ``seeds``: each seed's own
    ``(value, low, high)``, decided by the same rule (``per_seed``: whether each seed alone holds). The margin is
    ``low - threshold`` (positive: holds with room).
    """
    _, low, high = (math.nan if v is None else float(v) for v in interval)
    known = math.isfinite(low) and math.isfinite(high)
    holds = known and low > threshold
    decided = holds or (known and high < threshold)
    per_seed = tuple(s[1] is not None and math.isfinite(float(s[1])) and float(s[1]) > threshold
                     for s in seeds) if len(seeds) > 1 else ()
    return Verdict(ours=ours, holds=holds, per_seed=per_seed, margin=low - threshold if known else None,
                   decided=decided)


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


def _triple(entry: Mapping[str, float | None]) -> tuple[float | None, float | None, float | None]:
    return entry["value"], entry["low"], entry["high"]


def detector_verdict(entries: Mapping[str, Mapping[str, Any]], key: str, *, dataset: str, metric: str = "auroc",
                     threshold: float = 0.5) -> Verdict:
    """A neuron detector's ``metric`` against the counterfactual ground truth exceeds ``threshold``, decided on
    ``dataset``'s recorded entry (notebooks 03 and 06, ``detectors.<dataset>``) by :func:`decide_interval`: on
    the mean over seeds and its t-interval where several seeds were evaluated (each seed decided on its own
    bootstrap interval over neurons), else on the one model's bootstrap interval. ``ours`` also gives the other
    datasets' numbers."""
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
    seeds = [_triple(s["table"][key][metric]) for s in entry["per_seed"]] if entry["n_seeds"] > 1 else []
    deciding = entry["seeds"][key][metric] if entry["n_seeds"] > 1 else entry["table"][key][metric]
    return decide_interval("; ".join(parts), _triple(deciding), threshold, seeds)


def detector_claim(prefix: str, notebook: str, key: str, text: str, *, dataset: str):
    """Register the claim ``<prefix>.<key>``: detector ``key`` ranks the spurious neurons above the rest
    (:func:`detector_verdict` on ``dataset``'s entry of the record's ``detectors``); no paper value."""
    @claim(f"{prefix}.{key}", notebook, text, NO_PAPER_VALUE)
    def check(rec: dict) -> Verdict:
        return detector_verdict(rec["detectors"], key, dataset=dataset)

    return check


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
