"""ISIC's artificial test set (paper §3.1): colour patches inserted into malignant images.

Patches are cut from benign images that have a patch mask and pasted into
malignant images of the chosen split, giving the MwP group; the inserted region
becomes the new image's spurious mask. Works on any ISIC-layout folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .folder import SPLIT_CODES, DatasetFormatError, read_metadata, safe_path


def insert_patches(
    root: str | os.PathLike,
    *,
    split: int | str = "test",
    seed: int = 0,
    source_split: int | str | None = None,
    out_dir: str = "inserted",
) -> int:
    """Add MwP rows to ``root/metadata.csv`` by pasting benign patches into malignant images.

    Args:
        root: an ISIC-layout folder (``y``, ``patch``, ``split``, ``mask_filename``).
        split: the split whose malignant, patch-free images get a patch (0/1/2 or name).
        seed: picks which benign patch goes into which malignant image.
        source_split: where to cut patches from (default: the same split).
        out_dir: sub-folder for the new images and masks.

    Returns:
        The number of rows added. The metadata file is replaced atomically;
        nothing is written if an error is raised.
    """
    root = Path(root)
    df, info = read_metadata(root)
    if info.kind != "isic":
        raise DatasetFormatError(f"{root / 'metadata.csv'}: insert_patches needs an ISIC folder (a 'patch' column)")
    if "mask_filename" not in df.columns:
        raise DatasetFormatError(f"{root / 'metadata.csv'}: insert_patches needs a 'mask_filename' column with patch masks")
    split_code = SPLIT_CODES[split] if isinstance(split, str) else int(split)
    source_code = split_code if source_split is None else (SPLIT_CODES[source_split] if isinstance(source_split, str) else int(source_split))
    if "inserted_from" in df.columns and (df.loc[df["split"] == split_code, "inserted_from"].notna()).any():
        raise ValueError(f"{root / 'metadata.csv'}: split {split_code} already has inserted patches")
    sources = df.index[(df["split"] == source_code) & (df["y"] == 0) & (df["patch"] == 1) & df["mask_filename"].notna()]
    targets = df.index[(df["split"] == split_code) & (df["y"] == 1) & (df["patch"] == 0)]
    if len(sources) == 0:
        raise ValueError(f"{root / 'metadata.csv'}: no benign image with a patch mask in split {source_code} to cut patches from")
    rng = np.random.default_rng(seed)
    picks = rng.choice(np.asarray(sources), size=len(targets), replace=True)
    new_rows = []
    written: list[Path] = []
    try:
        for target, source in zip(targets, picks):
            t_path = safe_path(root, df.at[target, "img_filename"], what="img_filename", row=int(target))
            s_path = safe_path(root, df.at[source, "img_filename"], what="img_filename", row=int(source))
            m_path = safe_path(root, df.at[source, "mask_filename"], what="mask_filename", row=int(source))
            with Image.open(t_path) as t_im, Image.open(s_path) as s_im, Image.open(m_path) as m_im:
                t_im, s_im, m_im = t_im.convert("RGB"), s_im.convert("RGB"), m_im.convert("L")
                if m_im.size != s_im.size:
                    raise DatasetFormatError(f"mask {m_path} is {m_im.size} but its image {s_path} is {s_im.size}")
                s_im = s_im.resize(t_im.size, Image.BILINEAR)
                m_im = m_im.resize(t_im.size, Image.NEAREST)
                mask = np.asarray(m_im) >= 128
                pasted = np.where(mask[..., None], np.asarray(s_im), np.asarray(t_im))
            stem = Path(df.at[target, "img_filename"]).stem
            img_rel = f"{out_dir}/{split_code}/{stem}_patch.png"
            mask_rel = f"{out_dir}/{split_code}/{stem}_patch_mask.png"
            (root / img_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pasted.astype(np.uint8)).save(root / img_rel)
            written.append(root / img_rel)
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / mask_rel)
            written.append(root / mask_rel)
            row = df.loc[target].to_dict()
            row.update({"img_filename": img_rel, "mask_filename": mask_rel, "patch": 1,
                        "inserted_from": df.at[source, "img_filename"]})
            new_rows.append(row)
        out = pd.concat([df, pd.DataFrame(new_rows)], ignore_index=True)
        tmp = root / "metadata.csv.tmp"
        out.to_csv(tmp, index=False)
        os.replace(tmp, root / "metadata.csv")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return len(new_rows)
