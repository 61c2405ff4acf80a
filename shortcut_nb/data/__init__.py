"""Data: dataset folders in the group_DRO layout, the synthetic benchmark, ISIC's patch insertion."""
from .folder import (
    SPLIT_CODES,
    DatasetFormatError,
    ShortcutDataset,
    group_balanced_indices,
    group_of,
    load_dataset,
    read_metadata,
)
from .isic import insert_patches
from .synthetic import (
    ISICLikeSettings,
    WaterbirdsLikeSettings,
    ensure_synthetic,
    generate_isic_like,
    generate_waterbirds_like,
    synthetic_settings,
)
from .transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize

__all__ = [
    "SPLIT_CODES", "DatasetFormatError", "ShortcutDataset", "group_balanced_indices", "group_of",
    "load_dataset", "read_metadata", "insert_patches", "ISICLikeSettings", "WaterbirdsLikeSettings",
    "ensure_synthetic", "generate_isic_like", "generate_waterbirds_like", "synthetic_settings",
    "IMAGENET_MEAN", "IMAGENET_STD", "denormalize",
]
