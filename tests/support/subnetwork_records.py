"""Notebook 05's recorded entries, made up: a removal entry and a Fig. 6 entry with chosen numbers."""
from __future__ import annotations

from shortcut_nb.sections.subnetworks.record import subnet_key


def removal_entry(full=(0.9, 0.99, 0.6, 0.4), subs=None, dataset="isic") -> dict:
    """A :func:`record.removal_entry`-shaped dict with given per-group accuracies."""
    names = ["BwoP", "BwP", "MwoP", "MwP"] if dataset == "isic" else ["G0", "G1", "G2", "G3"]
    subs = subs if subs is not None else {(0, 0.8): (0.2, 0.99, 0.62, 0.41), (1, 0.8): (0.99, 0.99, 0.5, 0.5),
                                          (0, 0.6): (0.1, 0.9, 0.6, 0.4)}
    out = {"dataset": dataset, "model": "toy", "group_names": names, "full": {"groups": list(full)}, "subnetworks": {}}
    for (g, k), accs in subs.items():
        layers = {"f_enc.conv1": 0.9, "f_enc.layer1.conv": 0.3 + 0.1 * g, "f_enc.layer2.conv": 0.3 + 0.1 * g,
                  "head": k}
        out["subnetworks"][subnet_key(g, k)] = {
            "removed_group": g, "keep_target": k, "keep_fraction": k + 0.001, "prune_h": 1 - k, "prune_f": 1 - k,
            "per_layer_keep": layers, "summary": {"groups": list(accs)}, "train_seconds": 2.0 + g, "steps": 10,
            "train_keep": 0.95, "loaded": False, "path": "x.pt"}
    return out


def prusc_entry(wga=(0.3, 0.6), mean_s=(0.4, 0.2), used=(0.4, 0.25)) -> dict:
    """A :func:`record.prusc_entry`-shaped dict with given WGA and mean s-scores before/after."""
    def side(i):
        return {"wga": wga[i], "avg": 0.8, "groups": [0.9, 0.9, 0.7, wga[i]],
                "sscore": {"scores": [mean_s[i]] * 4, "mean": mean_s[i], "mean_used": used[i], "n_used": 4 - i,
                           "d": 4, "area": 0.05, "lift": mean_s[i] / 0.05, "lift_used": used[i] / 0.05}}

    return {"dataset": "isic", "model": "toy", "alpha": 0.5, "baseline": side(0), "prusc": side(1),
            "mask": {"prune_h": 0.6, "prune_f": 0.48, "keep_fraction": 0.52, "keep_target": 0.52,
                     "per_layer_keep": {"a": 0.5, "head": 0.4}, "train_seconds": 5.0, "steps": 10,
                     "train_keep": 0.6, "loaded": False, "path": "p.pt"}}
