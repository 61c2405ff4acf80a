"""What notebook 04 records (``04_entanglement.json``): the payload builder and the record's keys, declared once.

Top-level headline keys (:data:`HEADLINE`) are the CNN on the Waterbirds-like set (or the first model present);
``table`` holds each model's aggregate over seeds (:func:`~.study.aggregate_runs` plus ``dataset``, ``arch``,
``model``, ``seeds``), ``runs`` each model's per-seed runs (the per-neuron arrays of the C sweep left out),
``notes`` DFR's fallback notes and ``runs`` the context's run log (cached runs trained and loaded, as every
notebook records it); the per-seed analyses are under ``per_seed``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # the record is built from the study's results; claims import this module and read JSON only
    from .study import ModelResults

NAME = "04_entanglement"

#: The headline: record key -> (head of the headline model's summary, key in it).
HEADLINE: dict[str, tuple[str, str]] = {
    "wga_baseline": ("baseline", "wga"),
    "wga_dfr": ("dfr", "wga"),
    "prune_h_refits": ("dfr", "prune_h_refits"),
    "prune_h_average": ("dfr", "prune_h_average"),
    "mean_s_baseline": ("baseline", "mean_s"),
    "mean_s_dfr": ("dfr", "mean_s_refits"),
}
KEYS = ("profile", "seconds", "settings", "headline", *HEADLINE, "table", "per_seed", "notes", "runs")
#: The model whose numbers are the headline, when present.
HEADLINE_MODEL = "waterbirds/cnn"
#: Per-neuron arrays left out of the sweep's entries.
SWEEP_DROPPED = ("kept", "keep_frequency")


def c_key(C: float) -> str:
    """The string key of a C value in results and JSON: ``1.0 -> "1"``, ``0.07 -> "0.07"``."""
    return f"{float(C):g}"


def _slim_run(run: Mapping) -> dict:
    out = dict(run)
    out["sweep"] = {c: {k: v for k, v in e.items() if k not in SWEEP_DROPPED} for c, e in run["sweep"].items()}
    return out


def payload(results: Mapping[str, "ModelResults"], *, profile: str, seconds: float, settings: Mapping,
            run_log: Mapping | None = None, weights: str | Mapping[str, str] | None = None) -> dict:
    """The numbers notebook 04 records (see the module docstring for the keys)."""
    head_key = HEADLINE_MODEL if HEADLINE_MODEL in results else next(iter(results))
    sm = results[head_key].summary
    out = {
        "profile": profile,
        "seconds": float(seconds),
        "settings": dict(settings),
        "headline": head_key,
        **{key: sm[head][name] for key, (head, name) in HEADLINE.items()},
        "table": {k: {"dataset": r.dataset, "arch": r.arch, "model": r.model, "seeds": list(r.seeds), **r.summary}
                  for k, r in results.items()},
        "per_seed": {k: [_slim_run(run) for run in r.runs] for k, r in results.items()},
        "notes": sorted({n for r in results.values() for n in r.summary["notes"]}),
    }
    if run_log is not None:
        out["runs"] = dict(run_log)
    if weights is not None:
        out["weights"] = weights if isinstance(weights, str) else dict(weights)
    return out
