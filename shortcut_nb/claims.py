"""What a paper claim is, and the registry each section's ``claims`` module adds its claims to.

A claim is a function of the recorded JSON of one notebook (``<name>.json`` in
the runner's output folder) returning our numbers and whether the paper's
finding holds there. :mod:`shortcut_nb.report.claims` imports every section's
claims and writes the report; a claim whose notebook did not run is listed as
"not run", never silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Claim:
    id: str
    notebook: str
    claim: str
    paper: str
    check: Callable[[dict], tuple[str, bool]]  # recorded JSON -> (ours, holds)


CLAIMS: list[Claim] = []


def claim(id: str, notebook: str, text: str, paper: str):
    def register(fn):
        CLAIMS.append(Claim(id=id, notebook=notebook, claim=text, paper=paper, check=fn))
        return fn

    return register
