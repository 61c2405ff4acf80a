"""Notebook 06's frames and figures: Fig. 8 (neurons, ViT next to CNN), the neuron view, Fig. 9, head tables.

Everything here reads a study (:class:`~.neuron_study.ModelScores`, :class:`~.attention_study.AttentionStudy`)
or a view made from one (:func:`~.neuron_study.neuron_view`, :func:`~.attention_study.target_view`); nothing
trains. Attention maps are drawn over the patch grid as blocks over the image.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle
from torch import Tensor

from ... import figures
from ...attention import LIFT_MIN, TokenLayout, heads_beyond_area, upsample_to_image
from ...data import denormalize
from ...paper import PAPER_MEAN_S
from ...vocab import ARCH_LABELS
from .attention_study import AttentionStudy, target_values
from .neuron_study import ModelScores, example_heatmaps

__all__ = ["ATTN_CMAP", "depth_frame", "detector_frame", "plot_depth_profile", "plot_detector_scatter", "plot_fig8",
           "sscore_frame", "plot_neuron_view", "plot_fig9", "head_table", "randomisation_frame", "target_table",
           "plot_head_tables"]

ATTN_CMAP = "inferno"  # attention maps: 0 dark, the map's maximum bright


# =========================================================================== neurons (Fig. 8)


def _show_image(ax, image: Tensor, mask: Tensor | None = None) -> None:
    ax.imshow(denormalize(image.float()).permute(1, 2, 0).numpy())
    if mask is not None and bool(mask.any()) and not bool(mask.all()):
        ax.contour(mask.float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax, image: Tensor, heat: Tensor | np.ndarray, mask: Tensor | None = None, *, vmax: float | None = None,
             cmap: str = "jet", alpha: float = 0.5) -> Any:
    _show_image(ax, image, None)
    heat = heat.detach().cpu().numpy() if isinstance(heat, Tensor) else np.asarray(heat)
    top = vmax if vmax is not None else max(float(heat.max()), 1e-12)
    im = ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=top, interpolation="nearest")
    if mask is not None and bool(mask.any()) and not bool(mask.all()):
        ax.contour(mask.float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
    return im


def _hist(ax, study: ModelScores, *, threshold: float | None = None, archs: Sequence[str] | None = None) -> None:
    stats = {arch: study.stats(arch) for arch in archs or study.archs}
    labels = {a: f"{ARCH_LABELS[a]} {study.model_names.get(a, '')} (mean {st['mean']:.2f})" for a, st in stats.items()}
    figures.sscore_histogram(ax, {labels[a]: st["scores"] for a, st in stats.items()}, study.area, bins=20,
                             colour={labels[a]: figures.ARCH_COLOURS[a] for a in stats}, alpha=0.55, stat="density",
                             chance_label=f"chance = mask area {study.area:.2f}")
    if threshold is not None:
        ax.axvline(threshold, color=figures.THRESHOLD_COLOUR, lw=1.2, label=f"threshold {threshold:.2f}")
    ax.set_xlabel("neuron s-score")
    ax.set_ylabel("density of neurons")
    ax.legend(fontsize=6.5)


def plot_fig8(studies: Sequence[ModelScores], *, image: int = 0, k: int = 4):
    """Fig. 8, with the CNN next to the ViT: per dataset two rows (ViT, CNN) of heatmaps, and the s-score histograms.

    Each row: the image with its spurious mask outlined (white), then ``k`` neurons spread
    over the ranking (highest s first), titled with their s-score (over all samples) and
    their score on this image. Right: the distribution of both models' s-scores, with the
    chance level (mean mask area) dashed.

    Args:
        studies: one :class:`ModelScores` per dataset.
        image: which scored image to show (the same for both models).
        k: neurons per row.

    Returns:
        the matplotlib figure.
    """
    if not studies:
        raise ValueError("studies must hold at least one ModelScores")
    rows = [(st, arch) for st in studies for arch in ("vit", "cnn") if arch in st.scores and arch in st.models]
    ncols = k + 2
    fig = plt.figure(figsize=(1.9 * ncols + 2.2, 2.0 * len(rows) + 0.4))
    gs = fig.add_gridspec(len(rows), ncols, width_ratios=[1] * (k + 1) + [2.2])
    r = 0
    for st in studies:
        arch_rows = [a for a in ("vit", "cnn") if a in st.scores and a in st.models]
        for arch in arch_rows:
            ex = example_heatmaps(st, arch, image=image, k=k)
            ax = fig.add_subplot(gs[r, 0])
            _show_image(ax, st.images[ex["image"]], st.masks[ex["image"]])
            ax.set_title(f"{st.dataset}: image {ex['image']}", fontsize=7)
            ax.set_ylabel(f"{ARCH_LABELS[arch]}\n{st.model_names.get(arch, '')}", fontsize=8)
            for j in range(k):
                ax = fig.add_subplot(gs[r, j + 1])
                if j < len(ex["neurons"]):
                    _overlay(ax, st.images[ex["image"]], ex["cams"][j], st.masks[ex["image"]], vmax=1.0)
                    ax.set_title(f"n{ex['neurons'][j]}: s={ex['scores'][j]:.2f} (here {ex['image_scores'][j]:.2f})",
                                 fontsize=6.5)
                else:
                    ax.axis("off")
            r += 1
        hax = fig.add_subplot(gs[r - len(arch_rows):r, -1])
        _hist(hax, st)
        hax.set_title(f"{st.dataset}: s-scores, {st.images.shape[0]} images, α={st.alpha:g}", fontsize=8)
    fig.tight_layout()
    return fig


def sscore_frame(studies: Sequence[ModelScores]) -> pd.DataFrame:
    """Mean s-score per dataset and model, with the chance level, lift and the paper's value."""
    rows = []
    for st in studies:
        for arch in st.archs:
            s = st.stats(arch)
            rows.append({
                "dataset": st.dataset, "model": f"{ARCH_LABELS[arch]} ({st.model_names.get(arch, arch)})",
                "neurons": s["d"], "mean s": round(s["mean"], 3), "median s": round(s["median"], 3),
                "chance (mask area)": round(st.area, 3), "lift (mean / area)": round(s["lift"], 2),
                "neurons above chance": f"{s['above_chance']:.0%}",
                "paper mean s": PAPER_MEAN_S.get(st.dataset, {}).get(arch),
            })
    return pd.DataFrame(rows)


def seed_frame(per_seed: Mapping[str, Sequence[Mapping]]) -> pd.DataFrame:
    """One row per dataset and seed: each model's mean s-score and the chance level (``record.seed_record``)."""
    rows = [{"dataset": ds, "seed": e["seed"], "mean s (ViT)": e["vit"], "mean s (CNN)": e["cnn"],
             "chance (mask area)": round(e["area"], 3),
             "ViT lower": None if e["vit"] is None or e["cnn"] is None else e["vit"] < e["cnn"]}
            for ds, entries in per_seed.items() for e in entries]
    return pd.DataFrame(rows).set_index(["dataset", "seed"]).round(3)


def plot_neuron_view(view: Mapping):
    """The neuron view: the s-score histogram with the threshold, then the shown neurons' heatmaps."""
    k = max(len(view["neurons"]), 1)
    fig, axes = plt.subplots(1, k + 1, figsize=(3.2 + 1.9 * k, 2.4),
                             gridspec_kw={"width_ratios": [2.2] + [1] * k}, squeeze=False)
    axes = axes[0]
    ax = axes[0]
    figures.sscore_histogram(ax, view["all_scores"], view["area"], bins=20, alpha=0.7,
                             chance_label=f"chance {view['area']:.2f}")
    ax.axvline(view["threshold"], color=figures.THRESHOLD_COLOUR, lw=1.2, label=f"threshold {view['threshold']:.2f}")
    ax.set_xlabel("s-score")
    ax.set_ylabel("neurons")
    ax.set_title(f"{ARCH_LABELS.get(view['arch'], view['arch'])}: {view['n_above']}/{view['d']} ≥ threshold",
                 fontsize=8)
    ax.legend(fontsize=6.5)
    if not view["neurons"]:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no neuron at or\nabove the threshold", ha="center", va="center", fontsize=8)
    for j, (n, s) in enumerate(zip(view["neurons"], view["scores"])):
        _overlay(axes[j + 1], view["image_tensor"], view["cams"][j], view["mask"], vmax=1.0)
        axes[j + 1].set_title(f"n{n}: s={s:.2f}", fontsize=7)
    fig.tight_layout()
    return fig


# =========================================================================== attention heads (Fig. 9)


def head_table(values: torch.Tensor, *, area: float | None = None, value: str = "share") -> pd.DataFrame:
    """A (layers x heads) DataFrame of ``values`` (L, H), index ``layer``, columns ``head``; ``attrs`` keep area, value."""
    df = pd.DataFrame(
        values.detach().cpu().numpy(),
        index=pd.RangeIndex(values.shape[0], name="layer"),
        columns=pd.RangeIndex(values.shape[1], name="head"),
    )
    if area is not None:
        df.attrs["area"] = float(area)
    df.attrs["value"] = value
    return df


def target_table(view: Mapping, value: Literal["share", "lift", "excess"] = "share") -> pd.DataFrame:
    """The layer x head table of the target patch (share on spurious patches, lift or excess over the area)."""
    return head_table(target_values(view, value), area=view["area"] if view["area"] > 0 else None, value=value)


def _patch_box(ax, layout: TokenLayout, image_hw: tuple[int, int], row: int, col: int, color: str = "red") -> None:
    h, w = image_hw
    ph, pw = h / layout.grid[0], w / layout.grid[1]
    ax.add_patch(Rectangle((col * pw - 0.5, row * ph - 0.5), pw, ph, fill=False, edgecolor=color, linewidth=1.5))


def plot_fig9(view: Mapping):
    """Fig. 9: top, the image and the per-layer mean attention of the target patch; bottom, every head of one layer.

    Attention maps are over the patch grid (each sums to 1 over patches), shown as blocks
    over the image; the target patch is framed in red, the spurious mask outlined in white.
    Head panels are titled with the share of the head's attention on spurious patches and
    the lift over their area; the selected head is framed.
    """
    maps, means = view["maps"], view["layer_means"]
    L, H = maps.shape[:2]
    img, mask, layout = view["image_tensor"], view["mask"], view["layout"]
    size = tuple(img.shape[-2:])
    up_means = upsample_to_image(means, size)
    up_heads = upsample_to_image(maps[view["layer"]], size)
    ncols = 1 + max(L, H)
    fig, axes = plt.subplots(2, ncols, figsize=(1.75 * ncols, 4.5), squeeze=False)
    r, c = view["target"]
    ax = axes[0, 0]
    _show_image(ax, img, mask)
    _patch_box(ax, layout, size, r, c)
    ax.set_title(f"{view['dataset']} image {view['image']}\ntarget ({r}, {c})", fontsize=7)
    share, area = view["share"], view["area"]
    for l in range(ncols - 1):
        ax = axes[0, l + 1]
        if l >= L:
            ax.axis("off")
            continue
        _overlay(ax, img, up_means[l], mask, cmap=ATTN_CMAP, alpha=0.65)
        _patch_box(ax, layout, size, r, c)
        s = float(share[l].mean())
        ax.set_title(f"layer {l}: {s:.2f}" + (f" (×{s / area:.1f})" if area > 0 else ""), fontsize=7,
                     color="red" if l == view["layer"] else "black")
    ax = axes[1, 0]
    ax.axis("off")
    ax.text(0.5, 0.5, f"layer {view['layer']}\nall {H} heads\n\nshare on spurious\npatches (lift)\n"
                      f"area {area:.2f}", ha="center", va="center", fontsize=7.5)
    for h in range(ncols - 1):
        ax = axes[1, h + 1]
        if h >= H:
            ax.axis("off")
            continue
        _overlay(ax, img, up_heads[h], mask, cmap=ATTN_CMAP, alpha=0.65)
        _patch_box(ax, layout, size, r, c)
        s = float(share[view["layer"], h])
        ax.set_title(f"head {h}: {s:.2f}" + (f" (×{s / area:.1f})" if area > 0 else ""), fontsize=7)
        if view["head"] == h:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.suptitle(f"Attention of target patch ({r}, {c}) [{'spurious' if view['target_is_spurious'] else 'core'}], "
                 f"{view['model']}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _table_panel(ax, share: np.ndarray, lift: np.ndarray, title: str, marked: Sequence[tuple[int, int]] = ()) -> None:
    """A seaborn layer x head heatmap on ``ax``: colour = lift (white at 1), text = share, ``marked`` cells framed."""
    H = share.shape[1]
    finite = lift[np.isfinite(lift)]
    hi = max(float(finite.max()) if finite.size else 1.0, 1.05)
    lo = min(float(finite.min()) if finite.size else 1.0, 0.95)
    sns.heatmap(head_table(torch.from_numpy(np.nan_to_num(lift, nan=1.0))), ax=ax, cmap="RdBu_r",
                norm=TwoSlopeNorm(vcenter=1.0, vmin=lo, vmax=hi), annot=share, fmt=".3f",
                annot_kws={"fontsize": 5.5 if H > 6 else 7.5}, cbar_kws={"label": "lift (share / area)"})
    for l, h in marked:
        ax.add_patch(Rectangle((h, l), 1, 1, fill=False, edgecolor="k", linewidth=2))
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(title, fontsize=8)


def plot_head_tables(view: Mapping, study: AttentionStudy, *, lift_min: float = LIFT_MIN):
    """Two layer x head tables: left, the target patch of one image; right, all core patches of all images.

    Cells hold the share of the head's attention on spurious patches; colour is the lift
    over the spurious area (white = chance, red = more than the area explains). On the
    right, framed cells are the heads of :func:`heads_beyond_area`.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * study.num_layers + 2.2))
    share = view["share"].numpy().astype(np.float64)
    lift = share / view["area"] if view["area"] > 0 else np.full_like(share, np.nan)
    r, c = view["target"]
    _table_panel(axes[0], share, lift, f"target ({r}, {c}) of image {view['image']}: share on spurious "
                                       f"(area {view['area']:.2f})")
    st = study.stats()
    if st["n_images"]:
        _table_panel(axes[1], st["share"], st["lift"],
                     f"core → spurious, {st['n_images']} images (area {st['area']:.2f}); "
                     f"framed: lift ≥ {lift_min:g}, excess > 0 (1-sided 95 %)",
                     heads_beyond_area(st, lift_min=lift_min))
    else:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no image with both core and spurious patches", ha="center", va="center")
    fig.tight_layout()
    return fig


# =========================================================================== depth profile (issue 17)


def plot_depth_profile(profiles: Mapping[str, Any], *, model: str = "ViT"):
    """The ViT's depth profile: per dataset, every block's ``norm1`` units (boxes), chance, and the shares.

    Args:
        profiles: ``{dataset: DepthProfile}`` (:func:`~.neuron_study.vit_depth_profiles`).
        model: the label in the titles.
    """
    return figures.plot_depth_profile(profiles, title=lambda name: f"{name}: {model} norm1 units, block by block",
                                      tick=lambda block: f"block {block.split('.')[1]}", width=5.6)


depth_frame = figures.depth_frame


# =========================================================================== detectors against the ground truth (issue 29)

detector_frame = figures.detector_frame
randomisation_frame = figures.randomisation_frame


def plot_detector_scatter(entries: Mapping[str, Mapping[str, Any]]):
    """Each ViT neuron's s-score against its spurious share (recorded ``detectors`` entries), chance marked."""
    return figures.plot_detector_scatter(entries, key="sscore", model="ViT")
