"""Causal effects of flipping one factor on each neuron: the ground truth detectors are scored against.

For pairs ``(x_j, x'_j)`` that differ in one factor (:func:`~.pairs.pairs`) and a unit's activation ``z_k``:

* :func:`neuron_effects`: ``E_k = mean_j |z_k(x'_j) - z_k(x_j)| / std_j z_k(x_j)``, the mean absolute change in
  units of the unit's own standard deviation over the images (a unit constant over them: 0 when it does not
  change either, NaN when it does: no scale to measure the change in).
* :func:`spurious_share`: ``E_attribute / (E_attribute + E_core)`` over the same images (then the
  standardisation cancels): 1 for a unit only the spurious attribute moves, 0 for one only the core moves,
  NaN for one neither moves.
* :func:`logit_effects`: ``mean_j |Δz_k| · |W_ck|``, how far class ``c``'s logit moves through neuron ``k``
  (logit units: the raw change, not the standardised one, times the head's weight).

``layer=None`` means the penultimate vector ``z = model.f_enc(x)``; a layer (a conv block, a ViT block's
``norm1``) means its units' means over positions (patch tokens for a ViT), as in
:func:`~shortcut_nb.sscore.unit_s_scores`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import model_device
from ..sscore.layers import _check_images, _encoder, _EvalMode, _geometry, _probe, _resolve_layer, _to_map
from .pairs import Pairs

__all__ = ["GroundTruth", "activations", "ground_truth", "logit_effects", "neuron_effects", "spurious_share",
           "standardised_change", "truth_from_activations"]


def activations(model: nn.Module, images: Tensor, *, layer: nn.Module | None = None, batch_size: int = 64) -> Tensor:
    """Unit activations of a split model (eval mode, no gradients, on the model's device).

    Args:
        model: a split model (``.f_enc``, ``.head``).
        images: (N, 3, H, W), normalised as the model's inputs.
        layer: None (penultimate z) or a module of ``model.f_enc`` (its units' means over positions).
        batch_size: images per forward pass.

    Returns:
        float32 (N, K) on the CPU.
    """
    enc = _encoder(model)
    _check_images(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    target = None if layer is None else _resolve_layer(model, layer, arg="layer")
    device = model_device(model)
    out = []
    with _EvalMode(model), torch.no_grad():
        for k in range(0, len(images), batch_size):
            x = images[k:k + batch_size].to(device)
            if target is None:
                z = enc(x)
                if not isinstance(z, Tensor) or z.ndim != 2:
                    raise ValueError(f"model.f_enc(x) must return z of shape (B, d), got {getattr(z, 'shape', type(z))}")
            else:
                act = _probe(enc, target, x).act
                z = _to_map(act, _geometry(enc, act)).mean((2, 3))
            out.append(z.float().cpu())
    return torch.cat(out)


def standardised_change(z: Tensor, z_cf: Tensor) -> Tensor:
    """``mean_j |z_cf - z| / std_j z`` per unit (see the module docstring).

    Args:
        z, z_cf: (N, K) activations of the images and of their counterfactuals, N >= 2.

    Returns:
        float32 (K,).
    """
    if not isinstance(z, Tensor) or not isinstance(z_cf, Tensor):
        raise TypeError("z and z_cf must be tensors (N, K)")
    if z.ndim != 2 or z.shape != z_cf.shape or z.shape[0] < 2:
        raise ValueError(f"z and z_cf must both be (N, K) with N >= 2, got {tuple(z.shape)} and {tuple(z_cf.shape)}")
    z, z_cf = z.double(), z_cf.double()
    change = (z_cf - z).abs().mean(0)
    std = z.std(0)
    effect = change / torch.where(std > 0, std, torch.ones_like(std))
    constant = torch.where(change > 0, torch.full_like(change, float("nan")), torch.zeros_like(change))
    return torch.where(std > 0, effect, constant).float()


def _check_pair(images: Tensor, counterfactual_images: Tensor) -> None:
    _check_images(images)
    if not isinstance(counterfactual_images, Tensor) or counterfactual_images.shape != images.shape:
        raise ValueError(f"counterfactual_images must have the shape of images {tuple(images.shape)}, got "
                         f"{tuple(getattr(counterfactual_images, 'shape', ()))}")
    if images.shape[0] < 2:
        raise ValueError(f"images needs at least 2 pairs to measure a standard deviation, got {images.shape[0]}")


def neuron_effects(model: nn.Module, images: Tensor, counterfactual_images: Tensor, *,
                   layer: nn.Module | None = None, batch_size: int = 64) -> Tensor:
    """Each unit's mean absolute change between pairs, in units of its own standard deviation over ``images``.

    Args:
        model: a split model.
        images, counterfactual_images: (N, 3, H, W), pair ``j`` = ``(images[j], counterfactual_images[j])``, N >= 2.
        layer: None (penultimate neurons) or a module of ``model.f_enc`` (its units' spatial means).
        batch_size: images per forward pass.

    Returns:
        float32 (K,) (NaN for a unit constant over ``images`` that changes; see the module docstring).
    """
    _check_pair(images, counterfactual_images)
    z = activations(model, images, layer=layer, batch_size=batch_size)
    z_cf = activations(model, counterfactual_images, layer=layer, batch_size=batch_size)
    return standardised_change(z, z_cf)


def spurious_share(attribute_effect: Tensor, core_effect: Tensor) -> Tensor:
    """``attribute_effect / (attribute_effect + core_effect)`` per unit, NaN where both are 0 (or NaN).

    Args:
        attribute_effect, core_effect: (K,) non-negative effects of the same images' two flips.
    """
    a, c = torch.as_tensor(attribute_effect).double(), torch.as_tensor(core_effect).double()
    if a.ndim != 1 or a.shape != c.shape:
        raise ValueError(f"attribute_effect and core_effect must both be (K,), got {tuple(a.shape)} and {tuple(c.shape)}")
    if (a < 0).any() or (c < 0).any():
        raise ValueError("effects must be non-negative (mean absolute changes)")
    total = a + c
    share = a / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, share, torch.full_like(share, float("nan"))).float()


def logit_effects(z: Tensor, z_cf: Tensor, head_weight: Tensor) -> Tensor:
    """``mean_j |z_cf - z|_jk · |W_ck|``: how far class ``c``'s logit moves through neuron ``k``.

    Args:
        z, z_cf: (N, K) penultimate activations of the images and their counterfactuals.
        head_weight: (C, K), the linear head's weight.

    Returns:
        float32 (C, K).
    """
    if z.ndim != 2 or z.shape != z_cf.shape:
        raise ValueError(f"z and z_cf must both be (N, K), got {tuple(z.shape)} and {tuple(z_cf.shape)}")
    w = torch.as_tensor(head_weight).detach().float().cpu()
    if w.ndim != 2 or w.shape[1] != z.shape[1]:
        raise ValueError(f"head_weight must be (C, {z.shape[1]}), got {tuple(w.shape)}")
    return (z_cf - z).abs().mean(0)[None, :] * w.abs()


@dataclass(frozen=True)
class GroundTruth:
    """Per penultimate neuron (K,): standardised effects of the two flips, the spurious share, and the logit
    effects of the two flips (max over classes of :func:`logit_effects`)."""

    attribute_effect: Tensor
    core_effect: Tensor
    spurious_share: Tensor
    attribute_logit: Tensor
    core_logit: Tensor


def ground_truth(model: nn.Module, attribute_pairs: Pairs, core_pairs: Pairs, *, batch_size: int = 64) -> GroundTruth:
    """The ground truth of ``model``'s penultimate neurons from attribute- and core-flipped pairs of the same images.

    Raises:
        ValueError: the two sets of pairs are not of the same images (draw both with the same dataset, n, seed).
    """
    if not torch.equal(attribute_pairs.indices, core_pairs.indices) or \
            not torch.equal(attribute_pairs.images, core_pairs.images):
        raise ValueError("attribute_pairs and core_pairs must be of the same images: draw both with pairs() from "
                         "the same dataset, n and seed")
    for what, p, flip in (("attribute_pairs", attribute_pairs, "attribute"), ("core_pairs", core_pairs, "core")):
        if p.flipped.flip != flip:
            raise ValueError(f"{what} flip {p.flipped.flip!r}, expected {flip!r}")
    _check_pair(attribute_pairs.images, attribute_pairs.counterfactuals)
    z = activations(model, attribute_pairs.images, batch_size=batch_size)
    z_attr = activations(model, attribute_pairs.counterfactuals, batch_size=batch_size)
    z_core = activations(model, core_pairs.counterfactuals, batch_size=batch_size)
    return truth_from_activations(z, z_attr, z_core, model.head.weight)


def truth_from_activations(z: Tensor, z_attribute: Tensor, z_core: Tensor, head_weight: Tensor) -> GroundTruth:
    """:class:`GroundTruth` from penultimate activations (N, K) of the images and of their attribute- and
    core-flipped counterfactuals, and the head's weight (C, K) (what :func:`ground_truth` computes after its
    forward passes; a caller that needs ``z`` for more, e.g. the mask-free detectors, passes it here)."""
    attribute, core = standardised_change(z, z_attribute), standardised_change(z, z_core)
    return GroundTruth(attribute, core, spurious_share(attribute, core),
                       logit_effects(z, z_attribute, head_weight).amax(0),
                       logit_effects(z, z_core, head_weight).amax(0))
