"""The words every layer shares: dataset and architecture names, group, class and attribute labels.

Groups follow the data contract, ``g = 2·y + a`` (class ``y``, spurious attribute ``a``), so the
four groups line up with the paper's G0..G3 (Waterbirds) and BwoP, BwP, MwoP, MwP (ISIC).
"""
from __future__ import annotations

from typing import Literal

DatasetName = Literal["waterbirds", "isic"]
DATASETS: tuple[DatasetName, ...] = ("waterbirds", "isic")
DATASET_LABELS: dict[str, str] = {"waterbirds": "Waterbirds-like", "isic": "ISIC-like"}

Arch = Literal["cnn", "vit"]
ARCHS: tuple[Arch, ...] = ("cnn", "vit")
ARCH_LABELS: dict[str, str] = {"cnn": "CNN", "vit": "ViT"}

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

#: How a recorded ``weights`` note names a backbone that started from the stand-in pretraining (not ImageNet).
STANDIN_WEIGHTS = "stand-in pretraining"

N_GROUPS = 4
GROUP_NAMES: dict[str, tuple[str, ...]] = {
    "waterbirds": ("landbird/land (G0)", "landbird/water (G1)", "waterbird/land (G2)", "waterbird/water (G3)"),
    "isic": ("BwoP", "BwP", "MwoP", "MwP"),
}
CLASS_NAMES: dict[str, tuple[str, str]] = {"waterbirds": ("landbird", "waterbird"), "isic": ("benign", "malignant")}
ATTRIBUTE_NAMES: dict[str, tuple[str, str]] = {"waterbirds": ("land", "water"), "isic": ("no patch", "patch")}


def group_names(dataset: str) -> tuple[str, ...]:
    """The four group labels of ``dataset`` (``G0``..``G3`` for a dataset of another name)."""
    return GROUP_NAMES.get(dataset, ("G0", "G1", "G2", "G3"))

#: Neuron detectors scored against the counterfactual ground truth (notebooks 03 and 06): record key -> label.
DETECTOR_LABELS: dict[str, str] = {
    "truth": "ground truth (spurious share)", "sscore": "s-score (hard)", "sscore_soft": "s-score (soft)",
    "sscore_iou": "s-score (IoU)", "group_gap": "group gap", "spuriosity": "spuriosity",
}
#: The model a detector was computed on: trained, or re-initialised (Adebayo et al.'s randomisation check).
SCOPE_LABELS: dict[str, str] = {"trained": "trained", "last_block": "last block randomised",
                                "all": "whole model randomised"}
