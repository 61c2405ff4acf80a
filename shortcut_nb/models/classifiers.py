"""A researcher's own classifier: split into backbone and head (its trained head kept), or loaded from a checkpoint.

:func:`as_split_model` splits a timm or torchvision classifier (or one whose head is named); :func:`load_classifier`
builds the architecture a checkpoint names and loads it as it is, its classifier fitting the data's classes.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from . import (CLASSIFIER_ATTRIBUTES, SMALL_MODELS, SplitModel, _strip_classifier, _strip_module_prefix, build_model,
               model_kind, read_state_dict)

def _timm_layout(net: nn.Module) -> bool:
    return all(hasattr(net, a) for a in ("get_classifier", "reset_classifier", "forward_features", "forward_head"))


def _is_vit(net: nn.Module) -> bool:
    """timm's VisionTransformer layout (``blocks``, ``patch_embed``): what the ViT analyses read."""
    return hasattr(net, "blocks") and hasattr(net, "patch_embed")


def _module_at(net: nn.Module, path: str) -> nn.Module:
    try:
        return net.get_submodule(path)
    except AttributeError:
        raise ValueError(f"the model has no module {path!r}: name the classifier's attribute path, e.g. 'fc' or "
                         "'classifier.1'") from None


def _last_linear(module: nn.Module, path: str) -> str | None:
    """The attribute path of ``module``'s last ``nn.Linear`` (itself when it is one), below ``path``."""
    if isinstance(module, nn.Linear):
        return path
    if isinstance(module, nn.Sequential):
        for name, child in reversed(list(module.named_children())):
            if isinstance(child, nn.Linear):
                return f"{path}.{name}"
            if not isinstance(child, (nn.Dropout, nn.Identity, nn.Flatten)):
                return None  # something after the last Linear (e.g. a softmax): not a plain linear head
    return None


def _set_module(net: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


def as_split_model(net: nn.Module, *, head: str | None = None, name: str | None = None) -> SplitModel:
    """A trained classifier as a :class:`SplitModel` (backbone → penultimate z, linear head), its head kept.

    - a :class:`SplitModel` is returned as it is;
    - ``head`` names the classifier's attribute path (``"fc"``, ``"classifier.1"``, ``"heads.head"``): that
      ``nn.Linear`` becomes the head and an identity takes its place in the backbone;
    - a timm model splits by timm's own ``get_classifier`` / ``reset_classifier`` (pre-logits features, e.g.
      after ConvNeXt's head norm);
    - a torchvision model splits at the last ``nn.Linear`` of ``fc``, ``classifier`` or ``heads``.

    ``net`` itself is not changed (the split model holds a copy). ``model(x)`` equals ``net(x)`` in eval mode.
    ``kind`` is ``"vit"`` for timm's VisionTransformer layout (what the ViT analyses read), else ``"cnn"``.

    Raises:
        ValueError: no linear classifier is found (name it with ``head=``), or ``head`` is not an ``nn.Linear``.
    """
    if isinstance(net, SplitModel):
        return net
    label = name or _model_name(net)
    backbone = copy.deepcopy(net)
    if head is None and _timm_layout(backbone):
        classifier = backbone.get_classifier()
        classifier = classifier[0] if isinstance(classifier, tuple) else classifier
        if isinstance(classifier, nn.Linear):
            linear = copy.deepcopy(classifier)
            _strip_classifier(backbone)
            return SplitModel(backbone, linear, name=label, kind="vit" if _is_vit(backbone) else "cnn")
    if head is None:
        for attr in CLASSIFIER_ATTRIBUTES:
            if hasattr(backbone, attr) and isinstance(getattr(backbone, attr), nn.Module):
                head = _last_linear(getattr(backbone, attr), attr)
                if head is not None:
                    break
        if head is None:
            raise ValueError(f"no linear classifier found in {type(net).__name__} (looked for timm's get_classifier "
                             f"and the attributes {CLASSIFIER_ATTRIBUTES}): pass head='<attribute path of its "
                             "nn.Linear classifier>'")
    linear = _module_at(backbone, head)
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"head {head!r} is a {type(linear).__name__}, not an nn.Linear: the s-score and the "
                         "last-layer analyses need a linear classifier on the penultimate features")
    _set_module(backbone, head, nn.Identity())
    return SplitModel(backbone, copy.deepcopy(linear), name=label, kind="vit" if _is_vit(backbone) else "cnn")


def _model_name(net: nn.Module) -> str:
    cfg = getattr(net, "pretrained_cfg", None) or {}
    return cfg.get("architecture") or type(net).__name__.lower()


#: prefixes of a model source: a timm name (``timm:`` optional) or a torchvision one
CLASSIFIER_SOURCES = ("timm:", "torchvision:")


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """A checkpoint's state dict and the architecture it names (timm's training checkpoints: ``arch``)."""
    arch = None
    if path.suffix not in (".safetensors",):
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a tensor-only checkpoint that loads with weights_only=True ({err})") from err
        if isinstance(raw, dict):
            arch = raw.get("arch") if isinstance(raw.get("arch"), str) else None
    return _strip_module_prefix(read_state_dict(path)), arch


def checkpoint_arch(path: str | os.PathLike) -> str:
    """The architecture a checkpoint file names (timm's training checkpoints: ``arch``); an error when it names none."""
    _, arch = _read_checkpoint(Path(path))
    if arch is None:
        raise ValueError(f"{path}: the checkpoint does not name its architecture (no 'arch' entry): pass the "
                         "model's name (timm name or 'torchvision:<name>') with this file as the checkpoint")
    return arch


def _create(source: str, *, num_classes: int, image_size: int | None) -> nn.Module:
    """An untrained network of ``source`` (``timm:<name>``, ``<timm name>``, ``torchvision:<name>``)."""
    if source.startswith("torchvision:"):
        name = source.split(":", 1)[1]
        if name not in torchvision.models.list_models():
            raise ValueError(f"unknown torchvision model {name!r} (torchvision.models.list_models() lists them)")
        kwargs = {"image_size": image_size} if image_size and name.startswith("vit_") else {}
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    name = source.split(":", 1)[1] if source.startswith("timm:") else source
    if name not in timm.list_models():
        raise ValueError(f"unknown model {source!r}: a timm name (e.g. resnet18), 'torchvision:<name>' (e.g. "
                         "torchvision:resnet18), or a checkpoint file that names its architecture ('arch')")
    kwargs = {"img_size": image_size} if image_size and _is_vit_name(name) else {}
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def _is_vit_name(name: str) -> bool:
    return model_kind(name) == "vit"


def load_classifier(model: str | os.PathLike, checkpoint: str | os.PathLike | None = None, *,
                    num_classes: int | None = None, image_size: int | None = None,
                    head: str | None = None) -> SplitModel:
    """A researcher's trained classifier, as it is (its classifier kept), split into backbone and head.

    Args:
        model: the architecture: a timm name (``"resnet10t"``, ``"timm:vit_small_patch16_224"``), a torchvision
            one (``"torchvision:resnet18"``), one of this package's small models (``"resnet_mini"``), or a checkpoint
            file that names its architecture (timm's training checkpoints: an ``arch`` entry).
        checkpoint: the weights file (``.pth``/``.pt``/``.bin``/``.safetensors``; a state dict, or timm's
            ``{"arch", "state_dict"}``; ``module.`` prefixes of DDP are removed). Loaded as data
            (``weights_only=True``). None when ``model`` is the file.
        num_classes: the data's classes: the checkpoint's classifier must have this many outputs (an error names
            the file and both shapes otherwise). None: the checkpoint's own.
        image_size: input size (ViTs are built for it; CNNs take any).
        head: the classifier's attribute path when it is not found by itself (see :func:`as_split_model`).

    Returns:
        A :class:`SplitModel` in eval mode whose output equals the checkpoint's network on the same input.
    """
    if checkpoint is None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model {str(model)!r} is neither a checkpoint file nor given a checkpoint: pass "
                                    "a model name (timm, 'torchvision:<name>') and checkpoint=<weights file>")
        state, _ = _read_checkpoint(path)
        source = checkpoint_arch(path)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        state, _ = _read_checkpoint(path)
        source = str(model)
    if num_classes is None:
        num_classes = _checkpoint_classes(path, state)
    if source in SMALL_MODELS or any(k.startswith("f_enc.") for k in state):
        name = source.split(":", 1)[1] if source.startswith("timm:") else source
        split = build_model(name, num_classes=num_classes, image_size=image_size)
        split.load_state_dict(_checked_state(path, state, split), strict=True)
        return split.eval()
    net = _create(source, num_classes=num_classes, image_size=image_size)
    net.load_state_dict(_checked_state(path, state, net), strict=True)
    return as_split_model(net.eval(), head=head, name=source).eval()


def _checkpoint_classes(path: Path, state: dict[str, torch.Tensor]) -> int:
    """The outputs of a checkpoint's classifier: its last 2-D weight under a classifier attribute."""
    for key in reversed(list(state)):
        if state[key].ndim == 2 and key.endswith(".weight") and key.split(".")[0] in CLASSIFIER_ATTRIBUTES:
            return int(state[key].shape[0])
    raise ValueError(f"{path}: no classifier found to read the number of classes from: pass num_classes")


def _checked_state(path: Path, state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` if it fits ``net`` key for key and shape for shape; else an error naming the file and what differs."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: the checkpoint does not fit this architecture: missing {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{' …' if len(unexpected) > 5 else ''}")
    for key, value in state.items():
        if value.shape != own[key].shape:
            classes = " (the classifier: the data's classes must match the checkpoint's)" if key.endswith(
                ("fc.weight", "head.weight", "classifier.weight", "fc.bias", "head.bias")) or "classifier" in key \
                or "heads" in key else ""
            raise ValueError(f"{path}: {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                             f"{tuple(own[key].shape)} in the model{classes}")
    return state
