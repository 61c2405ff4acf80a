"""What notebook 05 records (``05_subnetworks.json``): the payload builder and the record's keys, declared once.

Top-level headline keys (Fig. 6): ``wga_before``, ``wga_after``, ``avg_before``, ``avg_after``,
``mean_s_before``, ``mean_s_after``, ``mean_s_used_before``, ``mean_s_used_after``, ``prune_h``,
``prune_f``; ``prusc`` is :func:`prusc_entry`, ``removal`` maps each dataset to :func:`removal_entry`
(subnetworks keyed by :func:`subnet_key`); ``mask_seconds`` / ``mask_steps`` give the training time
and steps of each mask (``prusc`` and ``<dataset>/<subnet key>``); ``runs`` the context's run log; ``per_seed``
each seed's claim numbers (:func:`seed_record`).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # the record is built from the study's results; claims import this module and read JSON only
    from .study import MaskFacts, PruscResult, RemovalResult

NAME = "05_subnetworks"
#: The paper's Fig. 7 masks keep 80 % of the weights.
PAPER_KEEP = 0.8
#: The dataset Fig. 7's claim is decided on (the paper's ISIC); the others are shown, not re-run per seed.
CLAIM_DATASET = "isic"

#: Fig. 6's headline keys: record key -> (side of the ``prusc`` entry, key path in that side).
HEADLINE: dict[str, tuple[str, tuple[str, ...]]] = {
    "wga_before": ("baseline", ("wga",)),
    "wga_after": ("prusc", ("wga",)),
    "avg_before": ("baseline", ("avg",)),
    "avg_after": ("prusc", ("avg",)),
    "mean_s_before": ("baseline", ("sscore", "mean")),
    "mean_s_after": ("prusc", ("sscore", "mean")),
    "mean_s_used_before": ("baseline", ("sscore", "mean_used")),
    "mean_s_used_after": ("prusc", ("sscore", "mean_used")),
    "prune_h": ("mask", ("prune_h",)),
    "prune_f": ("mask", ("prune_f",)),
}
KEYS = ("profile", "seconds", *HEADLINE, "prusc", "removal", "mask_seconds", "mask_steps", "mask_seconds_per_step",
        "per_seed", "runs")
#: One seed's entry under ``per_seed`` (:func:`seed_record`): Fig. 6's numbers and Fig. 7's groups at 80 %.
SEED_KEYS = ("seed", "wga_before", "wga_after", "mean_s_before", "mean_s_after", "intervals", "removal")


def subnet_key(removed_group: int, keep_fraction: float) -> str:
    """Key of one subnetwork in a removal entry's ``subnetworks``: ``"g0@0.80"``."""
    return f"g{int(removed_group)}@{float(keep_fraction):.2f}"


def mask_entry(facts: "MaskFacts") -> dict:
    """A mask's facts as recorded (``keep_target``, ``keep_fraction``, ``prune_f``, ``prune_h``, ...)."""
    return asdict(facts)


def prusc_entry(result: "PruscResult") -> dict:
    """Fig. 6 as recorded: ``dataset``, ``model``, ``arch``, ``seed``, ``alpha``, ``sscore_samples``, ``recipe``,
    ``baseline`` and ``prusc`` (test summaries with ``sscore``) and ``mask``."""
    return {"dataset": result.dataset, "model": result.model, "arch": result.arch, "seed": result.seed,
            "alpha": result.alpha, "sscore_samples": result.sscore_samples, "recipe": asdict(result.recipe),
            "baseline": dict(result.baseline), "prusc": dict(result.prusc), "mask": mask_entry(result.mask)}


def removal_entry(result: "RemovalResult") -> dict:
    """Fig. 7 as recorded: ``group_names``, ``full``, ``train_group_counts`` and ``subnetworks`` keyed by
    :func:`subnet_key`, each with ``removed_group``, ``summary`` and the mask's facts."""
    subs = {subnet_key(s.removed_group, s.keep): {"removed_group": s.removed_group, "summary": s.summary,
                                                   **mask_entry(s.mask)} for s in result.subnetworks}
    return {"dataset": result.dataset, "model": result.model, "arch": result.arch, "seed": result.seed,
            "group_names": list(result.group_names), "train_group_counts": list(result.train_group_counts),
            "full": result.full, "subnetworks": subs, "recipe": asdict(result.recipe)}


def seed_record(by_seed: Mapping[int, tuple["PruscResult", Mapping[str, "RemovalResult"]]]) -> list[dict]:
    """Each seed's claim numbers (keys :data:`SEED_KEYS`) from :func:`~.study.seed_experiments`: Fig. 6's WGA and
    mean s-score before and after with their within-seed intervals (:func:`~.study.prusc_intervals`), and per dataset the full model's and each 80 % subnetwork's group accuracies
    (``removal.<dataset>``: ``{"full": [...], "subnetworks": {subnet_key: {"removed_group", "groups",
    "drop_interval"}}}``)."""
    out = []
    for seed, (prusc, removals) in by_seed.items():
        removal = {name: {"full": list(r.full["groups"]),
                          "subnetworks": {subnet_key(s.removed_group, s.keep): {"removed_group": s.removed_group,
                                                                                "groups": list(s.summary["groups"]),
                                                                                "drop_interval": s.summary.get("drop_interval")}
                                          for s in r.subnetworks if abs(s.keep - PAPER_KEEP) < 1e-9}}
                   for name, r in removals.items()}
        out.append({"seed": int(seed), "wga_before": prusc.baseline["wga"], "wga_after": prusc.prusc["wga"],
                    "mean_s_before": prusc.baseline["sscore"]["mean"], "mean_s_after": prusc.prusc["sscore"]["mean"],
                    "intervals": prusc.prusc.get("intervals"), "removal": removal})
    return out


def payload(prusc: Mapping, removals: Mapping[str, Mapping], *, profile: str, seconds: float,
            runs: Mapping[str, int] | None = None, weights: str | Mapping[str, str] | None = None,
            per_seed: list[Mapping] | None = None) -> dict:
    """The numbers notebook 05 records, from :func:`prusc_entry` and one :func:`removal_entry` per dataset;
    ``per_seed``: :func:`seed_record` (the claims are decided over it)."""
    times = {"prusc": prusc["mask"]["train_seconds"]}
    steps = {"prusc": prusc["mask"]["steps"]}
    for ds, removal in removals.items():
        for key, entry in removal["subnetworks"].items():
            times[f"{ds}/{key}"] = entry["train_seconds"]
            steps[f"{ds}/{key}"] = entry["steps"]
    total_steps = sum(steps.values())
    headline = {}
    for key, (side, path) in HEADLINE.items():
        value = prusc[side]
        for part in path:
            value = value[part]
        headline[key] = value
    out = {
        "profile": profile,
        "seconds": float(seconds),
        **headline,
        "prusc": dict(prusc),
        "removal": {k: dict(v) for k, v in removals.items()},
        "mask_seconds": times,
        "mask_steps": steps,
        "mask_seconds_per_step": (sum(times.values()) / total_steps) if total_steps else None,
        "per_seed": [dict(e) for e in (per_seed or [])],
    }
    if runs is not None:
        out["runs"] = dict(runs)
    if weights is not None:
        out["weights"] = weights if isinstance(weights, str) else dict(weights)
    return out
