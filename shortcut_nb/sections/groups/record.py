"""What notebook 01 records (``01_groups.json``): the payload builder and the record's keys, declared once.

Top-level ``avg``/``wga``/``gap``/``groups`` (:data:`HEADLINE`) are the headline run: the CNN on the
Waterbirds-like set at the default minority ratio (or the first row present). ``table2`` holds each model's
aggregate over seeds with ``model``, ``dataset`` and ``arch``; ``table2_per_seed`` each seed's summary;
``sweep`` each minority ratio's aggregate with ``ratio``, ``sweep_per_seed`` each seed's summary at each ratio
(the claims decide per seed too) with its bootstrap intervals over test images (:data:`SWEEP_INTERVAL_KEYS`,
absent from older records); ``runs`` the context's run log (cached runs trained
and loaded); ``weights`` what the models started from (``"random (dry run)"`` in a dry run without ImageNet
weights).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the record is built from the study's results; claims import this module and read JSON only
    from .study import GroupResult, SweepPoint

NAME = "01_groups"
#: The headline model, when present.
HEADLINE_MODEL = "waterbirds/cnn"
#: The headline model's numbers copied to the top level.
HEADLINE = ("avg", "wga", "gap", "groups")
KEYS = ("profile", "seconds", "headline", *HEADLINE, "table2", "table2_per_seed", "sweep", "sweep_per_seed", "runs",
        "weights")
#: A sweep seed's intervals (:func:`~.study.sweep_intervals`): the minority accuracy, the weaker majority group, and
#: ``{"<next higher ratio>": [low, high]}`` of the minority accuracy's fall from that ratio.
SWEEP_INTERVAL_KEYS = ("minority_interval", "majority_interval", "minority_fall_interval")
#: The paper's minority groups (G1, G2: each class on the other background) and majority groups (G0, G3).
MINORITY_GROUPS = (1, 2)
MAJORITY_GROUPS = (0, 3)


def table2_row(r: "GroupResult") -> dict[str, Any]:
    """A Table 2 row as recorded: the aggregate, then ``model``, ``dataset``, ``arch``."""
    return {**r.aggregate, "model": r.model, "dataset": r.dataset, "arch": r.arch, "group_names": list(r.names),
            "worst_group": r.worst_group}


def sweep_row(p: "SweepPoint") -> dict[str, Any]:
    """A Table 3 row as recorded: the aggregate, then ``ratio``."""
    return {**p.aggregate, "ratio": p.ratio}


def per_seed(results: Mapping[str, "GroupResult | SweepPoint"]) -> dict[str, list[Mapping[str, Any]]]:
    """Each row's per-seed summaries as recorded: ``table2_per_seed`` of Table 2's results, ``sweep_per_seed`` of
    the sweep's (``{}`` for no row)."""
    return {k: list(r.per_seed) for k, r in results.items()}


def payload(table2: Mapping[str, "GroupResult"], sweep: Mapping[str, "SweepPoint"], *, profile: str,
            seconds: float, runs: Mapping[str, int] | None = None,
            weights: str | Mapping[str, str] | None = None) -> dict[str, Any]:
    """The numbers notebook 01 records (see the module docstring for the keys)."""
    headline_key = HEADLINE_MODEL if HEADLINE_MODEL in table2 else next(iter(table2), None)
    head = table2[headline_key].aggregate if headline_key is not None else {key: None for key in HEADLINE}
    out = {
        "profile": profile,
        "seconds": seconds,
        "headline": headline_key,
        **{key: head[key] for key in HEADLINE},
        "table2": {k: table2_row(r) for k, r in table2.items()},
        "table2_per_seed": per_seed(table2),
        "sweep": {k: sweep_row(p) for k, p in sweep.items()},
        "sweep_per_seed": per_seed(sweep),
    }
    if runs is not None:
        out["runs"] = dict(runs)
    if weights is not None:
        out["weights"] = weights if isinstance(weights, str) else dict(weights)
    return out
