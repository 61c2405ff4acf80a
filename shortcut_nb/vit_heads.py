"""Paper §6 (Figs. 8-9, Table 6): ViT penultimate neurons next to the CNN's, and where attention heads look.

Two analyses back notebook 06:

* **Neurons (§6.1, Fig. 8).** The s-score (§3.3) of every penultimate neuron of the
  ViT and of the CNN, on the *same* training images (non-empty spurious masks), with
  the *same* α, shown with the chance level (the mean mask area: a heatmap that
  ignores the image lands on the mask in proportion to its area) and the lift
  s / area. The paper finds ViT neurons' heatmaps spread out and their mean s-score
  low (ISIC 0.23 vs 0.40, Waterbirds 0.14 vs 0.45 for ResNet).
* **Attention heads (§6.2, Fig. 9).** For one target patch of one image, the row of
  every layer's and head's attention matrix, as heatmaps over the image (per-layer
  mean over heads, and all heads of one layer). Beyond the paper: the share of each
  head's attention mass (over patch tokens) that lands on spurious patches, as a
  layer x head table, next to the spurious patches' share of the grid (what a head
  that ignores the image would put there); and the same averaged over *every* core
  patch of every sampled image, with a paired per-image test, to say which heads
  attend from core patches to the spurious region more than its area explains.

The attention machinery is :mod:`shortcut_nb.attention`, the s-score machinery
:mod:`shortcut_nb.sscore`; this module only combines them, draws the figures, builds
the recorded JSON (:func:`record_payload`) and registers the notebook's claims.
Layer and head indices are 0-based (the paper counts from 1).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle
from torch import Tensor, nn

from .attention import maps as att
from .claims import claim
from .paper import PAPER_MEAN_S
from .data import denormalize
from .progress import progress
from .config import model_device

__all__ = [
    "PAPER_MEAN_S",
    "ARCHS",
    "NeuronStudy",
    "AttentionStudy",
    "sscore_summary",
    "score_models",
    "neuron_study",
    "example_neurons",
    "example_heatmaps",
    "plot_fig8",
    "sscore_frame",
    "neuron_selection",
    "neuron_view",
    "neuron_view_caption",
    "plot_neuron_view",
    "per_image_shares",
    "head_statistics",
    "heads_beyond_area",
    "attention_study",
    "default_target_patch",
    "target_view",
    "target_caption",
    "target_table",
    "plot_fig9",
    "plot_head_tables",
    "record_payload",
    "takeaways",
]

Arch = Literal["cnn", "vit"]
ARCHS: tuple[Arch, ...] = ("cnn", "vit")
ARCH_LABELS = {"cnn": "CNN", "vit": "ViT"}


# A head "attends to the spurious region beyond its area" when its mean share is at least
# LIFT_MIN times the mean area and the paired per-image excess (share - area) is above 0
# at one-sided 95 % (mean - Z_ONE_SIDED * standard error > 0).
LIFT_MIN = 1.25
Z_ONE_SIDED = 1.645
ATTN_CMAP = "inferno"  # attention maps: 0 dark, the map's maximum bright


# =========================================================================== neurons (Fig. 8)


def _to_cpu_float(x: Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def sscore_summary(scores: Tensor | np.ndarray | Sequence[float], area: float) -> dict:
    """What is recorded about one model's neuron s-scores.

    Args:
        scores: (d,) s-scores in [0, 1].
        area: chance level, the mean spurious-mask area of the scored images (in (0, 1]).

    Returns:
        ``{"scores", "d", "mean", "median", "std", "area", "lift", "above_chance", "bands"}``:
        ``lift`` = mean / area, ``above_chance`` = fraction of neurons with s > area,
        ``bands`` = neurons per paper range (low < 0.2 <= mid <= 0.7 < high).
    """
    from .bands import band_counts

    s = _to_cpu_float(scores)
    if s.size == 0:
        raise ValueError("scores must hold at least one neuron's s-score")
    area = float(area)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must be in (0, 1] (the mean mask area of the scored images), got {area}")
    return {
        "scores": s.round(6).tolist(),
        "d": int(s.size),
        "mean": float(s.mean()),
        "median": float(np.median(s)),
        "std": float(s.std()),
        "area": area,
        "lift": float(s.mean() / area),
        "above_chance": float((s > area).mean()),
        "bands": band_counts(s),
    }


@dataclass
class NeuronStudy:
    """The s-scores of a CNN and a ViT on the same images and masks, with the same α.

    Attributes:
        dataset: dataset name (``"isic"``, ``"waterbirds"`` or a label of your own).
        alpha: binarisation threshold of the heatmaps.
        images: (N, 3, H, W) scored images (CPU).
        masks: (N, H, W) bool spurious masks (CPU).
        models: ``{"cnn": model, "vit": model}`` (either may be absent).
        model_names: display names per arch.
        scores: per arch, (d,) s-scores (CPU float32).
        area: chance level (mean mask area of ``masks``).
        indices: dataset indices of the images, when known.
    """

    dataset: str
    alpha: float
    images: Tensor
    masks: Tensor
    models: dict[str, nn.Module]
    model_names: dict[str, str]
    scores: dict[str, Tensor]
    area: float
    indices: list[int] | None = None

    @property
    def archs(self) -> list[str]:
        return [a for a in ARCHS if a in self.scores]

    def stats(self, arch: str) -> dict:
        """:func:`sscore_summary` of one model."""
        if arch not in self.scores:
            raise ValueError(f"arch must be one of {self.archs}, got {arch!r}")
        return sscore_summary(self.scores[arch], self.area)

    def summary(self) -> dict:
        """JSON-able: ``{"n_samples", "area", "alpha", "indices", "<arch>": stats + {"model"}}``."""
        out: dict[str, Any] = {"n_samples": int(self.images.shape[0]), "area": self.area, "alpha": self.alpha,
                               "indices": self.indices}
        for arch in self.archs:
            out[arch] = {**self.stats(arch), "model": self.model_names.get(arch, arch)}
        return out




def score_models(
    models: Mapping[str, nn.Module],
    images: Tensor,
    masks: Tensor,
    *,
    alpha: float,
    dataset: str = "custom",
    model_names: Mapping[str, str] | None = None,
    indices: Sequence[int] | None = None,
    batch_size: int = 16,
    chunk_size: int = 128,
) -> NeuronStudy:
    """Neuron s-scores of every model on the same images, masks and α.

    Args:
        models: ``{"cnn": SplitModel, "vit": SplitModel}`` (at least one; default Grad-CAM
            target layers: the CNN's last block, the ViT's last block's ``norm1``).
        images: (N, 3, H, W) normalised images.
        masks: (N, H, W) bool spurious masks, each non-empty (an empty mask scores 0 for
            every neuron whatever it looks at).
        alpha: heatmap binarisation threshold in [0, 1].
        dataset: a label stored in the result.
        model_names: display names per arch (default: the model's ``name`` attribute).
        indices: dataset indices of the images, stored for the record.
        batch_size: images per forward pass.
        chunk_size: neurons per batched Grad-CAM pass (:func:`shortcut_nb.sscore.s_scores`); 128 covers
            all of vit_mini's neurons in one backward pass per image, about twice as fast on CPU as 64.

    Returns:
        A :class:`NeuronStudy` (scores on CPU).
    """
    from .sscore import mask_area, s_scores

    if not models:
        raise ValueError("models must hold at least one of 'cnn', 'vit'")
    unknown = set(models) - set(ARCHS)
    if unknown:
        raise ValueError(f"models keys must be among {ARCHS}, got {sorted(unknown)}")
    if not isinstance(masks, Tensor) or masks.ndim != 3 or masks.shape[0] != images.shape[0]:
        raise ValueError(f"masks must be a (N, H, W) tensor matching images' N={images.shape[0]}, "
                         f"got {getattr(masks, 'shape', type(masks))}")
    masks = masks.bool()
    if bool((masks.flatten(1).sum(1) == 0).any()):
        raise ValueError("every mask must be non-empty (pick images that show the spurious feature)")
    scores = {}
    for arch, model in models.items():
        dev = model_device(model)
        scores[arch] = s_scores(model, images.to(dev), masks.to(dev), alpha=alpha, batch_size=batch_size,
                                chunk_size=chunk_size).cpu()
    names = {a: (model_names or {}).get(a) or getattr(m, "name", a) for a, m in models.items()}
    return NeuronStudy(dataset=dataset, alpha=float(alpha), images=images.cpu(), masks=masks.cpu(),
                       models=dict(models), model_names=names, scores=scores, area=mask_area(masks.cpu()),
                       indices=None if indices is None else [int(i) for i in indices])


def neuron_study(
    profile: str,
    dataset: str,
    *,
    seed: int = 0,
    alpha: float = 0.5,
    n_samples: int | None = None,
    sample_seed: int = 0,
    archs: Sequence[Arch] = ARCHS,
    root: str | os.PathLike | None = None,
    progress_bar: bool = True,
    folder: str | os.PathLike | None = None,
) -> NeuronStudy:
    """Fig. 8 for one dataset: the profile's CNN and ViT (trained or loaded), scored on the same samples.

    Args:
        profile: ``"smoke"``, ``"cpu"`` or ``"paper"``.
        dataset: ``"isic"`` or ``"waterbirds"``.
        seed: training seed of the models.
        alpha: heatmap binarisation threshold (the same for both models).
        n_samples: training images to score (default: the profile's ``sscore_samples``).
        sample_seed: seed of the draw of training images with a non-empty mask
            (:func:`shortcut_nb.neurons.nonempty_mask_samples`, the draw notebook 03 makes).
        archs: which models.
        root: run root (default: the usual one).
        progress_bar: show training progress if a model has to be trained.
        folder: a real dataset folder used instead of the synthetic benchmark (None: the benchmark).

    Returns:
        A :class:`NeuronStudy`.
    """
    from .config import profile_settings
    from .pipeline.runs import get_split, run_spec, train_or_load
    from .neurons import nonempty_mask_samples

    n = n_samples if n_samples is not None else profile_settings(profile).sscore_samples
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    models, names, data_spec = {}, {}, None
    for arch in archs:
        spec = run_spec(profile, dataset, arch=arch, seed=seed, folder=folder)
        models[arch], _ = train_or_load(spec, root=root, progress_bar=progress_bar)
        names[arch] = spec.model
        data_spec = spec.data  # the same data spec for both archs (it depends on profile and dataset only)
    assert data_spec is not None
    train = get_split(data_spec, "train", root=root)
    # Notebook 03's draw: with the same sample_seed, the CNN here is scored on the images 03 scores it on.
    images, masks, idx = nonempty_mask_samples(train, n, sample_seed)
    return score_models(models, images, masks, alpha=alpha, dataset=dataset, model_names=names,
                        indices=idx.tolist())


def example_neurons(scores: Tensor | np.ndarray | Sequence[float], k: int = 4) -> list[int]:
    """``k`` neurons evenly spread over the s-score ranking, highest first (first = top, last = bottom).

    Args:
        scores: (d,) s-scores.
        k: how many (at most d).

    Returns:
        neuron indices.
    """
    s = _to_cpu_float(scores)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    order = np.argsort(-s, kind="stable")
    ranks = np.unique(np.round(np.linspace(0, s.size - 1, min(k, s.size))).astype(int))
    return [int(order[r]) for r in ranks]


def _check_image_index(study: Any, image: int) -> int:
    n = study.images.shape[0]
    if isinstance(image, bool) or not isinstance(image, (int, np.integer)) or not 0 <= int(image) < n:
        raise ValueError(f"image must be an int in [0, {n}), got {image!r}")
    return int(image)


def _check_arch(study: NeuronStudy, arch: str) -> str:
    if arch not in study.scores or arch not in study.models:
        raise ValueError(f"arch must be one of {study.archs}, got {arch!r}")
    return arch


def _cams(model: nn.Module, image: Tensor, neurons: Sequence[int]) -> Tensor:
    """Grad-CAM heatmaps (K, H, W) of ``neurons`` on one image (CPU)."""
    from .sscore import neuron_cams

    dev = model_device(model)
    return neuron_cams(model, image[None].to(dev), neurons=list(neurons))[0].cpu()


def example_heatmaps(study: NeuronStudy, arch: str, *, image: int = 0, neurons: Sequence[int] | None = None,
                     k: int = 4) -> dict:
    """Heatmaps of a few neurons of one model on one scored image (Fig. 8 left).

    Args:
        study: from :func:`neuron_study` / :func:`score_models`.
        arch: ``"cnn"`` or ``"vit"``.
        image: index into ``study.images``.
        neurons: which neurons (default :func:`example_neurons`, highest s first).
        k: how many when ``neurons`` is None.

    Returns:
        ``{"arch", "image", "neurons", "scores" (their s-scores), "image_scores" (their
        per-image score |b ⊙ m| / |b| on this image), "cams" (K, H, W) tensor}``.
    """
    from .sscore import per_sample_scores

    arch = _check_arch(study, arch)
    image = _check_image_index(study, image)
    idx = list(neurons) if neurons is not None else example_neurons(study.scores[arch], k)
    cams = _cams(study.models[arch], study.images[image], idx)
    per = per_sample_scores(cams[None], study.masks[image][None], study.alpha)[0]
    s = study.scores[arch]
    return {"arch": arch, "image": image, "neurons": [int(i) for i in idx], "scores": [float(s[i]) for i in idx],
            "image_scores": per.tolist(), "cams": cams}


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


def _hist(ax, study: NeuronStudy, *, threshold: float | None = None, archs: Sequence[str] | None = None) -> None:
    bins = np.linspace(0, 1, 21)
    for arch in archs or study.archs:
        st = study.stats(arch)
        ax.hist(st["scores"], bins=bins, alpha=0.55, density=True,
                label=f"{ARCH_LABELS[arch]} {study.model_names.get(arch, '')} (mean {st['mean']:.2f})")
    ax.axvline(study.area, color="k", ls="--", lw=1, label=f"chance = mask area {study.area:.2f}")
    if threshold is not None:
        ax.axvline(threshold, color="red", lw=1.2, label=f"threshold {threshold:.2f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("neuron s-score")
    ax.set_ylabel("density of neurons")
    ax.legend(fontsize=6.5)


def plot_fig8(studies: Sequence[NeuronStudy], *, image: int = 0, k: int = 4):
    """Fig. 8, with the CNN next to the ViT: per dataset two rows (ViT, CNN) of heatmaps, and the s-score histograms.

    Each row: the image with its spurious mask outlined (white), then ``k`` neurons spread
    over the ranking (highest s first), titled with their s-score (over all samples) and
    their score on this image. Right: the distribution of both models' s-scores, with the
    chance level (mean mask area) dashed.

    Args:
        studies: one :class:`NeuronStudy` per dataset.
        image: which scored image to show (the same for both models).
        k: neurons per row.

    Returns:
        the matplotlib figure.
    """
    if not studies:
        raise ValueError("studies must hold at least one NeuronStudy")
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


def sscore_frame(studies: Sequence[NeuronStudy]) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- neuron view (widget)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def neuron_selection(scores: Tensor | np.ndarray | Sequence[float], threshold: float, *, k: int = 6) -> dict:
    """Neurons with ``s >= threshold``, and the ``k`` of them just above it (lowest s first).

    Showing the neurons *just above* the threshold makes the slider a way to walk
    through the distribution: at 0 the least spurious neurons, near the top the most.

    Args:
        scores: (d,) s-scores.
        threshold: in [0, 1].
        k: how many to show.

    Returns:
        ``{"threshold", "d", "n_above", "neurons" (shown, ascending s), "scores" (theirs)}``.
    """
    t = _check_threshold(threshold)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    s = _to_cpu_float(scores)
    above = np.flatnonzero(s >= t)
    shown = above[np.argsort(s[above], kind="stable")][:k]
    return {"threshold": t, "d": int(s.size), "n_above": int(above.size), "neurons": [int(i) for i in shown],
            "scores": [float(s[i]) for i in shown]}


def neuron_view(study: NeuronStudy, arch: str = "vit", *, threshold: float = 0.5, image: int = 0, k: int = 6) -> dict:
    """What the neuron widget shows: :func:`neuron_selection` plus the shown neurons' heatmaps on one image.

    Returns:
        the selection dict plus ``"arch"``, ``"model"``, ``"dataset"``, ``"image"``, ``"area"``,
        ``"all_scores"`` (d,), ``"cams"`` (K, H, W) tensor (empty when no neuron is above),
        ``"image_tensor"``, ``"mask"`` and ``"text"`` (:func:`neuron_view_caption`).
    """
    arch = _check_arch(study, arch)
    image = _check_image_index(study, image)
    sel = neuron_selection(study.scores[arch], threshold, k=k)
    img = study.images[image]
    cams = _cams(study.models[arch], img, sel["neurons"]) if sel["neurons"] else torch.zeros(0, *img.shape[-2:])
    view = {**sel, "arch": arch, "model": study.model_names.get(arch, arch), "dataset": study.dataset, "image": image,
            "area": study.area, "alpha": study.alpha, "all_scores": _to_cpu_float(study.scores[arch]).tolist(),
            "cams": cams, "image_tensor": img, "mask": study.masks[image]}
    view["text"] = neuron_view_caption(view)
    return view


def neuron_view_caption(view: Mapping) -> str:
    """One line: how many neurons pass the threshold, against the chance level, and which are shown."""
    head = (f"{ARCH_LABELS.get(view['arch'], view['arch'])} ({view['model']}, {view['dataset']}): "
            f"{view['n_above']} of {view['d']} neurons have s-score ≥ {view['threshold']:.2f} "
            f"(chance level {view['area']:.2f})")
    if not view["neurons"]:
        return head + "; none to show."
    shown = ", ".join(f"n{i} ({s:.2f})" for i, s in zip(view["neurons"], view["scores"]))
    return head + f"; on image {view['image']}, the {len(view['neurons'])} just above: {shown}"


def plot_neuron_view(view: Mapping):
    """The neuron view: the s-score histogram with the threshold, then the shown neurons' heatmaps."""
    k = max(len(view["neurons"]), 1)
    fig, axes = plt.subplots(1, k + 1, figsize=(3.2 + 1.9 * k, 2.4),
                             gridspec_kw={"width_ratios": [2.2] + [1] * k}, squeeze=False)
    axes = axes[0]
    ax = axes[0]
    ax.hist(view["all_scores"], bins=np.linspace(0, 1, 21), color="tab:blue", alpha=0.7)
    ax.axvline(view["area"], color="k", ls="--", lw=1, label=f"chance {view['area']:.2f}")
    ax.axvline(view["threshold"], color="red", lw=1.2, label=f"threshold {view['threshold']:.2f}")
    ax.set_xlim(0, 1)
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


def _check_masks(masks: Tensor, n: int) -> Tensor:
    if not isinstance(masks, Tensor) or masks.ndim != 3 or masks.shape[0] != n:
        raise ValueError(f"masks must be a (N, H, W) tensor with N={n}, got {getattr(masks, 'shape', type(masks))}")
    return masks.bool()


def per_image_shares(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    query: att.Query = "core",
    threshold: float = 0.5,
    batch_size: int = 8,
    progress_bar: bool = False,
) -> tuple[Tensor, Tensor, list[int]]:
    """Per image: each head's share of attention (from ``query`` patches) on spurious patches, and the area.

    Only images that have at least one spurious patch and at least one patch of the
    query kind count (an image without spurious patches cannot show attention to them).
    The attention is computed batch by batch, so memory stays bounded for ViT-B.

    Args:
        model: a ViT SplitModel (or timm ViT/DeiT).
        images: (N, 3, H, W) at the model's input size.
        masks: (N, H, W) bool spurious masks aligned with the images.
        query: ``"core"`` (every non-spurious patch, averaged), ``"spurious"``, ``"cls"``
            or a fixed ``(row, col)``; see :func:`shortcut_nb.attention.spurious_attention_share`.
        threshold: a patch is spurious when more than this fraction of it is.
        batch_size: images per forward pass.
        progress_bar: show a progress bar over batches.

    Returns:
        ``shares`` (M, L, H) in [0, 1], ``areas`` (M,) (spurious patches' share of the grid,
        the chance level of each image) and the M indices of the images used.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    masks = _check_masks(masks, images.shape[0])
    layout = att.token_layout(model)
    labels = att.spurious_patches(masks, layout, threshold)  # (N, P)
    n_spur = labels.sum(1)
    if query == "core":
        ok = (n_spur > 0) & (n_spur < layout.num_patches)
    elif query == "spurious":
        ok = n_spur > 0
    else:
        ok = n_spur > 0
    dev = model_device(model)
    shares, areas, used = [], [], []
    starts = range(0, images.shape[0], batch_size)
    for b0 in progress(starts, desc="attention", total=len(starts), enabled=progress_bar):
        sel = [i for i in range(b0, min(b0 + batch_size, images.shape[0])) if bool(ok[i])]
        if not sel:
            continue
        attn = att.attention_maps(model, images[sel].to(dev))
        lab = labels[sel].to(attn.device)
        for j, i in enumerate(sel):  # one image at a time: each image's own mean over its query patches
            shares.append(att.spurious_attention_share(attn[j:j + 1], lab[j:j + 1], layout, query=query).cpu())
            areas.append(float(labels[i].float().mean()))
            used.append(i)
        del attn
    if not used:
        L = len(att._backbone(model).blocks)
        H = att._backbone(model).blocks[0].attn.num_heads
        return torch.zeros(0, L, H), torch.zeros(0), []
    return torch.stack(shares), torch.tensor(areas, dtype=torch.float32), used


def head_statistics(shares: Tensor, areas: Tensor, *, z: float = Z_ONE_SIDED) -> dict[str, Any]:
    """Mean share per head against the chance level, with a paired per-image test.

    Args:
        shares: (M, L, H) per-image shares from :func:`per_image_shares`.
        areas: (M,) per-image spurious area (chance level).
        z: one-sided normal quantile of the test (1.645: 95 %).

    Returns:
        ``{"n_images", "share" (L, H), "area" (float), "lift" (L, H) = share / area (NaN when
        area is 0), "excess" (L, H) mean of share - area, "se" (L, H), "lower" (L, H) =
        excess - z * se (NaN with fewer than 2 images)}`` as numpy arrays.
    """
    if not isinstance(shares, Tensor) or shares.ndim != 3:
        raise ValueError(f"shares must be an (M, L, H) tensor, got {getattr(shares, 'shape', type(shares))}")
    if not isinstance(areas, Tensor) or areas.shape != shares.shape[:1]:
        raise ValueError(f"areas must be a tensor of shape ({shares.shape[0]},), got {getattr(areas, 'shape', None)}")
    m, L, H = shares.shape
    s = shares.double().numpy()
    a = areas.double().numpy()
    if m == 0:
        nan = np.full((L, H), np.nan)
        return {"n_images": 0, "share": nan, "area": float("nan"), "lift": nan, "excess": nan, "se": nan,
                "lower": nan}
    excess = s - a[:, None, None]
    mean_area = float(a.mean())
    share = s.mean(0)
    lift = share / mean_area if mean_area > 0 else np.full((L, H), np.nan)
    se = excess.std(0, ddof=1) / math.sqrt(m) if m > 1 else np.full((L, H), np.nan)
    return {"n_images": int(m), "share": share, "area": mean_area, "lift": lift, "excess": excess.mean(0),
            "se": se, "lower": excess.mean(0) - z * se}


def heads_beyond_area(stats: Mapping[str, Any], *, lift_min: float = LIFT_MIN) -> list[tuple[int, int]]:
    """(layer, head) pairs that put more attention on spurious patches than their area explains.

    A head counts when its mean share is at least ``lift_min`` times the mean area and the
    paired per-image excess is significantly above 0 (``stats["lower"] > 0``, one-sided).

    Args:
        stats: from :func:`head_statistics`.
        lift_min: smallest lift that counts (1.25: a quarter more than chance).

    Returns:
        0-based (layer, head) pairs, largest lift first.
    """
    if not lift_min >= 1.0:
        raise ValueError(f"lift_min must be >= 1 (1 is chance), got {lift_min}")
    lift = np.asarray(stats["lift"], dtype=np.float64)
    lower = np.asarray(stats["lower"], dtype=np.float64)
    if not np.isfinite(stats["area"]) or stats["area"] <= 0:
        return []
    cand = att.heads_above_chance(torch.as_tensor(np.nan_to_num(stats["share"], nan=0.0)), float(stats["area"]),
                                  lift_min - 1.0 - 1e-12, by="lift")
    return [(l, h) for l, h in cand if np.isfinite(lower[l, h]) and lower[l, h] > 0 and lift[l, h] >= lift_min]


@dataclass
class AttentionStudy:
    """Attention of a ViT on a data set's scored images: full maps for a few examples, shares for all.

    Attributes:
        dataset: dataset label.
        model_name: display name of the ViT.
        layout: token layout of the model.
        images: (E, 3, H, W) example images (CPU).
        masks: (E, H, W) their spurious masks.
        attn: (E, L, H, T, T) their attention matrices (CPU float32).
        shares: (M, L, H) per-image share of core-patch attention on spurious patches (all scored images).
        areas: (M,) per-image spurious area (patch share of the grid).
        used: the M image indices that have both core and spurious patches.
        n_images: images given.
        threshold: patch-labelling threshold.
        indices: dataset indices of the example images, when known.
    """

    dataset: str
    model_name: str
    layout: att.TokenLayout
    images: Tensor
    masks: Tensor
    attn: Tensor
    shares: Tensor
    areas: Tensor
    used: list[int]
    n_images: int
    threshold: float
    indices: list[int] | None = None
    _stats: dict | None = field(default=None, repr=False)

    @property
    def num_layers(self) -> int:
        return int(self.attn.shape[1])

    @property
    def num_heads(self) -> int:
        return int(self.attn.shape[2])

    def stats(self) -> dict[str, Any]:
        """:func:`head_statistics` of the core-patch shares (cached)."""
        if self._stats is None:
            self._stats = head_statistics(self.shares, self.areas)
        return self._stats


def attention_study(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    *,
    dataset: str = "custom",
    model_name: str | None = None,
    n_examples: int = 4,
    threshold: float = 0.5,
    batch_size: int = 8,
    indices: Sequence[int] | None = None,
    progress_bar: bool = False,
) -> AttentionStudy:
    """Attention maps of the first ``n_examples`` images, and core → spurious shares over all images.

    Args:
        model: a ViT SplitModel.
        images: (N, 3, H, W) images (e.g. the s-score samples, ``NeuronStudy.images``).
        masks: (N, H, W) bool spurious masks.
        dataset: a label.
        model_name: display name (default: ``model.name``).
        n_examples: images kept with their full attention (for the Fig. 9 maps and the widget).
        threshold: a patch is spurious when more than this fraction of it is.
        batch_size: images per forward pass.
        indices: dataset indices of ``images``, stored for the examples.
        progress_bar: show progress over batches.

    Returns:
        An :class:`AttentionStudy`.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ValueError(f"n_examples must be a positive int, got {n_examples!r}")
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) tensor, "
                         f"got {getattr(images, 'shape', type(images))}")
    masks = _check_masks(masks, images.shape[0])
    layout = att.token_layout(model)
    e = min(n_examples, images.shape[0])
    attn = att.attention_maps(model, images[:e].to(model_device(model))).cpu()
    shares, areas, used = per_image_shares(model, images, masks, query="core", threshold=threshold,
                                           batch_size=batch_size, progress_bar=progress_bar)
    return AttentionStudy(dataset=dataset, model_name=model_name or getattr(model, "name", "vit"), layout=layout,
                          images=images[:e].cpu(), masks=masks[:e].cpu(), attn=attn, shares=shares, areas=areas,
                          used=used, n_images=int(images.shape[0]), threshold=float(threshold),
                          indices=None if indices is None else [int(i) for i in list(indices)[:e]])


def default_target_patch(mask: Tensor, layout: att.TokenLayout, *, threshold: float = 0.5) -> tuple[int, int]:
    """A core target patch: the non-spurious patch nearest the centroid of all non-spurious patches.

    The core object (bird, lesion) is what is not masked as spurious; its centroid lies on
    it for a compact object in the middle of the image (the synthetic benchmarks, most
    real images). Ties go to the first patch in row-major order. When every patch is
    spurious (an object smaller than half a patch), the least covered patch is returned.

    Args:
        mask: (H, W) bool spurious mask of one image.
        layout: the model's token layout.
        threshold: patch-labelling threshold.

    Returns:
        ``(row, col)`` in the patch grid.
    """
    if not isinstance(mask, Tensor) or mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) tensor, got {getattr(mask, 'shape', type(mask))}")
    cover = att.mask_to_patches(mask[None].bool(), layout)[0].reshape(layout.grid)
    core = (cover <= threshold).nonzero().double()
    if core.shape[0] == 0:
        flat = int(torch.argmin(cover.flatten()))
        return flat // layout.grid[1], flat % layout.grid[1]
    centre = core.mean(0)
    d = ((core - centre) ** 2).sum(1)
    r, c = core[int(torch.argmin(d))].long().tolist()  # argmin returns the first minimum: row-major tie-break
    return int(r), int(c)


def _check_layer_head(study: AttentionStudy, layer: int | None, head: int | None) -> tuple[int, int | None]:
    L, H = study.num_layers, study.num_heads
    if layer is None:
        layer = L - 1
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < L:
        raise ValueError(f"layer must be an int in [0, {L}), got {layer!r}")
    if head is not None and (isinstance(head, bool) or not isinstance(head, (int, np.integer))
                             or not 0 <= int(head) < H):
        raise ValueError(f"head must be None (mean over heads) or an int in [0, {H}), got {head!r}")
    return int(layer), None if head is None else int(head)


def target_view(study: AttentionStudy, *, image: int = 0, row: int | None = None, col: int | None = None,
                layer: int | None = None, head: int | None = None) -> dict:
    """Fig. 9 for one target patch: its attention row per layer and head, and the share on spurious patches.

    Args:
        study: from :func:`attention_study`.
        image: index into the study's example images.
        row, col: target patch (default :func:`default_target_patch`; give both or neither).
        layer: the layer whose heads are shown one by one (default: the last).
        head: the selected head (None: the mean over heads).

    Returns:
        ``{"dataset", "model", "image", "target" (row, col), "target_is_spurious", "layer", "head",
        "maps" (L, H, gh, gw) attention over patches (renormalised to sum 1, prefix tokens'
        share removed), "layer_means" (L, gh, gw), "share" (L, H) tensor: share of the
        target's attention on spurious patches, "area" (spurious patches' share of the
        grid), "selected_share", "selected_lift" (None when area is 0), "image_tensor",
        "mask", "layout", "text"}``.
    """
    image = _check_image_index(study, image)
    layer, head = _check_layer_head(study, layer, head)
    if (row is None) != (col is None):
        raise ValueError(f"give both row and col of the target patch, or neither (got row={row!r}, col={col!r})")
    layout = study.layout
    if row is None:
        row, col = default_target_patch(study.masks[image], layout, threshold=study.threshold)
    for name, v, n in (("row", row, layout.grid[0]), ("col", col, layout.grid[1])):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < n:
            raise ValueError(f"{name} must be an int in [0, {n}) (the patch grid is {layout.grid}), got {v!r}")
    row, col = int(row), int(col)
    a = study.attn[image:image + 1]
    maps = att.patch_attention(a, layout, (row, col), renormalize=True)[0]  # (L, H, gh, gw)
    spur = att.spurious_patches(study.masks[image][None], layout, study.threshold)  # (1, P)
    share = att.spurious_attention_share(a, spur, layout, query=(row, col))  # (L, H)
    area = float(spur.float().mean())
    sel = float(share[layer].mean()) if head is None else float(share[layer, head])
    view = {
        "dataset": study.dataset, "model": study.model_name, "image": image, "target": (row, col),
        "target_is_spurious": bool(spur[0, row * layout.grid[1] + col]), "layer": layer, "head": head,
        "maps": maps, "layer_means": att.layer_mean(maps[None])[0], "share": share, "area": area,
        "selected_share": sel, "selected_lift": sel / area if area > 0 else None,
        "image_tensor": study.images[image], "mask": study.masks[image], "layout": layout,
    }
    view["text"] = target_caption(view)
    return view


def target_caption(view: Mapping) -> str:
    """One line naming the selection (image, target patch, layer, head) and its share against the area."""
    r, c = view["target"]
    kind = "spurious" if view["target_is_spurious"] else "core"
    who = "mean over heads" if view["head"] is None else f"head {view['head']}"
    head = f"image {view['image']} · target patch ({r}, {c}) [{kind}] · layer {view['layer']} · {who}: "
    if view["area"] <= 0:
        return head + f"{view['selected_share']:.2f} on spurious patches — this image has no spurious patch."
    return head + (f"{view['selected_share']:.2f} of its attention on spurious patches vs their area "
                   f"{view['area']:.2f} (lift {view['selected_lift']:.2f}×)")


def target_table(view: Mapping, value: Literal["share", "lift", "excess"] = "share") -> pd.DataFrame:
    """The layer x head table of the target patch (share on spurious patches, lift or excess over the area)."""
    if value != "share" and view["area"] <= 0:
        raise ValueError(f"value={value!r} needs spurious patches in the image (its area is 0)")
    return att.head_table(view["share"], view["area"] if view["area"] > 0 else None, value=value)


def _patch_box(ax, layout: att.TokenLayout, image_hw: tuple[int, int], row: int, col: int, color: str = "red") -> None:
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
    up_means = att.upsample_to_image(means, size)
    up_heads = att.upsample_to_image(maps[view["layer"]], size)
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


def _table_panel(ax, share: np.ndarray, lift: np.ndarray, title: str, marked: Sequence[tuple[int, int]] = ()) -> Any:
    L, H = share.shape
    finite = lift[np.isfinite(lift)]
    hi = max(float(finite.max()) if finite.size else 1.0, 1.05)
    lo = min(float(finite.min()) if finite.size else 1.0, 0.95)
    im = ax.imshow(np.nan_to_num(lift, nan=1.0), cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=1.0, vmin=lo, vmax=hi),
                   aspect="auto")
    for l in range(L):
        for h in range(H):
            ax.text(h, l, f"{share[l, h]:.3f}", ha="center", va="center", fontsize=5.5 if H > 6 else 7.5)
    for l, h in marked:
        ax.add_patch(Rectangle((h - 0.5, l - 0.5), 1, 1, fill=False, edgecolor="k", linewidth=2))
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=8)
    return im


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
    im = _table_panel(axes[0], share, lift, f"target ({r}, {c}) of image {view['image']}: share on spurious "
                                            f"(area {view['area']:.2f})")
    fig.colorbar(im, ax=axes[0], label="lift (share / area)")
    st = study.stats()
    if st["n_images"]:
        im = _table_panel(axes[1], st["share"], st["lift"],
                          f"core → spurious, {st['n_images']} images (area {st['area']:.2f}); "
                          f"framed: lift ≥ {lift_min:g}, excess > 0 (1-sided 95 %)",
                          heads_beyond_area(st, lift_min=lift_min))
        fig.colorbar(im, ax=axes[1], label="lift (share / area)")
    else:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no image with both core and spurious patches", ha="center", va="center")
    fig.tight_layout()
    return fig


# =========================================================================== record, takeaways, claims


def _nested(a: Any) -> Any:
    """numpy/torch array -> nested lists of floats (NaN -> None, so the JSON stays valid)."""
    arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a, dtype=np.float64)
    return [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in arr]


def _attention_record(study: AttentionStudy, view: Mapping, lift_min: float) -> dict:
    st = study.stats()
    area = view["area"]
    beyond = heads_beyond_area(st, lift_min=lift_min) if st["n_images"] else []
    return {
        "model": study.model_name,
        "layers": study.num_layers,
        "heads": study.num_heads,
        "grid": list(study.layout.grid),
        "threshold": study.threshold,
        "n_images": study.n_images,
        "target": {
            "image": view["image"],
            "dataset_index": None if study.indices is None else study.indices[view["image"]],
            "row": view["target"][0], "col": view["target"][1],
            "is_spurious": view["target_is_spurious"],
            "layer": view["layer"], "head": view["head"],
            "share": _nested(view["share"]),
            "area": area,
            "lift": _nested(view["share"].double() / area) if area > 0 else None,
        },
        "core": {
            "n_images": st["n_images"],
            "share": _nested(st["share"]),
            "area": st["area"] if np.isfinite(st["area"]) else None,
            "lift": _nested(st["lift"]),
            "excess": _nested(st["excess"]),
            "excess_lower": _nested(st["lower"]),
            "lift_min": lift_min,
            "heads_beyond_area": [list(lh) for lh in beyond],
            "max_lift": None if not np.isfinite(st["lift"]).any() else float(np.nanmax(st["lift"])),
        },
    }


def record_payload(
    neuron_studies: Sequence[NeuronStudy],
    attention: Mapping[str, tuple[AttentionStudy, Mapping]],
    *,
    profile: str,
    seconds: float,
    lift_min: float = LIFT_MIN,
) -> dict:
    """The numbers notebook 06 records.

    Args:
        neuron_studies: one :class:`NeuronStudy` per dataset.
        attention: per dataset, ``(AttentionStudy, target_view(...))``.
        profile: the profile run.
        seconds: wall time of the notebook so far.
        lift_min: the lift a head needs in :func:`heads_beyond_area`.

    Returns:
        ``{"profile", "seconds", "alpha", "sscore": {dataset: NeuronStudy.summary()},
        "mean_s": {"<dataset>/<arch>": mean}, "attention": {dataset: {..., "target": {...},
        "core": {...}}}}``.
    """
    if not neuron_studies:
        raise ValueError("neuron_studies must hold at least one NeuronStudy")
    alphas = {st.alpha for st in neuron_studies}
    return {
        "profile": profile,
        "seconds": float(seconds),
        "alpha": alphas.pop() if len(alphas) == 1 else sorted(alphas),
        "sscore": {st.dataset: st.summary() for st in neuron_studies},
        "mean_s": {f"{st.dataset}/{arch}": st.stats(arch)["mean"] for st in neuron_studies for arch in st.archs},
        "attention": {ds: _attention_record(study, view, lift_min) for ds, (study, view) in attention.items()},
    }


def takeaways(recorded: Mapping) -> str:
    """A short text stating the results in the run's own numbers."""
    lines = []
    for ds, r in recorded["sscore"].items():
        if "vit" in r and "cnn" in r:
            v, c = r["vit"], r["cnn"]
            paper = PAPER_MEAN_S.get(ds)
            ref = f" (paper: {paper['vit']:.2f} vs {paper['cnn']:.2f})" if paper else ""
            rel = "lower than" if v["mean"] < c["mean"] else "not lower than"
            lines.append(f"- {ds}: mean ViT s-score {v['mean']:.2f} is {rel} the CNN's {c['mean']:.2f}{ref}; chance "
                         f"level {r['area']:.2f}, lifts {v['lift']:.2f}× vs {c['lift']:.2f}×; neurons above chance "
                         f"{v['above_chance']:.0%} (ViT) vs {c['above_chance']:.0%} (CNN).")
    for ds, a in recorded["attention"].items():
        core, t = a["core"], a["target"]
        n_heads = a["layers"] * a["heads"]
        beyond = core["heads_beyond_area"]
        if core["n_images"] == 0:
            lines.append(f"- {ds}: no sampled image has both core and spurious patches; no head statistics.")
            continue
        best = (f"; largest lift {core['max_lift']:.2f}×" if core["max_lift"] is not None else "")
        named = ", ".join(f"L{l}H{h}" for l, h in beyond[:6])
        lines.append(f"- {ds}: {len(beyond)} of {n_heads} heads attend from core patches to spurious patches more "
                     f"than their area ({core['area']:.2f}) explains (lift ≥ {core['lift_min']:g}, paired test over "
                     f"{core['n_images']} images){': ' + named if named else ''}{best}.")
        if t["lift"] is not None:
            flat = [(v, l, h) for l, row in enumerate(t["lift"]) for h, v in enumerate(row) if v is not None]
            if flat:
                v, l, h = max(flat)
                lines.append(f"  Target patch ({t['row']}, {t['col']}) of image {t['image']}: strongest head L{l}H{h} "
                             f"puts {t['share'][l][h]:.2f} of its attention on spurious patches (area {t['area']:.2f}, "
                             f"lift {v:.2f}×).")
    lines.append(f"- Profile {recorded['profile']}, {recorded['seconds']:.0f} s, α = {recorded['alpha']}.")
    return "\n".join(lines)


@claim("vit_heads.sscore", "06_vit_heads", "ViT s-scores are lower on average than CNN s-scores",
       "§6.1 / Table 6: ISIC 0.23 (ViT-B/16) vs 0.40 (ResNet), Waterbirds 0.14 vs 0.45")
def _sscore_claim(rec: dict):
    rows = {ds: r for ds, r in rec["sscore"].items() if "vit" in r and "cnn" in r}
    if not rows:
        raise KeyError("sscore (no dataset with both models)")
    ours = "; ".join(f"{ds}: ViT {r['vit']['mean']:.2f} vs CNN {r['cnn']['mean']:.2f} (chance {r['area']:.2f})"
                     for ds, r in rows.items())
    return ours, all(r["vit"]["mean"] < r["cnn"]["mean"] for r in rows.values())


@claim("vit_heads.heads", "06_vit_heads",
       "Some heads attend from core patches to spurious regions more than the spurious area alone explains",
       "§6.2 / Fig. 9 (ISIC, ViT-B/16): from a core target patch, layers 8-9 and heads 4, 5, 6, 12 "
       "attend to the patch")
def _heads_claim(rec: dict):
    att_rec = rec["attention"]
    parts = []
    for ds, a in att_rec.items():
        core = a["core"]
        lift = "n/a" if core["max_lift"] is None else f"{core['max_lift']:.2f}×"
        parts.append(f"{ds}: {len(core['heads_beyond_area'])}/{a['layers'] * a['heads']} heads "
                     f"(max lift {lift}, area {core['area'] if core['area'] is None else round(core['area'], 2)})")
    # The paper's example is ISIC; its verdict decides (Waterbirds' background covers most of the image,
    # so its lift has little room above 1).
    verdict_on = "isic" if "isic" in att_rec else next(iter(att_rec))
    holds = len(att_rec[verdict_on]["core"]["heads_beyond_area"]) > 0
    return "; ".join(parts) + f" [verdict on {verdict_on}]", holds
