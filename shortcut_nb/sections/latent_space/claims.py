"""Notebook 02's claim (paper Fig. 3: within a class, latent neighbourhoods follow the spurious attribute) and
its takeaways, read from the recorded JSON only."""
from __future__ import annotations

from collections.abc import Mapping

from ...claims import Effect, Verdict, claim, decide_effects, measured, recorded_interval, verdict_lines
from ...vocab import CLASS_NAMES
from .record import NAME

LIFT_MIN = 0.05  # purity at least 5 points above its shuffled baseline ...
P_MAX = 0.05  # ... and above (almost) every shuffle


def verdict(r: Mapping) -> bool | None:
    """Whether one recorded neighbourhood result shows attribute-following neighbourhoods (None: not measured)."""
    att = r["attribute"]
    if att.get("purity") is None:
        return None
    return att["lift"] >= LIFT_MIN and att["p_value"] <= P_MAX


def takeaways(recorded: Mapping) -> str:
    """A short text stating the result in the run's own numbers."""
    lines = []
    split = recorded.get("claim_split", "train")
    for key, r in recorded["neighbourhoods"].items():
        att, cls = r["attribute"], r.get("class") or {}
        names = r.get("class_names") or CLASS_NAMES.get(r["dataset"], ("class 0", "class 1"))
        if att.get("purity") is None:
            lines.append(f"- {key} ({r['model']}): no class has both attribute values here; nothing to measure.")
            continue
        used = ", ".join(names[int(c)] for c in r["evaluable"])
        cls_txt = f"; class purity {cls['purity']:.2f} (shuffled {cls['baseline']:.2f})" if cls.get("purity") is not None \
            else ""
        interval = recorded_interval(att.get("lift_interval"))
        ci = f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else ""
        lines.append(f"- {key} ({r['model']}): within-class attribute purity {att['purity']:.2f} vs shuffled "
                     f"{att['baseline']:.2f} (lift {att['lift']:+.2f}{ci}, p ≤ {att['p_value']:.3f}; classes: {used})"
                     f"{cls_txt}.")
    verdicts = [verdict(r) for key, r in recorded["neighbourhoods"].items() if r["split"] == split]
    verdicts = [v for v in verdicts if v is not None]
    if verdicts and all(verdicts):
        lines.append(f"- On the {split} split, every model's within-class neighbourhoods follow the spurious attribute "
                     f"(lift ≥ {LIFT_MIN} over the shuffled baseline, p ≤ {P_MAX}): Fig. 3's reading holds in numbers.")
    elif verdicts:
        lines.append(f"- On the {split} split, {sum(verdicts)} of {len(verdicts)} model/dataset pairs show "
                     f"within-class neighbourhoods that follow the spurious attribute (lift ≥ {LIFT_MIN}, p ≤ {P_MAX}).")
        weak = [f"{k.rsplit('/', 1)[0]} (lift {r['attribute']['lift']:+.2f})" for k, r in recorded["neighbourhoods"].items()
                if r["split"] == split and r["attribute"].get("purity") is not None and not verdict(r)]
        lines.append("  Where it does not: " + ", ".join(weak) + ". A model that leans little on the attribute keeps "
                     "little of it in its features; notebook 01's WGA for the same model says whether it does (the "
                     "paper shows t-SNE pictures of ImageNet-pretrained models only, no measure to compare).")
    if verdicts:
        lines.extend(verdict_lines([("attribute-following neighbourhoods", within_class(recorded))]))
    feats = recorded.get("features", {})
    if feats:
        lines.append(f"- Features: {feats['n_extracted']} extracted now, {feats['n_from_cache']} loaded from the cache "
                     f"({feats['seconds']:.1f} s in all).")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


def _lift_effects(rec: Mapping) -> list[Effect]:
    """Each model's within-class attribute lift over the shuffled baseline on the claim split, one value per seed
    (``neighbourhoods_per_seed``; the one run when not recorded), each with its bootstrap interval over the scored
    samples (``lift_interval``; None in older records); the paper shows pictures only, no value."""
    split = rec.get("claim_split", "train")
    per_seed = rec.get("neighbourhoods_per_seed") or {}
    return [measured(f"within-class attribute purity lift, {key.rsplit('/', 1)[0]}", "purity over shuffled",
                     LIFT_MIN, lambda v: v.get("lift"), r["attribute"], per_seed.get(key, ()),
                     within=lambda v: recorded_interval(v.get("lift_interval")))
            for key, r in rec["neighbourhoods"].items()
            if r["split"] == split and r["attribute"].get("purity") is not None]


@claim("latent.within_class", NAME,
       "Within a class, latent neighbourhoods follow the spurious attribute",
       "Fig. 3 (t-SNE pictures only, training set): ResNet-18 and ViT-B/16, both datasets: 'within each class, "
       "the data clusters according to spurious features'")
def within_class(rec: dict):
    split = rec.get("claim_split", "train")
    rows = {k: r for k, r in rec["neighbourhoods"].items() if r["split"] == split}
    parts = []
    for key, r in rows.items():
        att = r["attribute"]
        if att.get("purity") is None:
            parts.append(f"{key.rsplit('/', 1)[0]}: n/a")
            continue
        parts.append(f"{key.rsplit('/', 1)[0]}: {att['purity']:.2f} vs {att['baseline']:.2f} shuffled")
    ours = f"balanced {rec['k']}-NN attribute purity within class ({split}): " + "; ".join(parts)
    effects = _lift_effects(rec)
    if not effects:
        return Verdict(ours=ours, holds=False, decided=False)
    return decide_effects(ours, effects)
