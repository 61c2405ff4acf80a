"""The paper's reported numbers, in one place, for side-by-side display and the claims report.

Keys follow the vocabulary (:mod:`shortcut_nb.vocab`): dataset ``"waterbirds"``/``"isic"``, arch
``"cnn"`` (ResNet-18) / ``"vit"`` (ViT-B/16); per-group lists are in group order G0..G3 (g = 2·y + a).
"""
from __future__ import annotations

# Paper Table 2, all five models (mean over 5 seeds), by (dataset, timm model name).
PAPER_TABLE2_MODELS: dict[tuple[str, str], dict[str, float]] = {
    ("waterbirds", "resnet18"): {"avg": 0.83, "wga": 0.46, "gap": 0.37},
    ("waterbirds", "resnet50"): {"avg": 0.88, "wga": 0.63, "gap": 0.25},
    ("waterbirds", "resnext50_32x4d"): {"avg": 0.89, "wga": 0.70, "gap": 0.19},
    ("waterbirds", "vit_base_patch16_224"): {"avg": 0.87, "wga": 0.65, "gap": 0.22},
    ("waterbirds", "deit_base_patch16_224"): {"avg": 0.88, "wga": 0.66, "gap": 0.22},
    ("isic", "resnet18"): {"avg": 0.84, "wga": 0.37, "gap": 0.47},
    ("isic", "resnet50"): {"avg": 0.83, "wga": 0.22, "gap": 0.61},
    ("isic", "resnext50_32x4d"): {"avg": 0.86, "wga": 0.42, "gap": 0.44},
    ("isic", "vit_base_patch16_224"): {"avg": 0.83, "wga": 0.16, "gap": 0.67},
    ("isic", "deit_base_patch16_224"): {"avg": 0.83, "wga": 0.12, "gap": 0.71},
}
#: The models the paper's analyses stand on: ResNet-18 for "cnn", ViT-B/16 for "vit".
PAPER_ARCH_MODELS = {"cnn": "resnet18", "vit": "vit_base_patch16_224"}
# Table 2's ResNet-18 / ViT-B/16 rows by (dataset, arch), the paper's numbers our profiles' CNN and ViT stand beside.
PAPER_TABLE2 = {(ds, arch): PAPER_TABLE2_MODELS[(ds, model)] for ds in ("waterbirds", "isic")
                for arch, model in PAPER_ARCH_MODELS.items()}

PAPER_TABLE3 = {
    0.50: [0.98, 0.98, 0.84, 0.83],
    0.25: [0.99, 0.95, 0.74, 0.90],
    0.05: [0.99, 0.78, 0.46, 0.91],
    0.00: [0.99, 0.34, 0.22, 0.94],
}

# Paper Table 4 (ResNet-18, ISIC): BwoP, BwP, MwoP, MwP, AVG.
PAPER_TABLE4: dict[str, list[float]] = {
    "baseline": [0.92, 0.99, 0.57, 0.37, 0.84],
    "pruned": [0.90, 1.00, 0.59, 0.40, 0.85],
    "refit": [0.81, 0.99, 0.75, 0.51, 0.84],
    "refit_pruned": [0.81, 0.99, 0.77, 0.56, 0.85],
}

# Paper Table 5 (ResNet-18) and Table 6 (ViT-B/16; no AVG column there).
PAPER_TABLES: dict[tuple[str, str], dict] = {
    ("isic", "cnn"): {"table": 5, "model": "ResNet-18",
                      "baseline": {"wga": 0.37, "avg": 0.85, "mean_s": 0.40},
                      "dfr": {"wga": 0.71, "avg": 0.79, "prune_h": 0.80, "mean_s": 0.39}},
    ("waterbirds", "cnn"): {"table": 5, "model": "ResNet-18",
                            "baseline": {"wga": 0.46, "avg": 0.83, "mean_s": 0.45},
                            "dfr": {"wga": 0.82, "avg": 0.87, "prune_h": 0.52, "mean_s": 0.42}},
    ("isic", "vit"): {"table": 6, "model": "ViT-B/16",
                      "baseline": {"wga": 0.16, "avg": None, "mean_s": 0.23},
                      "dfr": {"wga": 0.76, "avg": None, "prune_h": 0.89, "mean_s": 0.26}},
    ("waterbirds", "vit"): {"table": 6, "model": "ViT-B/16",
                            "baseline": {"wga": 0.66, "avg": None, "mean_s": 0.14},
                            "dfr": {"wga": 0.86, "avg": None, "prune_h": 0.37, "mean_s": 0.14}},
}

# Paper Fig. 6 (ResNet-18, ISIC) and the numbers of §5.3 / Table 4 behind Fig. 7.
PAPER_FIG6 = {
    "baseline": {"wga": 0.37, "mean_s": 0.40},
    "prusc": {"wga": 0.73, "mean_s": 0.18, "prune_h": 0.65, "prune_f": 0.48},
}

#: Per-group accuracy (BwoP, BwP, MwoP, MwP); None where the paper gives no number.
#: Full model: Table 4 row 1. Without BwoP: "BwoP drops from 92 % to 18 %, other groups
#: unchanged or increased". Without BwP: "both benign groups 99 %, both malignant about 49 %".
PAPER_FIG7 = {
    "full": [0.92, 0.99, 0.57, 0.37],
    "without BwoP": [0.18, None, None, None],
    "without BwP": [0.99, 0.99, 0.49, 0.49],
}

# Paper §6.1 / Table 6 (ViT-B/16 baseline) and the ResNet means it compares them with.
PAPER_MEAN_S: dict[str, dict[str, float]] = {
    "isic": {"vit": 0.23, "cnn": 0.40},
    "waterbirds": {"vit": 0.14, "cnn": 0.45},
}

PAPER_SSCORE_RANGE = (0.0, 0.8)  # §5.1, ISIC ResNet-18
