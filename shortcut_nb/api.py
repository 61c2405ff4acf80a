"""One call per analysis, on your own trained classifier and dataset folder.

Every function takes

* ``model``: a trained classifier, a timm or torchvision ``nn.Module`` (split into backbone and linear head by
  :func:`shortcut_nb.models.as_split_model`, its trained head kept; name an unusual head there with ``head=``) or a
  :class:`~shortcut_nb.models.SplitModel` (e.g. from :func:`shortcut_nb.models.load_classifier`);
* ``data``: a :class:`~shortcut_nb.data.ShortcutDataset` or a dataset folder holding ``metadata.csv``. A folder's
  split(s) are loaded with :func:`shortcut_nb.data.load_dataset` at ``image_size`` (default: the ViT's input size,
  else 224) and ``normalize``; a dataset object keeps its own size and normalisation unless these are given, and
  its folder gives the other splits an analysis needs;

and returns numbers only (nothing is drawn or cached on disk). Each is a thin wrapper over the core function its
docstring names; the splits follow the paper:

* :func:`group_report` (§4.1, Tables 2–3): test;
* :func:`neuron_scores` (§3.3, §5.1): up to 50 train images with a non-empty spurious mask;
* :func:`latent_purity` (§4.2, Fig. 3): train;
* :func:`prune_neurons` (§5.1, Table 4): train (s-scores), val (refits), test (accuracies);
* :func:`dfr` (§5.2, Tables 5–6): val (fit), test (accuracies);
* :func:`attention_heads` (§6, Fig. 9): up to 50 train images with a non-empty spurious mask.

A single-split call reads a dataset object's own split unless ``split=`` says otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .attention import Query, head_statistics, heads_beyond_area, per_image_shares, token_layout
from .config import model_device
from .data import DatasetFormatError, ShortcutDataset, load_dataset
from .data.samples import MaskedSamples, draw_masked_samples
from .data.transforms import Normalization, normalization
from .embeddings import within_class_neighbourhoods
from .lastlayer import fit_dfr_checked, head_metrics
from .lastlayer.table4 import DEFAULT_TAU, prune_and_refit
from .metrics import summarize
from .models import SplitModel, as_split_model
from .pipeline.feature_cache import FeatureSet, extract_features
from .pipeline.train import predict
from .sscore import score_neurons, summarize_scores, unit_s_scores
from .vocab import Split

__all__ = ["GroupReport", "LatentPurity", "NeuronScores", "attention_heads", "dfr", "group_report", "latent_purity",
           "neuron_scores", "prune_neurons"]

Data = ShortcutDataset | str | os.PathLike
#: the input size a folder is loaded at when neither the call nor the model (a ViT) says otherwise
DEFAULT_IMAGE_SIZE = 224
BATCH_SIZE = 64


# --------------------------------------------------------------------------- models and data


def _split_model(model: nn.Module) -> SplitModel:
    """``model`` as a :class:`SplitModel` in eval mode (a plain classifier is split, its trained head kept)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a trained classifier (a timm or torchvision nn.Module) or a SplitModel, got "
                        f"{type(model).__name__}")
    return as_split_model(model).eval()


def _default_size(model: SplitModel) -> int:
    """A timm ViT's own (square) input size, else :data:`DEFAULT_IMAGE_SIZE`."""
    if model.kind == "vit":
        h, w = token_layout(model).image_size
        if h == w:
            return int(h)
    return DEFAULT_IMAGE_SIZE


def _split_of(data: Data, split: Split | None, default: Split) -> Split:
    """``split``, else a dataset object's own split, else the analysis's ``default``."""
    if split is not None:
        return split
    return data.split if isinstance(data, ShortcutDataset) else default


def _dataset(data: Data, split: Split, model: SplitModel, *, image_size: int | None,
             normalize: Normalization | str | dict | None) -> ShortcutDataset:
    """One split of ``data``: the dataset object itself when it is that split at that size and normalisation."""
    if isinstance(data, ShortcutDataset):
        size = data.image_size if image_size is None else int(image_size)
        norm = data.normalization if normalize is None else normalization(normalize)
        if split == data.split and size == data.image_size and norm == data.normalization:
            return data
        return load_dataset(data.root, split=split, image_size=size, normalize=norm,
                            segmentation_dir=data.segmentation_dir)
    if isinstance(data, (str, os.PathLike)):
        size = _default_size(model) if image_size is None else int(image_size)
        return load_dataset(data, split=split, image_size=size, normalize=normalize)
    raise TypeError(f"data must be a ShortcutDataset (shortcut_nb.data.load_dataset) or a dataset folder path "
                    f"holding metadata.csv, got {type(data).__name__}")


def _checked(model: SplitModel, dataset: ShortcutDataset) -> ShortcutDataset:
    """``dataset`` after checking that the model has one output per class of it."""
    n_out, n_classes = model.head.out_features, dataset.groups.n_classes
    if n_out != n_classes:
        raise ValueError(f"model has {n_out} outputs but data ({dataset.root}) has {n_classes} classes "
                         f"{list(dataset.groups.classes)}: pass the classifier trained on this data")
    return dataset


def _train_counts(data: Data, model: SplitModel, **load: Any) -> list[int] | None:
    """Training rows per group (for the train-weighted average), None when the folder has no train split."""
    try:
        return _dataset(data, "train", model, **load).group_counts()
    except DatasetFormatError:
        return None


def _masked_samples(model: SplitModel, dataset: ShortcutDataset, *, n: int, seed: int, who: str) -> MaskedSamples:
    """The one s-score draw (:func:`~shortcut_nb.data.samples.draw_masked_samples`); data without masks refused."""
    if not dataset.has_masks:
        raise ValueError(f"data ({dataset.root}/metadata.csv) has no mask_filename column: {who} needs binary masks "
                         "of the spurious region; add a mask_filename column naming a PNG per image (rows without "
                         "one are skipped)")
    return draw_masked_samples(_checked(model, dataset), n, seed)


def _features(model: SplitModel, dataset: ShortcutDataset, batch_size: int) -> FeatureSet:
    return extract_features(model, _checked(model, dataset), batch_size=batch_size, cache=False, progress_bar=False)


def _as_array(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """(d,) float64 numpy array of a tensor or array."""
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)


# --------------------------------------------------------------------------- §4.1: groups


@dataclass(frozen=True)
class GroupReport:
    """Group accuracies of one split.

    Attributes:
        accuracy: ``{group name: accuracy}`` of the groups present in the split (names from the data:
            ``"<class> / <value>"``, or the paper's for Waterbirds and ISIC).
        counts: ``{group name: rows}`` of the same groups.
        avg: accuracy over all rows (the paper's AVG); wga: the lowest group accuracy; gap: ``avg - wga``.
        worst_group: the name of the group with accuracy ``wga``.
        n: rows; split: the split measured.
    """

    accuracy: dict[str, float]
    counts: dict[str, int]
    avg: float
    wga: float
    gap: float
    worst_group: str
    n: int
    split: str


def group_report(model: nn.Module, data: Data, *, split: Split | None = None, image_size: int | None = None,
                 normalize: Normalization | str | dict | None = None, batch_size: int = BATCH_SIZE) -> GroupReport:
    """Per-group accuracy, AVG, WGA and GAP (:func:`shortcut_nb.metrics.summarize` on the model's predictions).

    Args:
        model: trained classifier or SplitModel (one output per class of ``data``).
        data: dataset object or folder.
        split: the split to measure (None: a dataset object's own, else ``"test"``).
        image_size, normalize: how a folder's images are loaded (what the model was trained with).
        batch_size: images per forward pass.
    """
    net = _split_model(model)
    ds = _checked(net, _dataset(data, _split_of(data, split, "test"), net, image_size=image_size,
                                normalize=normalize))
    out = predict(net, ds, batch_size=batch_size)
    res = summarize(out["pred"], out["y"], out["g"], n_groups=ds.groups.n_groups, require_all=False)
    counts = ds.group_counts()
    present = [k for k in range(ds.groups.n_groups) if counts[k] > 0]
    names = ds.groups.names
    accuracy = {names[k]: float(res["groups"][k]) for k in present}
    worst = min(present, key=lambda k: res["groups"][k])
    return GroupReport(accuracy=accuracy, counts={names[k]: int(counts[k]) for k in present}, avg=res["avg"],
                       wga=res["wga"], gap=res["gap"], worst_group=names[worst], n=res["n"], split=ds.split)


# --------------------------------------------------------------------------- §3.3, §5.1: neuron s-scores


@dataclass(frozen=True, eq=False)
class NeuronScores:
    """s-scores of a layer's units (by default the penultimate neurons), read against their chance level.

    Attributes:
        scores: float array (K,) in [0, 1], one per unit.
        chance: the mean spurious-mask area of the scored images: a heatmap ignoring the image scores this.
        layer: the Grad-CAM layer's name inside the backbone (``model.f_enc``).
        indices: int64 (N,), the scored images' rows in the split.
        summary: :func:`shortcut_nb.sscore.summarize_scores` (bands, lift, units above chance, top units).
    """

    scores: np.ndarray
    chance: float
    layer: str
    indices: np.ndarray
    summary: dict

    @property
    def lift(self) -> np.ndarray:
        """(K,) ``scores / chance``: 1 = no better than a heatmap that ignores the image."""
        return self.scores / self.chance


def _layer(net: SplitModel, model: nn.Module, layer: str | nn.Module | None) -> nn.Module | None:
    """The module ``layer`` names inside ``net.f_enc`` (a module of the original ``model`` maps to its copy)."""
    if layer is None or isinstance(layer, str):
        if layer is None:
            return None
        try:
            return net.f_enc.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"layer={layer!r} is not a module of the model's backbone: name one as "
                             "model.named_modules() does, e.g. 'layer3' or 'blocks.2.norm1'") from None
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be None (the penultimate neurons), a module name or an nn.Module of the model, "
                        f"got {type(layer).__name__}")
    if model is not net:  # the split model holds a copy of the classifier: the same module by name
        name = next((n for n, m in model.named_modules() if m is layer), None)
        if name is not None:
            return net.f_enc.get_submodule(name)
    return layer


def neuron_scores(model: nn.Module, data: Data, *, layer: str | nn.Module | None = None, alpha: float = 0.5,
                  n: int = 50, seed: int = 0, split: Split | None = None, image_size: int | None = None,
                  normalize: Normalization | str | dict | None = None) -> NeuronScores:
    """The paper's s-score of every penultimate neuron (or of every unit of ``layer``), with its chance level.

    :func:`shortcut_nb.sscore.score_neurons` (penultimate neurons, ``layer=None``) or
    :func:`shortcut_nb.sscore.unit_s_scores` (channels of a conv block, hidden units of a ViT ``norm1``) on up to
    ``n`` images of ``split`` with a non-empty spurious mask (:func:`shortcut_nb.data.samples.draw_masked_samples`).

    Args:
        model: trained classifier or SplitModel.
        data: dataset object or folder; it needs a ``mask_filename`` column (masks of the spurious region).
        layer: None (the penultimate neurons, Grad-CAM at the last conv block / the last ViT block's ``norm1``),
            a module name (``"layer3"``), or a module of ``model``.
        alpha: heatmap binarisation threshold in [0, 1].
        n, seed: images drawn (fewer when fewer have a mask) and the draw's seed.
        split: the split drawn from (None: a dataset object's own, else ``"train"``: the paper's training images).
        image_size, normalize: how a folder's images are loaded.

    Raises:
        ValueError: the data has no masks (the message names the ``mask_filename`` column), or ``layer`` is unknown.
    """
    net = _split_model(model)
    target = _layer(net, model, layer)
    ds = _dataset(data, _split_of(data, split, "train"), net, image_size=image_size, normalize=normalize)
    samples = _masked_samples(net, ds, n=n, seed=seed, who="neuron_scores")
    if target is None:
        scores = score_neurons(net, samples, alpha=alpha)
        target = net.default_target_layer()
    else:
        device = model_device(net)
        scores = unit_s_scores(net, samples.images.to(device), samples.masks.to(device), layer=target, alpha=alpha)
    name = next((n_ for n_, m in net.f_enc.named_modules() if m is target), type(target).__name__)
    s = scores.numpy().astype(np.float64)
    return NeuronScores(scores=s, chance=samples.area, layer=name, indices=samples.indices,
                        summary=summarize_scores(s, samples.area))


# --------------------------------------------------------------------------- §4.2: latent space


@dataclass(frozen=True, eq=False)
class LatentPurity:
    """How strongly penultimate neighbourhoods follow the spurious attribute inside each class.

    Attributes:
        purity: within-class kNN purity of the attribute (balanced over its values), mean over the classes that
            hold at least two values; None when none does.
        baseline: the same with the attribute shuffled inside each class (about 1 / number of values).
        lift: ``purity - baseline``; p_value: the largest one-sided permutation p-value over classes.
        by_class: ``{class name: purity}`` (None for a class with one attribute value).
        details: :func:`shortcut_nb.embeddings.within_class_neighbourhoods`'s whole dict.
    """

    purity: float | None
    baseline: float | None
    lift: float | None
    p_value: float | None
    by_class: dict[str, float | None]
    details: dict


def latent_purity(model: nn.Module, data: Data, *, split: Split | None = None, k: int = 10, n_shuffles: int = 200,
                  seed: int = 0, image_size: int | None = None, normalize: Normalization | str | dict | None = None,
                  batch_size: int = BATCH_SIZE) -> LatentPurity:
    """Within-class neighbourhood purity of the spurious attribute on ``z = f_enc(x)`` against a shuffled baseline.

    :func:`shortcut_nb.embeddings.within_class_neighbourhoods` on the penultimate features (N, d) of ``split``
    (None: a dataset object's own, else ``"train"``, as the paper's Fig. 3), ``k`` neighbours per image and
    ``n_shuffles`` permutations.
    """
    net = _split_model(model)
    ds = _dataset(data, _split_of(data, split, "train"), net, image_size=image_size, normalize=normalize)
    feats = _features(net, ds, batch_size)
    res = within_class_neighbourhoods(feats["z"], feats["y"], feats["a"], k=k, n_shuffles=n_shuffles, seed=seed)
    attr = res["attribute"]
    classes = ds.groups.classes
    by_class = {classes[int(c)]: (e.get("purity") if e["evaluable"] else None) for c, e in res["classes"].items()}
    return LatentPurity(purity=attr["purity"], baseline=attr["baseline"], lift=attr["lift"], p_value=attr["p_value"],
                        by_class=by_class, details=res)


# --------------------------------------------------------------------------- §5: the last layer


def prune_neurons(model: nn.Module, data: Data, *, tau: float = DEFAULT_TAU,
                  scores: NeuronScores | np.ndarray | torch.Tensor | None = None, alpha: float = 0.5, n: int = 50,
                  seed: int = 0, image_size: int | None = None, normalize: Normalization | str | dict | None = None,
                  batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """The paper's Table 4: zero the neurons with s-score above ``tau``, refit the last layer, on the test split.

    :func:`shortcut_nb.lastlayer.table4.prune_and_refit` on the test and val features; refits use group-balanced
    subsamples of val (every group must be present there).

    Args:
        model: trained classifier or SplitModel.
        data: dataset object or folder with train (when ``scores`` is None), val and test splits.
        tau: pruning threshold in [0, 1] (strict: ``s > tau``; the paper's 0.7).
        scores: the penultimate neurons' s-scores (d,) or :func:`neuron_scores`'s result; None: computed with
            ``alpha``, ``n`` and ``seed`` (the data then needs masks).
        seed: seed of the s-score draw, the balanced subsamples and the solver.

    Returns:
        ``{"baseline", "pruned", "refit", "refit_pruned"}``: each :func:`~shortcut_nb.lastlayer.head_metrics`'s dict
        (``groups`` (accuracy per group, in the order of ``group_names``), ``avg``, ``wga``, ``gap``, ...) plus
        ``n_zeroed``, ``n_used``; None for a refit that could not be made, its reason in ``errors``. Also
        ``pruned_neurons`` (ids, highest s first), ``errors``, ``tau``, ``scores`` (d,), ``group_names``.
    """
    net = _split_model(model)
    load = dict(image_size=image_size, normalize=normalize)
    if scores is None:
        scores = neuron_scores(net, data, alpha=alpha, n=n, seed=seed, split="train", **load)
    s = scores.scores if isinstance(scores, NeuronScores) else _as_array(scores)
    test = _dataset(data, "test", net, **load)
    out = prune_and_refit(net.head, s, tau=tau, test=_features(net, test, batch_size),
                          val=_features(net, _dataset(data, "val", net, **load), batch_size), seed=seed,
                          train_group_counts=_train_counts(data, net, **load), n_groups=test.groups.n_groups)
    out.update(tau=float(tau), scores=s, group_names=list(test.groups.names))
    return out


def dfr(model: nn.Module, data: Data, *, seed: int = 0, n_refits: int = 20, C: float | None = None,
        image_size: int | None = None, normalize: Normalization | str | dict | None = None,
        batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Deep Feature Reweighting: refit the last layer on val (group-balanced, L1), measure both heads on test.

    :func:`shortcut_nb.lastlayer.fit_dfr_checked` (C tuned on two halves of val, else a fixed C, with a note) on
    the val features, :func:`shortcut_nb.lastlayer.head_metrics` of the trained and the DFR head on the test
    features.

    Returns:
        ``{"before", "after"}``: head_metrics' dicts (``groups`` in the order of ``group_names``, ``avg``, ``wga``,
        ``gap``, ``avg_weighted`` when the folder has a train split); ``wga_before``, ``wga_after``; ``C``,
        ``tuned`` (whether C was tuned), ``notes``; ``head``, the DFR head as an ``nn.Linear(d, classes)`` that
        can replace ``model.head`` of a SplitModel; ``group_names``.
    """
    net = _split_model(model)
    load = dict(image_size=image_size, normalize=normalize)
    val = _dataset(data, "val", net, **load)
    test = _dataset(data, "test", net, **load)
    zv, zt = _features(net, val, batch_size), _features(net, test, batch_size)
    res, notes = fit_dfr_checked(zv["z"], zv["y"], zv["g"], seed=seed, n_refits=n_refits, C=C,
                                 n_groups=val.groups.n_groups)
    counts = _train_counts(data, net, **load)
    metrics = dict(train_group_counts=counts, n_groups=test.groups.n_groups)
    before = head_metrics(net.head.weight, net.head.bias, zt["z"], zt["y"], zt["g"], **metrics)
    exact = res.to_linear(dtype=torch.float64)
    after = head_metrics(exact.weight, exact.bias, zt["z"], zt["y"], zt["g"], **metrics)
    return {"before": before, "after": after, "wga_before": before["wga"], "wga_after": after["wga"],
            "C": float(res.C), "tuned": bool(res.tuning_wga), "notes": notes,
            "head": res.to_linear(device=net.head.weight.device), "group_names": list(test.groups.names)}


# --------------------------------------------------------------------------- §6: ViT attention heads


def attention_heads(model: nn.Module, data: Data, *, n: int = 50, seed: int = 0, query: Query = "core",
                    threshold: float = 0.5, split: Split | None = None, image_size: int | None = None,
                    normalize: Normalization | str | dict | None = None, batch_size: int = 8) -> dict[str, Any]:
    """Each ViT layer × head's share of attention on spurious patches, against the patches' area (Fig. 9).

    :func:`shortcut_nb.attention.per_image_shares` (attention from ``query`` patches, by default every
    non-spurious "core" patch) on up to ``n`` masked images of ``split`` (None: a dataset object's own, else
    ``"train"``), then
    :func:`shortcut_nb.attention.head_statistics` and :func:`shortcut_nb.attention.heads_beyond_area`.

    Args:
        model: a timm VisionTransformer (or DeiT) classifier, or a SplitModel of kind ``"vit"``.
        threshold: a patch is spurious when more than this fraction of it is.

    Returns:
        ``{"n_images", "share" (L, H), "area" (the chance level), "lift" (L, H), "excess", "se", "lower" (L, H),
        "beyond_area"}``: ``beyond_area`` the (layer, head) pairs whose share exceeds the area significantly and
        by a lift of at least :data:`shortcut_nb.attention.LIFT_MIN`, largest lift first.

    Raises:
        TypeError: ``model`` is a CNN (or a ViT not in timm's layout: ``.blocks``, ``.patch_embed``).
    """
    net = _split_model(model)
    if net.kind != "vit":
        raise TypeError(f"attention_heads needs a ViT with attention heads (timm's VisionTransformer layout: .blocks "
                        f"and .patch_embed); model {net.name!r} is a CNN: use neuron_scores for its neurons")
    ds = _dataset(data, _split_of(data, split, "train"), net, image_size=image_size, normalize=normalize)
    samples = _masked_samples(net, ds, n=n, seed=seed, who="attention_heads")
    shares, areas, _ = per_image_shares(net, samples.images, samples.masks, query=query, threshold=threshold,
                                        batch_size=batch_size)
    stats = head_statistics(shares, areas)
    stats["beyond_area"] = heads_beyond_area(stats)
    return stats
