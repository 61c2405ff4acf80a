"""What notebook 02 records (``02_latent_space.json``): the payload builder and the record's keys, declared once."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the record reads the source's log only; claims import this module without torch
    from .study import LatentSource

NAME = "02_latent_space"
HEADLINE = "waterbirds/cnn"  # the headline model/dataset (its key on the claim split), else the first result
KEYS = ("profile", "seconds", "headline", "purity", "baseline", "lift", "p_value", "claim_split", "k", "n_shuffles",
        "tsne_backend", "neighbourhoods", "features", "projection_seconds", "feature_cache_dir", "runs", "weights",
        "neighbourhoods_per_seed")


def projection_seconds(source: LatentSource) -> dict[str, dict[str, float]]:
    """Compute time of each projection in ``source.log`` (taken from the cache when it was loaded), keyed
    ``"<dataset>/<arch>/<split>"`` then method, plus ``n``."""
    out: dict[str, dict] = {}
    for row in source.log:
        if row["what"] == "projection":
            entry = out.setdefault(f"{row['dataset']}/{row['arch']}/{row['split']}", {"n": row["n"]})
            entry[row["method"]] = row["seconds"]
            entry[f"{row['method']}_from_cache"] = row["from_cache"]
    return out


def clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def payload(results: Mapping[str, Mapping], source: LatentSource, *, profile: str, seconds: float,
            runs: Mapping[str, int] | None = None, weights: str | Mapping[str, str] | None = None,
            claim_split: str = "train", per_seed: Mapping[str, list] | None = None) -> dict:
    """The numbers notebook 02 records (keys :data:`KEYS`).

    Top-level ``purity``/``baseline``/``lift``/``p_value`` are the headline: within-class attribute purity of the
    CNN on the Waterbirds-like training set (or the first result present). ``features`` says what was extracted
    now vs loaded from the cache (a second run extracts nothing), ``projection_seconds`` what each projection
    cost to compute, ``runs`` what the context trained and loaded (``ctx.run_log.as_record()``),
    ``neighbourhoods_per_seed`` each seed's purity on the claim split (:func:`~.study.seed_neighbourhoods`; the
    claim is decided over them).
    """
    head_key = f"{HEADLINE}/{claim_split}"
    head_key = head_key if head_key in results else next(iter(results))
    head = results[head_key]["attribute"]
    feature_rows = [row for row in source.log if row["what"] == "features"]
    first = next(iter(results.values())) if results else None
    values = {
        "profile": profile,
        "seconds": seconds,
        "headline": head_key,
        "purity": head["purity"], "baseline": head["baseline"], "lift": head["lift"], "p_value": head["p_value"],
        "claim_split": claim_split,
        "k": first["k"] if first else None,
        "n_shuffles": first["n_shuffles"] if first else None,
        "tsne_backend": source.tsne_backend,
        "neighbourhoods": dict(results),
        "features": {
            "n_requested": len(feature_rows),
            "n_extracted": sum(not r["from_cache"] for r in feature_rows),
            "n_from_cache": sum(bool(r["from_cache"]) for r in feature_rows),
            "seconds": sum(r["seconds"] for r in feature_rows),
            "items": feature_rows,
        },
        "projection_seconds": projection_seconds(source),
        "feature_cache_dir": str(source.cache_dir),
        "runs": dict(runs or {}),
        "weights": weights if weights is None or isinstance(weights, str) else dict(weights),
        "neighbourhoods_per_seed": {key: [dict(e) for e in entries] for key, entries in (per_seed or {}).items()},
    }
    return clean({key: values[key] for key in KEYS})
