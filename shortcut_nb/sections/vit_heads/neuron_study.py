"""Notebook 06, §6.1 / Fig. 8: the s-scores of a CNN's and a ViT's penultimate neurons on the same samples.

The s-score (§3.3) of every penultimate neuron of the ViT and of the CNN, on the *same*
training images (non-empty spurious masks, :meth:`Context.masked_samples`, the one draw:
with the same ``sample_seed`` the CNN here is scored on notebook 03's images), with the
*same* α, read against the chance level (the mean mask area: a heatmap that ignores the
image lands on the mask in proportion to its area) and the lift s / area. The paper finds
ViT neurons' heatmaps spread out and their mean s-score low (ISIC 0.23 vs 0.40, Waterbirds
0.14 vs 0.45 for ResNet). Scores come from :func:`shortcut_nb.sscore.score_neurons`, the
summary from :func:`shortcut_nb.sscore.summarize_scores`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...config import model_device
from ...data.samples import MaskedSamples
from ...pipeline.context import Context
from ...pipeline.runs import RunSpec
from ...sscore import neuron_cams, per_sample_scores, score_neurons, small_map_note, summarize_scores, target_map_size
from ...sscore.depth import DepthProfile, depth_profile
from ...vocab import ARCH_LABELS, ARCHS, Arch, DatasetName

__all__ = ["ModelScores", "score_models", "neuron_study", "seed_studies", "vit_depth_profiles", "example_neurons", "example_heatmaps",
           "neuron_selection", "neuron_view", "neuron_view_caption", "check_image_index", "to_float_array"]


def to_float_array(x: Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """Scores as a flat float64 numpy array (CPU)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def check_image_index(n: int, image: int) -> int:
    """``image`` as an int after checking it indexes one of ``n`` images."""
    if isinstance(image, bool) or not isinstance(image, (int, np.integer)) or not 0 <= int(image) < n:
        raise ValueError(f"image must be an int in [0, {n}), got {image!r}")
    return int(image)


@dataclass
class ModelScores:
    """The s-scores of a CNN and a ViT on the same samples (images and masks), with the same α.

    Attributes:
        dataset: dataset name (``"isic"``, ``"waterbirds"`` or a label of your own).
        alpha: binarisation threshold of the heatmaps.
        samples: the scored images (N, 3, H, W), their (N, H, W) bool masks and dataset indices (CPU).
        models: ``{"cnn": model, "vit": model}`` (either may be absent).
        model_names: display names per arch.
        scores: per arch, (d,) s-scores (CPU float32).
    """

    dataset: str
    alpha: float
    samples: MaskedSamples
    models: dict[str, nn.Module]
    model_names: dict[str, str]
    scores: dict[str, Tensor]

    @property
    def images(self) -> Tensor:
        return self.samples.images

    @property
    def masks(self) -> Tensor:
        return self.samples.masks

    @property
    def indices(self) -> list[int]:
        return [int(i) for i in self.samples.indices]

    @property
    def area(self) -> float:
        """The chance level: the mean mask area of the scored images."""
        return self.samples.area

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def archs(self) -> list[str]:
        return [a for a in ARCHS if a in self.scores]

    def stats(self, arch: str) -> dict:
        """:func:`~shortcut_nb.sscore.summarize_scores` of one model."""
        if arch not in self.scores:
            raise ValueError(f"arch must be one of {self.archs}, got {arch!r}")
        return summarize_scores(self.scores[arch], self.area)

    def summary(self) -> dict:
        """JSON-able: ``{"n_samples", "area", "alpha", "indices", "<arch>": stats + {"model"}}``."""
        out: dict[str, Any] = {"n_samples": self.n_samples, "area": self.area, "alpha": self.alpha,
                               "indices": self.indices}
        size = int(self.samples.images.shape[-1])
        for arch in self.archs:
            grid = target_map_size(self.models[arch], size)
            out[arch] = {**self.stats(arch), "model": self.model_names.get(arch, arch), "target_map": list(grid),
                         "target_map_warning": small_map_note(grid, size)}
        return out


def score_models(models: Mapping[str, nn.Module], samples: MaskedSamples, *, alpha: float, dataset: str = "custom",
                 model_names: Mapping[str, str] | None = None) -> ModelScores:
    """Neuron s-scores of every model on the same samples and α (:func:`~shortcut_nb.sscore.score_neurons`).

    Args:
        models: ``{"cnn": SplitModel, "vit": SplitModel}`` (at least one; default Grad-CAM
            target layers: the CNN's last block, the ViT's last block's ``norm1``).
        samples: images, bool masks (each non-empty: an empty mask scores 0 for every neuron
            whatever it looks at) and indices, e.g. :meth:`Context.masked_samples`.
        alpha: heatmap binarisation threshold in [0, 1].
        dataset: a label stored in the result.
        model_names: display names per arch (default: the model's ``name`` attribute).

    Returns:
        A :class:`ModelScores` (scores on CPU).
    """
    if not models:
        raise ValueError("models must hold at least one of 'cnn', 'vit'")
    unknown = set(models) - set(ARCHS)
    if unknown:
        raise ValueError(f"models keys must be among {ARCHS}, got {sorted(unknown)}")
    images, masks = samples.images, samples.masks
    if not isinstance(masks, Tensor) or masks.ndim != 3 or masks.shape[0] != images.shape[0]:
        raise ValueError(f"masks must be a (N, H, W) tensor matching images' N={images.shape[0]}, "
                         f"got {getattr(masks, 'shape', type(masks))}")
    if bool((masks.bool().flatten(1).sum(1) == 0).any()):
        raise ValueError("every mask must be non-empty (pick images that show the spurious feature)")
    samples = MaskedSamples(images=images.cpu(), masks=masks.bool().cpu(), indices=np.asarray(samples.indices))
    scores = {arch: score_neurons(model, samples, alpha=alpha) for arch, model in models.items()}
    names = {a: (model_names or {}).get(a) or getattr(m, "name", a) for a, m in models.items()}
    return ModelScores(dataset=dataset, alpha=float(alpha), samples=samples, models=dict(models), model_names=names,
                       scores=scores)


def neuron_study(ctx: Context, dataset: DatasetName, *, seed: int = 0, alpha: float = 0.5,
                 n_samples: int | None = None, sample_seed: int = 0,
                 archs: Sequence[Arch] = ARCHS, models: Mapping[str, str | None] | None = None) -> ModelScores:
    """Fig. 8 for one dataset: the profile's CNN and ViT (trained or loaded), scored on the same samples.

    Args:
        ctx: the notebook's context (profile, runs root, data folders, progress).
        dataset: ``"isic"`` or ``"waterbirds"``.
        seed: training seed of the models.
        alpha: heatmap binarisation threshold (the same for both models).
        n_samples: training images to score (default: the profile's ``sscore_samples``).
        sample_seed: seed of the draw of training images with a non-empty mask (notebook 03's draw).
        archs: which models.
        models: model name per arch (``{"cnn": ..., "vit": ...}``; None or absent: the profile's).

    Returns:
        A :class:`ModelScores`.
    """
    n = n_samples if n_samples is not None else ctx.settings.sscore_samples
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    models_by_arch = models
    models, names, spec = {}, {}, None
    for arch in archs:
        spec = ctx.run_spec(dataset, arch=arch, seed=seed, model=(models_by_arch or {}).get(arch))
        models[arch], _ = ctx.train_or_load(spec)
        names[arch] = spec.model
    if spec is None:
        raise ValueError("archs must name at least one of 'cnn', 'vit'")
    # The data spec is the same for both archs (it depends on profile and dataset only).
    samples = ctx.masked_samples(spec, seed=sample_seed, n=n)
    return score_models(models, samples, alpha=alpha, dataset=dataset, model_names=names)


def seed_studies(ctx: Context, datasets: Sequence[DatasetName], seeds: Sequence[int] | None = None, *,
                 alpha: float = 0.5, n_samples: int | None = None, sample_seed: int = 0,
                 models: Mapping[str, str | None] | None = None, studies: Mapping[str, ModelScores] | None = None,
                 studies_seed: int = 0, archs: Sequence[Arch] = ARCHS) -> dict[str, dict[int, ModelScores]]:
    """``{dataset: {seed: ModelScores}}``: both models of every seed on the same draw, to decide the claim per seed.

    ``seeds``: None: the profile's (:meth:`Context.seeds`, ``studies_seed`` first). ``studies`` (scored for
    ``studies_seed``, the notebook's own) are reused, not scored again.
    """
    return ctx.by_seed(datasets, lambda ds, seed: neuron_study(
        ctx, ds, seed=seed, alpha=alpha, n_samples=n_samples, sample_seed=sample_seed, models=models, archs=archs),
        seeds, own=studies, own_seed=studies_seed)


def example_neurons(scores: Tensor | np.ndarray | Sequence[float], k: int = 4) -> list[int]:
    """``k`` neurons evenly spread over the s-score ranking, highest first (first = top, last = bottom).

    Args:
        scores: (d,) s-scores.
        k: how many (at most d).

    Returns:
        neuron indices.
    """
    s = to_float_array(scores)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    order = np.argsort(-s, kind="stable")
    ranks = np.unique(np.round(np.linspace(0, s.size - 1, min(k, s.size))).astype(int))
    return [int(order[r]) for r in ranks]


def _check_arch(study: ModelScores, arch: str) -> str:
    if arch not in study.scores or arch not in study.models:
        raise ValueError(f"arch must be one of {study.archs}, got {arch!r}")
    return arch


def _cams(model: nn.Module, image: Tensor, neurons: Sequence[int]) -> Tensor:
    """Grad-CAM heatmaps (K, H, W) of ``neurons`` on one image (CPU)."""
    return neuron_cams(model, image[None].to(model_device(model)), neurons=list(neurons))[0].cpu()


def example_heatmaps(study: ModelScores, arch: str, *, image: int = 0, neurons: Sequence[int] | None = None,
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
    arch = _check_arch(study, arch)
    image = check_image_index(study.n_samples, image)
    idx = list(neurons) if neurons is not None else example_neurons(study.scores[arch], k)
    cams = _cams(study.models[arch], study.images[image], idx)
    per = per_sample_scores(cams[None], study.masks[image][None], study.alpha)[0]
    s = study.scores[arch]
    return {"arch": arch, "image": image, "neurons": [int(i) for i in idx], "scores": [float(s[i]) for i in idx],
            "image_scores": per.tolist(), "cams": cams}


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
    s = to_float_array(scores)
    above = np.flatnonzero(s >= t)
    shown = above[np.argsort(s[above], kind="stable")][:k]
    return {"threshold": t, "d": int(s.size), "n_above": int(above.size), "neurons": [int(i) for i in shown],
            "scores": [float(s[i]) for i in shown]}


def neuron_view(study: ModelScores, arch: str = "vit", *, threshold: float = 0.5, image: int = 0, k: int = 6) -> dict:
    """What the neuron widget shows: :func:`neuron_selection` plus the shown neurons' heatmaps on one image.

    Returns:
        the selection dict plus ``"arch"``, ``"model"``, ``"dataset"``, ``"image"``, ``"area"``,
        ``"all_scores"`` (d,), ``"cams"`` (K, H, W) tensor (empty when no neuron is above),
        ``"image_tensor"``, ``"mask"`` and ``"text"`` (:func:`neuron_view_caption`).
    """
    arch = _check_arch(study, arch)
    image = check_image_index(study.n_samples, image)
    sel = neuron_selection(study.scores[arch], threshold, k=k)
    img = study.images[image]
    cams = _cams(study.models[arch], img, sel["neurons"]) if sel["neurons"] else torch.zeros(0, *img.shape[-2:])
    view = {**sel, "arch": arch, "model": study.model_names.get(arch, arch), "dataset": study.dataset, "image": image,
            "area": study.area, "alpha": study.alpha, "all_scores": to_float_array(study.scores[arch]).tolist(),
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


def vit_depth_profiles(studies: Sequence[ModelScores], *, alpha: float | None = None, arch: str = "vit",
                       seed: int = 0) -> dict[str, DepthProfile]:
    """The depth profile of one model (default the ViT: every block's ``norm1``) per dataset, on the study's samples.

    A ViT unit is a hidden unit of a block's ``norm1``, its scalar the mean over the patch tokens
    (:mod:`shortcut_nb.sscore.units`); the last block's units are *not* the penultimate neurons (the final
    class token), so the last position of the profile differs from Fig. 8's scores.
    """
    out = {}
    for st in studies:
        model = st.models[_check_arch(st, arch)]
        device = model_device(model)
        out[st.dataset] = depth_profile(model, st.images.to(device), st.masks.to(device),
                                        alpha=st.alpha if alpha is None else alpha, seed=seed)
    return out


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[RunSpec]:
    """What notebook 06 trains with these parameters (its ``parameters`` cell): for ``sweep plan``."""
    models = {"cnn": parameters.get("CNN_MODEL"), "vit": parameters.get("VIT_MODEL")}
    return [ctx.run_spec(ds, arch=arch, seed=seed, model=models[arch])
            for ds in ctx.datasets(parameters.get("DATASETS")) for arch in ctx.archs()
            for seed in ctx.seeds(int(parameters.get("SEED", 0)), parameters.get("SEEDS"))]
