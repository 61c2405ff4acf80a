"""Sanity checks by model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps").

A detector that reads the model should lose its agreement with the trained model's ground truth when the
weights it reads are re-drawn; one that scores the same on a randomised model reads the data, not the model.
:func:`randomised_copy` gives a copy of a split model with its last block (``scope="last_block"``) or all of it,
head included (``scope="all"``), re-initialised from a seed: every module with a ``reset_parameters`` is reset
(its architecture's own initialisation; batch-norm statistics included), and a parameter no such module owns
(a ViT's class token or position embedding) is re-drawn from a normal of its own mean and standard deviation.
Recompute any detector on the copy and compare its score against the trained model's truth with its chance
level (Spearman 0, AUROC 0.5).
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from ..config import model_device
from ..sscore.layers import _check_split_model

Scope = Literal["last_block", "all"]
SCOPES: tuple[str, ...] = ("last_block", "all")

__all__ = ["SCOPES", "last_block", "randomised_copy"]


def last_block(model: nn.Module) -> nn.Module:
    """The last block of a split model's encoder: a ViT's ``f_enc.blocks[-1]``, a CNN's default target layer
    (``layer4[-1]`` for a ResNet).

    Raises:
        ValueError: the model has neither (pass ``block=`` to :func:`randomised_copy`).
    """
    _check_split_model(model)
    if getattr(model, "kind", None) == "vit" and hasattr(model.f_enc, "blocks"):
        return model.f_enc.blocks[-1]
    default = getattr(model, "default_target_layer", None)
    if default is None:
        raise ValueError(f"no last block known for a {type(model).__name__}: pass block= (a module of model.f_enc)")
    try:
        return default()
    except ValueError as err:
        raise ValueError(f"no last block known for this model ({err}): pass block= (a module of model.f_enc)") from None


def _name_in(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError(f"block ({type(module).__name__}) is not a module of the model: pass a module of model.f_enc")


def _reinitialise(module: nn.Module) -> None:
    covered: set[int] = set()
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
            covered.update(id(p) for p in m.parameters(recurse=False))
    with torch.no_grad():
        for p in module.parameters():
            if id(p) not in covered:
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(float(p.mean()), std if std > 0 else 0.02)


def randomised_copy(model: nn.Module, *, scope: Scope = "all", seed: int = 0, block: nn.Module | None = None) -> nn.Module:
    """A copy of a split model with re-initialised weights (see the module docstring); ``model`` is unchanged.

    Args:
        model: a split model (``.f_enc``, ``.head``).
        scope: ``"last_block"`` (the block :func:`last_block` names, or ``block``) or ``"all"`` (every weight).
        seed: the re-initialisation's seed (the global generators are left as they were).
        block: the block to randomise for ``scope="last_block"`` (a module of ``model``).

    Returns:
        The copy, on ``model``'s device, in ``model``'s train/eval mode.
    """
    _check_split_model(model)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if block is not None and scope != "last_block":
        raise ValueError("block= applies to scope='last_block' only")
    name = _name_in(model, block if block is not None else last_block(model)) if scope == "last_block" else ""
    device = model_device(model)
    clone = copy.deepcopy(model).cpu()  # drawn on the CPU: the same weights whatever the device
    target = clone.get_submodule(name) if name else clone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _reinitialise(target)
    return clone.to(device)
