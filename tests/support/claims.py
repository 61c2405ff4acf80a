"""Helpers of the claims tests: a check's result read as a verdict, and its criterion read on the estimates."""
from __future__ import annotations

from shortcut_nb.claims import Verdict, as_verdict

__all__ = ["as_verdict", "astuple_verdict", "point_holds"]


def point_holds(result: Verdict | tuple[str, bool]) -> bool:
    """Whether every effect's estimate (the mean over seeds, or the one run) lies on the paper's side of its
    threshold: the claim's criterion, before the intervals decide (a hand-made one-run record has no interval, so
    its verdict is undecided whatever the numbers). A verdict without effects: its ``holds``."""
    v = as_verdict(result)
    if not v.effects:
        return v.holds
    return all(e.value is not None and (e.value > e.threshold if e.side == "above" else e.value < e.threshold)
               for e in v.effects)


def astuple_verdict(result: Verdict | tuple[str, bool]) -> tuple[str, bool]:
    """``(ours, criterion met on the estimates)`` of a check's result (:func:`point_holds`)."""
    return as_verdict(result).ours, point_holds(result)
