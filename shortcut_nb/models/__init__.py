"""Model factory: every model splits into an encoder ``f_enc`` and a linear ``head``.

The paper (§3.3) writes a classifier as ``f = h ∘ f_enc`` with ``f_enc: X → R^d``
and a linear ``h``. :func:`build_model` returns exactly that split for the
paper's timm models and for small CPU-sized variants used by the ``smoke`` and
``cpu`` profiles; :func:`as_split_model` splits a researcher's own timm or
torchvision classifier (its trained head kept), and :func:`load_classifier`
loads one from a checkpoint file as it is.
"""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import huggingface_hub
import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from torch import nn

# Seconds the hub may take to answer a HEAD request before pretrained weights are given up as unreachable.
HUB_ANSWER_TIMEOUT = 3.0
PAPER_MODELS = (
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "vit_base_patch16_224",
    "deit_base_patch16_224",
)


class SplitModel(nn.Module):
    """``model(x) == model.head(model.f_enc(x))``.

    Attributes:
        f_enc: the timm backbone with its classifier removed; ``f_enc(x)`` is the
            penultimate vector z of shape (B, d).
        head: ``nn.Linear(d, num_classes)``.
        name: the factory name the model was built from.
        kind: ``"cnn"`` or ``"vit"``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, *, name: str, kind: str):
        super().__init__()
        self.f_enc = backbone
        self.head = head
        self.name = name
        self.kind = kind

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.f_enc(x))

    def default_target_layer(self) -> nn.Module:
        """Grad-CAM's default layer: the last conv block (CNN) or the last block's norm1 (ViT)."""
        if self.kind == "vit":
            return self.f_enc.blocks[-1].norm1
        enc = self.f_enc
        if hasattr(enc, "layer4"):  # ResNet, ResNeXt
            return enc.layer4[-1]
        if hasattr(enc, "stages"):  # ConvNeXt and other staged CNNs
            return enc.stages[-1]
        if hasattr(enc, "bn2"):  # EfficientNet / MobileNet: the last feature map before pooling
            return enc.bn2
        if hasattr(enc, "blocks"):  # MobileNetV3 and other block-list CNNs
            return enc.blocks[-1]
        raise ValueError(f"no default target layer known for {self.name!r}: pass target_layer= explicitly")


def _resnet_mini(image_size: int) -> nn.Module:
    """A narrow ResNet whose last map is image_size/8 (8×8 at 64 px; ResNet-18 gives 7×7 at 224 px).

    Heatmap-based neuron scores need a last map of at least 7×7 (a standard ResNet at 64 px gives 2×2).
    The usual stem (stride 2 and max-pool) with stride-1 third and fourth stages keeps that resolution;
    one BasicBlock of widths 32..256 per stage keeps a 64-image training step near 0.5 s on two CPU cores.
    """
    from timm.models.resnet import BasicBlock, ResNet

    model = ResNet(BasicBlock, (1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=32, num_classes=1000)
    for stage in (model.layer3, model.layer4):
        first = stage[0]
        first.conv1.stride = (1, 1)
        first.downsample[0].stride = (1, 1)
    return model


class ConvStemPatchEmbed(nn.Module):
    """Patch embedding by a small convolutional stem (Xiao et al. 2021, "Early Convolutions Help Transformers
    See Better") instead of one strided convolution.

    Measured here: a plain patchify ViT trained from scratch on a few thousand generated images stays at chance
    on held-out shapes, while with this stem it learns them. It keeps timm's ``PatchEmbed`` interface
    (``patch_size``, ``grid_size``, ``num_patches``, ``img_size``), so token layouts are read the same way.
    """

    def __init__(self, img_size: int = 64, patch_size: int = 8, in_chans: int = 3, embed_dim: int = 128, **_):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"ConvStemPatchEmbed needs a positive patch_size, got {patch_size}")
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = True
        self.output_fmt = "NLC"
        self.dynamic_img_pad = False
        layers: list[nn.Module] = []
        width, stride = 32, 1
        channels = in_chans
        while patch_size % (stride * 2) == 0:  # 3×3 stride-2 convolutions while they divide the patch
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels, width, stride = width, min(width * 2, embed_dim), stride * 2
        rest = patch_size // stride  # what is left (1 for powers of two) is one non-overlapping convolution
        layers.append(nn.Conv2d(channels, embed_dim, rest, stride=rest))
        self.proj = nn.Sequential(*layers)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch._assert (not `if`) keeps the module traceable by torch.fx, as timm's own PatchEmbed does
        torch._assert(x.shape[-2] == self.img_size[0], f"input height differs from the {self.img_size[0]} px this ViT was built for")
        torch._assert(x.shape[-1] == self.img_size[1], f"input width differs from the {self.img_size[1]} px this ViT was built for")
        return self.proj(x).flatten(2).transpose(1, 2)


def _vit_mini(image_size: int, *, distilled: bool = False) -> nn.Module:
    """A 4-block ViT with an 8×8 patch grid at any image size divisible by 8 and a convolutional patch stem."""
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    if image_size % 8:
        raise ValueError(f"vit_mini needs an image_size divisible by 8, got {image_size}")
    cls = VisionTransformerDistilled if distilled else VisionTransformer
    return cls(img_size=image_size, patch_size=image_size // 8, embed_dim=128, depth=4, num_heads=4,
               mlp_ratio=2.0, num_classes=1000, embed_layer=ConvStemPatchEmbed)


SMALL_MODELS: dict[str, Callable[[int], nn.Module]] = {
    "resnet_mini": _resnet_mini,
    "vit_mini": _vit_mini,
    "deit_mini": lambda s: _vit_mini(s, distilled=True),
}
SMALL_DEFAULT_SIZE = 64
# Bumped whenever a small model's layers change, so cached checkpoints and stand-in weights of the old
# definition are not loaded into the new one (they are keyed by it).
ARCH_VERSIONS = {"resnet_mini": 2, "vit_mini": 2, "deit_mini": 2}


def arch_version(name: str) -> int:
    """Version of a model definition (timm models: 1; they follow timm's own versioning)."""
    return ARCH_VERSIONS.get(name, 1)


def model_kind(name: str) -> str:
    return "vit" if ("vit" in name or "deit" in name) else "cnn"


def _strip_classifier(backbone: nn.Module) -> nn.Linear:
    """Detach timm's classifier, returning it; the backbone then outputs pre-logits."""
    if hasattr(backbone, "dist_token") and hasattr(backbone, "head_dist"):
        # Distilled DeiT averages two heads at inference; we keep the class-token
        # head only so z stays a single d-vector and h stays linear.
        backbone.head_dist = nn.Identity()
        backbone.set_distilled_training(False)
        backbone.forward_head = _distilled_pre_logits.__get__(backbone)
    backbone.reset_classifier(0)
    return backbone


def _distilled_pre_logits(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    return x[:, 0]


def build_model(
    name: str,
    *,
    num_classes: int = 2,
    pretrained: bool = False,
    weights_file: str | os.PathLike | None = None,
    image_size: int | None = None,
    backbone_only: bool = False,
) -> SplitModel:
    """Build a classifier split into ``f_enc`` and ``head``.

    Args:
        name: a timm model name (the paper's: ``resnet18``, ``resnet50``,
            ``resnext50_32x4d``, ``vit_base_patch16_224``, ``deit_base_patch16_224``)
            or a CPU-sized variant (``resnet_mini``, ``vit_mini``, ``deit_mini``).
        num_classes: size of the linear head.
        pretrained: load ImageNet weights through timm's own mechanism (its hub
            cache). Without network access and without cached weights this
            fails with a message that says where to put a weights file.
        weights_file: a local ``.pth``/``.pt``/``.bin``/``.safetensors`` file with
            either a timm state dict or a full :class:`SplitModel` state dict.
            Loaded as data (``weights_only=True``). A classifier in the file
            that fits ``num_classes`` becomes the head; one of another shape is an
            error naming both shapes, unless ``backbone_only``.
        image_size: input size for the small variants (default 64); timm models
            keep their own default unless given.
        backbone_only: take only the backbone from ``weights_file`` and start a new
            head (ImageNet or stand-in weights for fine-tuning): a classifier in
            the file is then dropped whatever its shape.

    Returns:
        A :class:`SplitModel` with ``model(x) == model.head(model.f_enc(x))``.
    """
    kind = model_kind(name)
    if name in SMALL_MODELS:
        if pretrained:
            raise ValueError(
                f"{name!r} has no public pretrained weights; build it with weights_file= (for example "
                "the stand-in pretraining of shortcut_nb.pretrain) or use one of " + ", ".join(PAPER_MODELS)
            )
        backbone = SMALL_MODELS[name](image_size or SMALL_DEFAULT_SIZE)
    else:
        if name not in timm.list_models() and name not in timm.list_models(pretrained=True):
            raise ValueError(f"unknown model {name!r}: use one of {PAPER_MODELS + tuple(SMALL_MODELS)} or a timm name")
        kwargs = {"img_size": image_size} if (image_size and kind == "vit") else {}
        backbone = _create_timm(name, pretrained=pretrained and weights_file is None, **kwargs)
    # z's width: timm's head_hidden_size where a model has a pre-logits layer (MobileNetV3), else num_features
    d = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    _strip_classifier(backbone)
    head = nn.Linear(d, num_classes)
    model = SplitModel(backbone, head, name=name, kind=kind)
    if weights_file is not None:
        load_weights(model, weights_file, backbone_only=backbone_only)
    return model


def cached_timm_weights(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The local file of ``name``'s ImageNet weights in the Hugging Face or torch hub cache, if there is one.

    Args:
        name: a timm model name.
        cache_dir: the Hugging Face hub cache (default: huggingface_hub's, ``$HF_HUB_CACHE`` or
            ``~/.cache/huggingface/hub``).
    """
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in ("model.safetensors", "pytorch_model.bin"):
            hit = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=cache_dir, revision=revision or None)
            if isinstance(hit, str):
                return Path(hit)
    if cfg.url:
        local = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if local.is_file():
            return local
    return None


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here (None when it may be): decided within seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    endpoint = huggingface_hub.constants.ENDPOINT
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as err:  # no DNS: no network; the hub client would retry for about a minute
        return f"{host} does not resolve ({err})"
    try:  # a host that resolves but never answers would hold the hub client for its timeouts and retries (~46 s)
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_ANSWER_TIMEOUT).close()
    except urllib.error.HTTPError:
        return None  # it answered (any status): the hub client takes it from here
    except (OSError, ValueError) as err:  # URLError, a timeout, a refused connection, a malformed endpoint
        return f"the hub at {endpoint} did not answer within {HUB_ANSWER_TIMEOUT:g} s ({err})"
    return None


def _create_timm(name: str, *, pretrained: bool, **kwargs) -> nn.Module:
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    cached = cached_timm_weights(name)
    if cached is not None:  # a local cache needs no network at all
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(cached)}, **kwargs)
    why = _hub_unreachable()
    try:
        if why is not None:
            raise ConnectionError(why)
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # network errors come in many types (OSError, HF hub errors)
        raise RuntimeError(
            f"could not load ImageNet weights for {name!r} ({type(err).__name__}: {err}).\n"
            "This machine may have no network access, and no cached copy was found. Either\n"
            f"  * download the weights elsewhere (timm.create_model({name!r}, pretrained=True) fills the "
            "Hugging Face cache under ~/.cache/huggingface/hub) and copy that cache here (or point $HF_HUB_CACHE "
            "at it), or\n"
            f"  * save them as a state dict file and call build_model({name!r}, weights_file='path/to/file.pth')."
        ) from err


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a user file as data, never as code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            state = load_safetensors(str(path))
        except SafetensorError as err:
            raise ValueError(f"{path}: not a safetensors file ({err}); a .safetensors name needs a file written by "
                             "safetensors.torch.save_file (a torch.save file should be named .pt or .pth)") from err
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a tensor-only checkpoint that loads with weights_only=True ({err})") from err
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict)")
    return state


#: where timm and torchvision keep a classifier, in the order looked for (the first Linear found is the head)
CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head", "last_linear")


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DataParallel / DDP state dict (every key ``module.…``) as the bare model's."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _classifier_keys(state: dict[str, torch.Tensor]) -> tuple[str, str | None] | None:
    """The (weight, bias) keys of a timm-layout state dict's classifier (``fc``, ``head``, ``head.fc``, ...)."""
    for prefix in ("fc", "head", "head.fc", "classifier", "last_linear"):
        weight = f"{prefix}.weight"
        if weight in state and state[weight].ndim == 2:
            bias = f"{prefix}.bias"
            return weight, bias if bias in state else None
    return None


def _head_mismatch(path, found: torch.Size, head: nn.Linear) -> ValueError:
    return ValueError(
        f"{path}: its classifier has shape {tuple(found)} ({found[0]} classes from {found[1]} features) but the "
        f"model's head is {tuple(head.weight.shape)} ({head.out_features} classes from {head.in_features} features). "
        "A trained classifier must fit the data's classes; to keep only the backbone and start a new head (ImageNet "
        "or other pretraining), pass backbone_only=True")


def load_weights(model: SplitModel, path: str | os.PathLike, *, backbone_only: bool = False) -> SplitModel:
    """Load a SplitModel or timm state dict into ``model``.

    A classifier in the file that fits ``model.head`` is loaded into it; one of another shape raises (naming
    both shapes) unless ``backbone_only``, which keeps the backbone alone. A file without a classifier loads the
    backbone and leaves the head as it is. Distilled DeiT's second head (``head_dist``) is never used.
    """
    state = _strip_module_prefix(read_state_dict(path))
    head_state: dict[str, torch.Tensor] = {}
    if any(k.startswith("f_enc.") for k in state):
        head_state = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
        backbone = {k[len("f_enc."):]: v for k, v in state.items() if k.startswith("f_enc.")}
        other = sorted(set(state) - {f"f_enc.{k}" for k in backbone} - {f"head.{k}" for k in head_state})
    else:
        keys = _classifier_keys(state)
        if keys is not None:
            head_state = {"weight": state[keys[0]]} | ({"bias": state[keys[1]]} if keys[1] else {})
        own = model.f_enc.state_dict()
        backbone = {k: v for k, v in state.items() if k in own or not _is_classifier_key(k)}
        other = []
    own = model.f_enc.state_dict()
    missing = [k for k in own if k not in backbone]
    unexpected = [k for k in backbone if k not in own] + other
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in backbone.items() if k in own and v.shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{path}: weights do not fit {model.name!r}: missing {missing[:5]}, unexpected {unexpected[:5]}"
                         + (f", other shapes {wrong[:3]}" if wrong else ""))
    if head_state and not backbone_only:
        if head_state["weight"].shape != model.head.weight.shape:
            raise _head_mismatch(path, head_state["weight"].shape, model.head)
        model.head.load_state_dict(head_state)
    model.f_enc.load_state_dict(backbone, strict=True)
    return model


def _is_classifier_key(key: str) -> bool:
    return key.split(".")[0] in {"fc", "head", "head_dist", "classifier", "last_linear"}


# A researcher's own classifiers build on the factory above, so they are imported after it (one public namespace).
from .classifiers import CLASSIFIER_SOURCES, as_split_model, checkpoint_arch, load_classifier  # noqa: E402,F401
