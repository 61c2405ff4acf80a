"""Helpers of the claims tests: a check's result read as a verdict."""
from __future__ import annotations

from shortcut_nb.claims import Verdict, as_verdict

__all__ = ["as_verdict", "astuple_verdict"]


def astuple_verdict(result: Verdict | tuple[str, bool]) -> tuple[str, bool]:
    """``(ours, holds)`` of a check's result."""
    v = as_verdict(result)
    return v.ours, v.holds
