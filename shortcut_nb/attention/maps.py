"""Attention per layer and per head in ViTs, and how much of it lands on spurious regions.

The paper (§6.2, Fig. 9) takes, for one target patch, the row of every layer's
attention matrix (averaged over heads, Fig. 9 top, or per head, Fig. 9 bottom)
and shows it as a heatmap over the patch grid. This module computes those rows
for timm ViTs (plain ViT: one prefix token; distilled DeiT: two) and goes one
step further: given the spurious-region masks of the data set, it measures the
share of each head's attention mass that falls on spurious patches, next to
the share a head that ignores the image would put there (the spurious patches'
area), so that a head which really looks at the spurious feature stands out
from an area effect.

Layer and head indices are 0-based throughout (the paper counts from 1).

Typical use::

    attn = attention_maps(model, images)               # (B, L, H, T, T)
    layout = token_layout(model)
    maps = patch_attention(attn, layout, (3, 4))       # (B, L, H, gh, gw)
    share = spurious_attention_share(attn, masks, layout, query="core")   # (L, H)
    area = spurious_area_share(masks, layout, query="core")
    head_table(share, area, value="lift")
    heads_above_chance(share, area, margin=0.1)
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Literal, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TokenLayout",
    "token_layout",
    "unfused_attention",
    "attention_maps",
    "patch_attention",
    "layer_mean",
    "upsample_to_image",
    "mask_to_patches",
    "spurious_patches",
    "spurious_attention_share",
    "spurious_area_share",
    "attention_lift",
    "head_table",
    "heads_above_chance",
]

Query = Union[Literal["core", "spurious", "cls"], tuple[int, int]]
Target = Union[str, tuple[int, int]]
SizeLike = Union[int, Sequence[int]]


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class TokenLayout:
    """Where each token of a timm ViT sits.

    Tokens are ordered ``[prefix tokens..., patch tokens in row-major order]``
    (timm's ``_pos_embed``): a plain ViT has one prefix token (``cls``), a
    distilled DeiT two (``cls``, ``dist``), models with register tokens more.

    Attributes:
        num_prefix_tokens: tokens before the first patch token.
        grid: patch grid ``(gh, gw)``.
        patch_size: patch size in pixels ``(ph, pw)``.
        image_size: the model's input size ``(H, W)`` in pixels.
        prefix_names: a name per prefix token (``"cls"``, ``"dist"``, ``"reg0"``...).
    """

    num_prefix_tokens: int
    grid: tuple[int, int]
    patch_size: tuple[int, int]
    image_size: tuple[int, int]
    prefix_names: tuple[str, ...] = ()

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.num_patches

    def patch_index(self, row: int, col: int) -> int:
        """Token index of the patch at ``(row, col)`` of the patch grid."""
        gh, gw = self.grid
        if not (0 <= int(row) < gh and 0 <= int(col) < gw):
            raise ValueError(f"patch (row, col) must lie in the {gh}x{gw} grid, got ({row}, {col})")
        return self.num_prefix_tokens + int(row) * gw + int(col)

    def patch_of_pixel(self, y: float, x: float, image_size: SizeLike | None = None) -> int:
        """Token index of the patch holding pixel ``(y, x)`` of an image of size ``image_size``.

        Args:
            y, x: pixel coordinates (row, column) in an image of ``image_size``.
            image_size: ``H`` or ``(H, W)`` of the image the pixel belongs to
                (default: the model's input size); an image of another size is
                mapped onto the grid proportionally, as a resize would.

        Returns:
            The token index (prefix tokens included).
        """
        h, w = _pair(image_size, "image_size") if image_size is not None else self.image_size
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"pixel (y, x) must lie in the {h}x{w} image, got ({y}, {x})")
        gh, gw = self.grid
        return self.patch_index(int(y * gh // h), int(x * gw // w))

    def prefix_index(self, name: str) -> int:
        """Token index of a prefix token by name (``"cls"``, ``"dist"``...)."""
        if name not in self.prefix_names:
            raise ValueError(f"target token {name!r} not in this model's prefix tokens {self.prefix_names}")
        return self.prefix_names.index(name)


def _pair(size: SizeLike, name: str) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return (int(size[0]), int(size[1]))
    raise TypeError(f"{name} must be an int or a pair of ints (H, W), got {size!r}")


def _backbone(model: nn.Module) -> nn.Module:
    """The timm ViT inside a SplitModel (``.f_enc``), or the model itself."""
    backbone = getattr(model, "f_enc", model)
    if not (hasattr(backbone, "blocks") and hasattr(backbone, "patch_embed")):
        raise TypeError(
            f"model must be a ViT (a SplitModel whose f_enc, or a timm model which, has .blocks and "
            f".patch_embed), got {type(backbone).__name__}"
        )
    return backbone


def token_layout(model: nn.Module) -> TokenLayout:
    """Read the token layout off a timm ViT (never assumes a 14x14 grid).

    Args:
        model: a :class:`~shortcut_nb.models.SplitModel` of kind ``"vit"`` or a
            timm ``VisionTransformer`` (DeiT included).

    Returns:
        A :class:`TokenLayout`.
    """
    enc = _backbone(model)
    pe = enc.patch_embed
    num_prefix = int(getattr(enc, "num_prefix_tokens", 1))
    names: list[str] = []
    if getattr(enc, "cls_token", None) is not None:
        names.append("cls")
    if getattr(enc, "dist_token", None) is not None:  # timm's VisionTransformerDistilled
        names.append("dist")
    names += [f"reg{i}" for i in range(int(getattr(enc, "num_reg_tokens", 0) or 0))]
    if len(names) != num_prefix:  # an unfamiliar layout: keep the count, drop the guessed names
        names = [f"prefix{i}" for i in range(num_prefix)]
    return TokenLayout(
        num_prefix_tokens=num_prefix,
        grid=_pair(tuple(int(g) for g in pe.grid_size), "patch_embed.grid_size"),
        patch_size=_pair(tuple(int(p) for p in pe.patch_size), "patch_embed.patch_size"),
        image_size=_pair(tuple(int(s) for s in pe.img_size), "patch_embed.img_size"),
        prefix_names=tuple(names),
    )


# --------------------------------------------------------------------------- extraction


def _attention_modules(enc: nn.Module) -> list[nn.Module]:
    mods = [blk.attn for blk in enc.blocks]
    for i, attn in enumerate(mods):
        missing = [a for a in ("qkv", "num_heads", "scale", "q_norm", "k_norm") if getattr(attn, a, None) is None]
        if missing:
            raise TypeError(
                f"blocks[{i}].attn ({type(attn).__name__}) is not a timm qkv attention (missing {missing}); "
                "only standard timm ViT/DeiT attention is supported"
            )
    return mods


@contextlib.contextmanager
def unfused_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Switch timm's fused attention (``F.scaled_dot_product_attention``) off inside the block.

    The explicit softmax path then runs, so its attention matrix can be hooked
    (e.g. by ``timm.utils.AttentionExtract``). Every module's ``fused_attn``
    flag is restored on exit, also when the block raises.
    """
    saved = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    try:
        for m, _ in saved:
            m.fused_attn = False
        yield model
    finally:
        for m, flag in saved:
            m.fused_attn = flag


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the extraction; each module's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _softmax_from_qkv(attn: nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) per head, exactly as timm's non-fused path computes it.

    Args:
        attn: a timm ``Attention`` module.
        qkv: output of ``attn.qkv``, shape (B, T, 3 * H * head_dim).

    Returns:
        (B, H, T, T).
    """
    B, T, _ = qkv.shape
    H = attn.num_heads
    head_dim = qkv.shape[-1] // (3 * H)
    q, k, _ = qkv.reshape(B, T, 3, H, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    # Same order of operations as timm's explicit path (scale q first) so the two agree to rounding.
    return ((q * attn.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1)


def attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    method: Literal["qkv", "softmax"] = "qkv",
) -> torch.Tensor:
    """Attention matrices of every block and head, without changing the model's outputs.

    ``method="qkv"`` (default) hooks each block's ``attn.qkv`` and recomputes
    ``softmax(q kᵀ · scale)`` (with ``q_norm``/``k_norm``) from it, so the model
    keeps its fused attention and its forward is untouched. ``method="softmax"``
    switches fused attention off for the extraction only (flags restored after,
    even on error) and reads the softmax where timm applies ``attn_drop``.
    Both run in eval mode under ``torch.no_grad`` and restore the model's mode.
    The attention returned is the pre-dropout softmax.

    Args:
        model: a ViT :class:`~shortcut_nb.models.SplitModel` or timm ViT/DeiT.
        images: (B, 3, H, W), moved to the model's device.
        layers: block indices to keep (default: all), in the order given.

    Returns:
        (B, L, H, T, T) float32 on the model's device; ``[b, l, h, i, :]`` is
        query token i's attention over all T tokens (rows sum to 1).
    """
    if method not in ("qkv", "softmax"):
        raise ValueError(f"method must be 'qkv' or 'softmax', got {method!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor of shape (B, 3, H, W), got {getattr(images, 'shape', type(images))}")
    enc = _backbone(model)
    mods = _attention_modules(enc)
    n = len(mods)
    keep = list(range(n)) if layers is None else [int(i) for i in layers]
    if not keep or any(not -n <= i < n for i in keep):
        raise ValueError(f"layers must be indices into the model's {n} blocks, got {layers!r}")
    keep = [i % n for i in keep]
    device = next(model.parameters()).device
    captured: dict[int, torch.Tensor] = {}
    handles = []

    def qkv_hook(i: int):
        def hook(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            captured[i] = _softmax_from_qkv(mods[i], out)  # overwrite: a re-run block fires again

        return hook

    def softmax_hook(i: int):
        def hook(_mod: nn.Module, inp: tuple) -> None:
            captured[i] = inp[0].float()

        return hook

    with contextlib.ExitStack() as stack:
        stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        if method == "softmax":
            stack.enter_context(unfused_attention(model))
        try:
            for i in set(keep):
                if method == "qkv":
                    handles.append(mods[i].qkv.register_forward_hook(qkv_hook(i)))
                else:
                    handles.append(mods[i].attn_drop.register_forward_pre_hook(softmax_hook(i)))
            model(images.to(device))
        finally:
            for h in handles:
                h.remove()
    missing = [i for i in keep if i not in captured]
    if missing:
        raise RuntimeError(f"attention of blocks {missing} was not seen during the forward pass ({method=})")
    return torch.stack([captured[i] for i in keep], dim=1)


# --------------------------------------------------------------------------- maps


def _check_attn(attn: torch.Tensor, layout: TokenLayout) -> None:
    if not isinstance(attn, torch.Tensor) or attn.ndim != 5 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attn must be a (B, L, H, T, T) tensor, got {getattr(attn, 'shape', type(attn))}")
    if attn.shape[-1] != layout.num_tokens:
        raise ValueError(
            f"attn has {attn.shape[-1]} tokens but the layout expects {layout.num_tokens} "
            f"({layout.num_prefix_tokens} prefix + {layout.grid[0]}x{layout.grid[1]} patches)"
        )


def _query_index(layout: TokenLayout, target: Target) -> int:
    if isinstance(target, str):
        return layout.prefix_index(target)
    if isinstance(target, Sequence) and len(target) == 2:
        return layout.patch_index(*target)
    raise ValueError(f"target_patch must be a (row, col) pair or a prefix token name such as 'cls', got {target!r}")


def patch_attention(
    attn: torch.Tensor,
    layout: TokenLayout,
    target_patch: Target,
    *,
    renormalize: bool = False,
) -> torch.Tensor:
    """Fig. 9: one query token's attention over the patch grid, per layer and head.

    Args:
        attn: (B, L, H, T, T) from :func:`attention_maps`.
        layout: :func:`token_layout` of the model.
        target_patch: ``(row, col)`` in the patch grid, or a prefix token name
            (``"cls"``; ``"dist"`` for distilled DeiT).
        renormalize: rescale each map to sum to 1 over the patches (the prefix
            tokens' share removed); off by default, so maps keep raw weights.

    Returns:
        (B, L, H, gh, gw): ``attn[b, l, h, q, prefix:]`` reshaped to the grid.
    """
    _check_attn(attn, layout)
    q = _query_index(layout, target_patch)
    row = attn[..., q, layout.num_prefix_tokens:]
    if renormalize:
        row = row / row.sum(-1, keepdim=True).clamp_min(torch.finfo(row.dtype).tiny)
    return row.reshape(*row.shape[:-1], *layout.grid)


def layer_mean(maps: torch.Tensor) -> torch.Tensor:
    """Mean over heads per layer (Fig. 9 top): (B, L, H, ...) -> (B, L, ...)."""
    if maps.ndim < 3:
        raise ValueError(f"maps must have shape (B, L, H, ...), got {tuple(maps.shape)}")
    return maps.mean(dim=2)


def upsample_to_image(
    maps: torch.Tensor,
    image_size: SizeLike,
    *,
    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest",
) -> torch.Tensor:
    """Resize patch-grid maps to image pixels for overlays.

    Args:
        maps: (..., gh, gw).
        image_size: ``H`` or ``(H, W)``.
        mode: ``"nearest"`` (default) shows each patch as a block, without
            inventing detail below the patch size; ``"bilinear"`` is smoother.

    Returns:
        (..., H, W), same dtype and device.
    """
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"mode must be 'nearest', 'bilinear' or 'bicubic', got {mode!r}")
    if maps.ndim < 2:
        raise ValueError(f"maps must have shape (..., gh, gw), got {tuple(maps.shape)}")
    size = _pair(image_size, "image_size")
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(flat, size=size, mode=mode, **kwargs)
    return out.reshape(*lead, *size).to(maps.dtype)


# --------------------------------------------------------------------------- masks


def mask_to_patches(
    masks: torch.Tensor,
    layout: TokenLayout,
    image_size: SizeLike | None = None,
) -> torch.Tensor:
    """Fraction of each patch covered by the spurious mask.

    Args:
        masks: bool (B, H, W) spurious-region masks (a float mask in [0, 1] works too).
        layout: :func:`token_layout` of the model.
        image_size: the size the masks are aligned to (the model input, as
            ``load_dataset`` resizes masks like images); masks of another size
            are first resized to it (nearest). Default: the masks' own size.

    Returns:
        (B, gh*gw) float in [0, 1], patches in token (row-major) order. Each
        value is the mean of the mask over the patch's pixels (exact when the
        size divides by the grid; otherwise adaptive-pooling bins).
    """
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        raise ValueError(f"masks must be a (B, H, W) tensor, got {getattr(masks, 'shape', type(masks))}")
    m = masks.float().unsqueeze(1)
    if image_size is not None:
        size = _pair(image_size, "image_size")
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="nearest")
    if m.shape[-2] < layout.grid[0] or m.shape[-1] < layout.grid[1]:
        raise ValueError(f"masks of size {tuple(m.shape[-2:])} are smaller than the {layout.grid} patch grid")
    return F.adaptive_avg_pool2d(m, layout.grid).flatten(1)


def spurious_patches(masks: torch.Tensor, layout: TokenLayout, threshold: float = 0.5) -> torch.Tensor:
    """Patches that are mostly spurious: covered fraction ``> threshold``.

    Args:
        masks: bool (B, H, W) spurious-region masks.
        layout: :func:`token_layout` of the model.
        threshold: in [0, 1); 0.5 means "more than half the patch".

    Returns:
        bool (B, gh*gw).
    """
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return mask_to_patches(masks, layout) > threshold


def _patch_labels(masks: torch.Tensor, layout: TokenLayout, threshold: float) -> torch.Tensor:
    """bool (B, N) from pixel masks (B, H, W) or patch labels already of shape (B, N)."""
    if isinstance(masks, torch.Tensor) and masks.ndim == 2:
        if masks.shape[1] != layout.num_patches:
            raise ValueError(f"patch-level masks must be (B, {layout.num_patches}), got {tuple(masks.shape)}")
        return masks.bool()
    return spurious_patches(masks, layout, threshold)


def _normalize_query(query: object) -> Query:
    if isinstance(query, str):
        if query not in ("core", "spurious", "cls"):
            raise ValueError(f"query must be 'core', 'spurious', 'cls' or a (row, col) pair, got {query!r}")
        return query  # type: ignore[return-value]
    if isinstance(query, Sequence) and len(query) == 2:
        return (int(query[0]), int(query[1]))
    raise ValueError(f"query must be 'core', 'spurious', 'cls' or a (row, col) pair, got {query!r}")


def _query_weights(spur: torch.Tensor, layout: TokenLayout, query: Query) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image weights over query patches, and which images have any query of that kind.

    Returns:
        weights (B, N) summing to 1 per used image (zero rows for unused ones; unused
        for prefix queries), and used (B,) bool.
    """
    B, N = spur.shape
    query = _normalize_query(query)
    if query == "core":
        sel = ~spur
    elif query == "spurious":
        sel = spur
    else:  # one fixed query token: every image counts
        if query != "cls":
            layout.patch_index(*query)  # validates the coordinates
        used = torch.ones(B, dtype=torch.bool, device=spur.device)
        return torch.zeros(B, N, device=spur.device), used
    counts = sel.sum(1)
    used = counts > 0
    if not bool(used.any()):
        raise ValueError(f"no image has any {query!r} patch (after thresholding the masks); cannot average over them")
    return sel.float() / counts.clamp_min(1).unsqueeze(1), used


def spurious_attention_share(
    attn: torch.Tensor,
    masks: torch.Tensor,
    layout: TokenLayout,
    *,
    query: Query = "core",
    threshold: float = 0.5,
) -> torch.Tensor:
    """Share of each head's attention mass (over patch tokens, renormalised) on spurious patches.

    For each image, layer, head and query token: the query's attention row is
    restricted to the patch tokens, rescaled to sum to 1, and summed over the
    spurious patches. This is averaged over the query patches of the chosen
    kind within each image, then over images (each image counts once; an image
    with no query patch of that kind is left out).

    Args:
        attn: (B, L, H, T, T) from :func:`attention_maps`.
        masks: bool (B, H, W) pixel masks of the spurious region, or bool
            (B, gh*gw) patch labels.
        layout: :func:`token_layout` of the model.
        query: ``"core"`` (non-spurious patches), ``"spurious"``, ``"cls"`` or a
            fixed ``(row, col)`` patch.
        threshold: a patch is spurious when more than this fraction of it is.

    Returns:
        (L, H) float in [0, 1].
    """
    _check_attn(attn, layout)
    query = _normalize_query(query)
    spur = _patch_labels(masks, layout, threshold).to(attn.device)
    if spur.shape[0] != attn.shape[0]:
        raise ValueError(f"masks hold {spur.shape[0]} images but attn {attn.shape[0]}")
    p = layout.num_prefix_tokens
    weights, used = _query_weights(spur, layout, query)
    spur_f = spur.float()
    fixed = None if query in ("core", "spurious") else _query_index(layout, query)
    per_layer = []
    for layer in range(attn.shape[1]):  # one layer at a time keeps the renormalised copy small
        a = attn[:, layer].float()  # (B, H, T, T)
        rows = a[:, :, p:, p:] if fixed is None else a[:, :, fixed : fixed + 1, p:]
        rows = rows / rows.sum(-1, keepdim=True).clamp_min(torch.finfo(rows.dtype).tiny)
        per_query = torch.einsum("bhqk,bk->bhq", rows, spur_f)  # share on spurious keys, per query
        if fixed is None:
            per_layer.append(torch.einsum("bhq,bq->bh", per_query, weights))
        else:
            per_layer.append(per_query[..., 0])
    per_image = torch.stack(per_layer, dim=1)  # (B, L, H)
    return per_image[used].mean(0)


def spurious_area_share(
    masks: torch.Tensor,
    layout: TokenLayout,
    *,
    query: Query | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Chance baseline: the spurious patches' share of the patch grid, averaged over images.

    A head that attends uniformly over the patches puts exactly this share of
    its (patch-renormalised) attention on spurious patches.

    Args:
        masks: bool (B, H, W) pixel masks, or bool (B, gh*gw) patch labels.
        layout: :func:`token_layout` of the model.
        query: when given, average over the same images that
            :func:`spurious_attention_share` with this ``query`` uses.
        threshold: as in :func:`spurious_patches`.

    Returns:
        0-dim float tensor in [0, 1].
    """
    spur = _patch_labels(masks, layout, threshold)
    per_image = spur.float().mean(1)
    if query is not None:
        _, used = _query_weights(spur, layout, query)
        per_image = per_image[used]
    return per_image.mean()


def attention_lift(share: torch.Tensor, area: torch.Tensor | float) -> torch.Tensor:
    """share / area: 1 is chance, above 1 a head attends to spurious patches more than their area explains."""
    area_t = torch.as_tensor(area, dtype=torch.float32, device=share.device)
    if bool((area_t <= 0).any()):
        raise ValueError(f"area must be > 0 (no spurious patches means no lift to measure), got {area}")
    return share.float() / area_t


def head_table(
    share: torch.Tensor,
    area: torch.Tensor | float | None = None,
    *,
    value: Literal["share", "lift", "excess"] = "share",
) -> "pd.DataFrame":
    """A (layers x heads) pandas DataFrame of shares, lifts (share/area) or excesses (share-area).

    Args:
        share: (L, H) from :func:`spurious_attention_share`.
        area: :func:`spurious_area_share`; needed for ``"lift"`` and ``"excess"``,
            and stored in ``df.attrs["area"]`` when given.
        value: what the cells hold.

    Returns:
        ``pandas.DataFrame`` with index ``layer`` (0..L-1) and columns ``head`` (0..H-1).
    """
    import pandas as pd  # noqa: F811 - imported here so the module loads without pandas

    if not isinstance(share, torch.Tensor) or share.ndim != 2:
        raise ValueError(f"share must be an (L, H) tensor, got {getattr(share, 'shape', type(share))}")
    if value not in ("share", "lift", "excess"):
        raise ValueError(f"value must be 'share', 'lift' or 'excess', got {value!r}")
    if value != "share" and area is None:
        raise ValueError(f"value={value!r} needs area (from spurious_area_share)")
    if value == "lift":
        data = attention_lift(share, area)
    elif value == "excess":
        data = share.float() - float(area)
    else:
        data = share.float()
    df = pd.DataFrame(
        data.detach().cpu().numpy(),
        index=pd.RangeIndex(share.shape[0], name="layer"),
        columns=pd.RangeIndex(share.shape[1], name="head"),
    )
    if area is not None:
        df.attrs["area"] = float(area)
    df.attrs["value"] = value
    return df


def heads_above_chance(
    share: torch.Tensor,
    area: torch.Tensor | float,
    margin: float = 0.0,
    *,
    by: Literal["difference", "lift"] = "difference",
) -> list[tuple[int, int]]:
    """(layer, head) pairs whose spurious share exceeds what the area explains.

    Args:
        share: (L, H), typically with ``query="core"`` (core patches attending
            to spurious regions, Fig. 9's observation).
        area: the chance baseline from :func:`spurious_area_share`.
        margin: ``share - area > margin`` (``by="difference"``) or
            ``share / area > 1 + margin`` (``by="lift"``).
        by: how to compare.

    Returns:
        0-based (layer, head) pairs, strongest first.
    """
    if by not in ("difference", "lift"):
        raise ValueError(f"by must be 'difference' or 'lift', got {by!r}")
    if not isinstance(share, torch.Tensor) or share.ndim != 2:
        raise ValueError(f"share must be an (L, H) tensor, got {getattr(share, 'shape', type(share))}")
    score = attention_lift(share, area) - 1.0 if by == "lift" else share.float() - float(area)
    idx = (score > margin).nonzero().tolist()
    idx.sort(key=lambda lh: -float(score[lh[0], lh[1]]))
    return [(int(l), int(h)) for l, h in idx]
