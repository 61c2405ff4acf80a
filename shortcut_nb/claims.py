"""What a paper claim is, and the registry each section's ``claims`` module adds its claims to.

A claim is a function of the recorded JSON of one notebook (``<name>.json`` in
the runner's output folder) returning our numbers and whether the paper's
finding holds there. :mod:`shortcut_nb.report.claims` imports every section's
claims and writes the report; a claim whose notebook did not run is listed as
"not run", never silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Verdict:
    """What a claim's check finds in a notebook's record.

    Attributes:
        ours: our numbers, in words.
        holds: the paper's statement, checked on the mean over seeds (the table the paper reports).
        per_seed: the same criterion checked on each seed's numbers alone (empty: one run, nothing to split).
        margin: how far the deciding number lies from the criterion's threshold, signed so that a positive margin
            means "holds with room" (None where a criterion has no single threshold).
    """

    ours: str
    holds: bool
    per_seed: tuple[bool, ...] = ()
    margin: float | None = None

    @property
    def label(self) -> str:
        """``yes`` / ``no`` when every seed agrees with the mean, else ``mixed (k of n seeds)``."""
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
