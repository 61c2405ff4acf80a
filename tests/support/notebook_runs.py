"""Helpers for tests that read what a notebook of the session's smoke run recorded."""
from __future__ import annotations

import json
import math


def recorded(smoke_run, name: str) -> dict:
    """The JSON a notebook recorded in the session's smoke run (fails with the notebook's error if it failed)."""
    out, results = smoke_run
    assert name in results, f"{name} was not run"
    result = results[name]
    assert result.ok, f"{name} failed:\n{result.error}"
    assert (out / f"{name}.ipynb").is_file()
    return json.loads((out / f"{name}.json").read_text())


def unit(x) -> bool:
    """A finite number in [0, 1]."""
    return isinstance(x, (int, float)) and not math.isnan(x) and 0.0 <= x <= 1.0
