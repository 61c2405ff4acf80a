"""Notebook 05's claims (paper Figs. 6–7) and its takeaways, read from the recorded JSON only."""
from __future__ import annotations

from typing import Mapping

from ...claims import Effect, claim, decide_effects, measured, verdict_lines
from ...paper import PAPER_FIG6, PAPER_FIG7
from .record import CLAIM_DATASET, NAME, PAPER_KEEP, subnet_key


#: Thresholds of the Fig. 7 claim: the removed group must lose at least DROP_MIN, no
#: other group may lose more than HOLD_TOL (about 1.5 binomial s.e. at 200 test images).
DROP_MIN = 0.15
HOLD_TOL = 0.05
#: Fig. 6 claim: WGA must rise by at least this much, and the mean s-score fall by at least S_FALL_MIN
#: (a change of a few thousandths is the noise of re-drawing heatmaps, not "lowers").
WGA_RISE_MIN = 0.02
S_FALL_MIN = 0.02

_P0, _P1 = PAPER_FIG6["baseline"], PAPER_FIG6["prusc"]


def _removal_effect(removal: Mapping, group: int, keep: float = PAPER_KEEP) -> dict | None:
    entry = removal["subnetworks"].get(subnet_key(group, keep))
    if entry is None:
        return None
    full, sub = removal["full"]["groups"], entry["summary"]["groups"]
    drops = [f - s for f, s in zip(full, sub)]
    others = [d for k, d in enumerate(drops) if k != group]
    return {"drop": drops[group], "max_other_drop": max(others), "full": full, "sub": sub}


def takeaways(recorded: Mapping) -> str:
    """A short text stating the results in the run's own numbers."""
    p = recorded["prusc"]
    b_s, a_s = p["baseline"]["sscore"], p["prusc"]["sscore"]
    lines = [
        f"- PruSC-style mask on {p['model']} ({p['dataset']}-like, trained on the validation split without group labels): "
        f"WGA {recorded['wga_before']:.2f} → {recorded['wga_after']:.2f}, AVG {recorded['avg_before']:.2f} → "
        f"{recorded['avg_after']:.2f}; Prune_h {recorded['prune_h']:.0%}, Prune_f {recorded['prune_f']:.0%} "
        f"(paper: {_P0['wga']:.2f} → {_P1['wga']:.2f}, {_P1['prune_h'] * 100:.0f} % / {_P1['prune_f'] * 100:.0f} %).",
        f"- Mean s-score {b_s['mean']:.2f} → {a_s['mean']:.2f} over all {b_s['d']} neurons "
        f"({b_s['mean_used']:.2f} → {a_s['mean_used']:.2f} over the {a_s['n_used']} neurons the pruned head still uses); "
        f"chance level (mask area) {b_s['area']:.2f} (paper: {_P0['mean_s']:.2f} → {_P1['mean_s']:.2f}).",
    ]
    for ds, removal in recorded["removal"].items():
        names = removal["group_names"]
        parts = []
        for entry in removal["subnetworks"].values():
            if abs(entry["keep_target"] - PAPER_KEEP) > 1e-9:
                continue
            g = entry["removed_group"]
            eff = _removal_effect(removal, g)
            parts.append(f"without {names[g]}: {names[g]} {eff['full'][g]:.2f} → {eff['sub'][g]:.2f}, "
                         f"largest drop elsewhere {eff['max_other_drop']:+.2f}")
        if parts:
            lines.append(f"- Group removal ({ds}-like, 80 % of weights kept): " + "; ".join(parts) + ".")
    masks = [("Fig. 6", p["mask"])] + [(f"{ds} {key}", e) for ds, r in recorded["removal"].items()
                                       for key, e in r["subnetworks"].items()]
    learned = [(name, m) for name, m in masks if m.get("magnitude_overlap") is not None]
    if learned:
        lines.append("- Did the masks learn? " + "; ".join(
            f"{name}: cross-entropy {m['loss_curve'][0][1]:.2f} → {m['loss_curve'][-1][1]:.2f}, {m['undecided']:.0%} of "
            f"weights undecided, training's own mask (logits ≥ 0) keeping {m['train_keep']:.0%}, "
            f"{m['magnitude_overlap']:.0%} of its kept weights are magnitude pruning's "
            f"(a random cut of that size: about {m['keep_fraction']:.0%})" for name, m in learned) + ".")
    lines.extend(verdict_lines([("Fig. 6 (mask pruning)", _prusc_claim(recorded))]
                               + ([("Fig. 7 (group removal)", _removal_claim(recorded))]
                                  if CLAIM_DATASET in recorded["removal"]
                                  and _removal_effect(recorded["removal"][CLAIM_DATASET], 0) else [])))
    secs = recorded["mask_seconds"]
    per_step = recorded.get("mask_seconds_per_step")
    lines.append(f"- Mask training: {len(secs)} masks, {min(secs.values()):.0f}-{max(secs.values()):.0f} s each"
                 + (f" ({per_step:.2f} s per step)" if per_step else "") + "; cached masks load instantly.")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s.")
    return "\n".join(lines)


def _within(name: str):
    """A view's within-seed interval ``name`` (``intervals`` of a seed's entry, or of the headline's ``prusc`` side;
    None where not recorded)."""
    def read(view: Mapping) -> tuple[float, float] | None:
        intervals = view.get("intervals") if "seed" in view else view["prusc"]["prusc"].get("intervals")
        pair = (intervals or {}).get(name)
        return None if pair is None or None in pair else (pair[0], pair[1])

    return read


def _prusc_effects(rec: Mapping) -> list[Effect]:
    """Fig. 6's two effects, one value per seed (``per_seed``; the headline run when not recorded), each with its
    within-seed bootstrap (over test images, over neurons)."""
    seeds = rec.get("per_seed") or ()
    return [measured("ΔWGA of the PruSC-style mask", "ΔWGA", WGA_RISE_MIN, lambda v: v["wga_after"] - v["wga_before"],
                     rec, seeds, paper=_P1["wga"] - _P0["wga"], within=_within("wga_change")),
            measured("fall of the mean s-score under the mask", "Δ mean s (before − after)", S_FALL_MIN,
                     lambda v: v["mean_s_before"] - v["mean_s_after"], rec, seeds,
                     paper=_P0["mean_s"] - _P1["mean_s"], within=_within("mean_s_fall"))]


@claim("components.prusc", NAME, "Mask pruning on frozen weights lowers the mean s-score and raises WGA",
       "Fig. 6 (ResNet-18, ISIC): WGA 0.37 → 0.73, mean s-score 0.40 → 0.18, Prune_h 65 %, Prune_f 48 %")
def _prusc_claim(rec: dict):
    ours = (f"WGA {rec['wga_before']:.2f} → {rec['wga_after']:.2f}, mean s {rec['mean_s_before']:.2f} → "
            f"{rec['mean_s_after']:.2f} (used neurons {rec['mean_s_used_before']:.2f} → {rec['mean_s_used_after']:.2f}), "
            f"Prune_h {rec['prune_h']:.0%}, Prune_f {rec['prune_f']:.0%}")
    return decide_effects(ours, _prusc_effects(rec))


def _groups(view: Mapping, group: int) -> tuple[list[float], list[float]] | None:
    """The full model's and the 80 % subnetwork's group accuracies without ``group``, from a recorded removal entry
    or a seed's (``per_seed[i].removal.<dataset>``); None when that subnetwork was not trained."""
    entry = view["subnetworks"].get(subnet_key(group, PAPER_KEEP))
    if entry is None:
        return None
    full = view["full"]["groups"] if isinstance(view["full"], Mapping) else view["full"]
    return list(full), list(entry["summary"]["groups"] if "summary" in entry else entry["groups"])


def _drop_within(group: int):
    """A view's bootstrap interval of ``group``'s own drop over its test images (None where not recorded)."""
    def read(view: Mapping) -> tuple[float, float] | None:
        entry = view["subnetworks"].get(subnet_key(group, PAPER_KEEP)) or {}
        pair = (entry.get("summary") or entry).get("drop_interval")
        return None if pair is None else (float(pair[0]), float(pair[1]))

    return read


def _drop(view: Mapping, group: int) -> float | None:
    pair = _groups(view, group)
    return None if pair is None else pair[0][group] - pair[1][group]


def _other_drop(view: Mapping, group: int) -> float | None:
    pair = _groups(view, group)
    return None if pair is None else max(f - s for k, (f, s) in enumerate(zip(*pair)) if k != group)


def _removal_effects(rec: Mapping, dataset: str = CLAIM_DATASET, group: int = 0) -> list[Effect]:
    """Fig. 7's two effects without ``group``: its own accuracy drop and the largest drop of another group."""
    seeds = [e["removal"][dataset] for e in rec.get("per_seed") or () if dataset in e["removal"]]
    mean = rec["removal"][dataset]
    name = mean["group_names"][group]
    paper = PAPER_FIG7["full"][group] - PAPER_FIG7[f"without {name}"][group] \
        if f"without {name}" in PAPER_FIG7 and PAPER_FIG7[f"without {name}"][group] is not None else None
    return [measured(f"{name} accuracy drop when its data is removed ({PAPER_KEEP:.0%} mask)", "accuracy", DROP_MIN,
                     lambda v: _drop(v, group), mean, seeds, paper=paper, within=_drop_within(group)),
            measured(f"largest accuracy drop of another group without {name}", "accuracy", HOLD_TOL,
                     lambda v: _other_drop(v, group), mean, seeds, side="below")]


@claim("components.removal", NAME,
       "Removing a group's data when learning an 80 % mask drops that group's accuracy while the other groups hold "
       "(ISIC-like, without BwoP)",
       "Fig. 7: without BwoP, BwoP 0.92 → 0.18, others unchanged or higher; without BwP, BwP stays 0.99 "
       "and MwoP falls to about 0.49")
def _removal_claim(rec: dict):
    removal = rec["removal"][CLAIM_DATASET]
    names = removal["group_names"]
    eff = _removal_effect(removal, 0)
    if eff is None:
        raise KeyError(f"{CLAIM_DATASET} subnetwork without BwoP at 80 %")
    ours = (f"without BwoP: BwoP {eff['full'][0]:.2f} → {eff['sub'][0]:.2f}, largest drop elsewhere "
            f"{eff['max_other_drop']:+.2f}")
    other = _removal_effect(removal, 1)
    if other is not None:
        ours += (f"; without BwP: BwP {other['full'][1]:.2f} → {other['sub'][1]:.2f}, "
                 + ", ".join(f"{names[k]} {other['full'][k]:.2f} → {other['sub'][k]:.2f}" for k in (2, 3)))
    seeds = len(rec.get("per_seed") or ())
    if seeds > 1:
        ours += f"; {seeds} seeds"
    return decide_effects(ours, _removal_effects(rec))
