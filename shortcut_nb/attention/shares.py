"""How much of each head's attention lands on spurious patches, against what the patches' area explains.

Given the spurious-region masks of a data set, :func:`spurious_attention_share` measures the share
of each head's attention mass (over patch tokens) that falls on spurious patches;
:func:`spurious_area_share` is the share a head that ignores the image would put there, so that a
head which really looks at the spurious feature stands out from an area effect
(:func:`attention_lift`, :func:`heads_above_chance`)::

    share = spurious_attention_share(attn, masks, layout, query="core")   # (L, H)
    area = spurious_area_share(masks, layout, query="core")
    heads_above_chance(share, area, margin=0.1)
"""
from __future__ import annotations

from typing import Literal, Sequence, Union

import torch

from .maps import check_attn, query_index
from .tokens import TokenLayout, patch_labels

Query = Union[Literal["core", "spurious", "cls"], tuple[int, int]]


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
        attn: (B, L, H, T, T) from :func:`~shortcut_nb.attention.attention_maps`.
        masks: bool (B, H, W) pixel masks of the spurious region, or bool
            (B, gh*gw) patch labels.
        layout: :func:`~shortcut_nb.attention.token_layout` of the model.
        query: ``"core"`` (non-spurious patches), ``"spurious"``, ``"cls"`` or a
            fixed ``(row, col)`` patch.
        threshold: a patch is spurious when more than this fraction of it is.

    Returns:
        (L, H) float in [0, 1].
    """
    check_attn(attn, layout)
    query = _normalize_query(query)
    spur = patch_labels(masks, layout, threshold).to(attn.device)
    if spur.shape[0] != attn.shape[0]:
        raise ValueError(f"masks hold {spur.shape[0]} images but attn {attn.shape[0]}")
    p = layout.num_prefix_tokens
    weights, used = _query_weights(spur, layout, query)
    spur_f = spur.float()
    fixed = None if query in ("core", "spurious") else query_index(layout, query)
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
        layout: :func:`~shortcut_nb.attention.token_layout` of the model.
        query: when given, average over the same images that
            :func:`spurious_attention_share` with this ``query`` uses.
        threshold: as in :func:`~shortcut_nb.attention.spurious_patches`.

    Returns:
        0-dim float tensor in [0, 1].
    """
    spur = patch_labels(masks, layout, threshold)
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


def head_values(
    share: torch.Tensor,
    area: torch.Tensor | float | None = None,
    *,
    value: Literal["share", "lift", "excess"] = "share",
) -> torch.Tensor:
    """The (L, H) cells of a layer x head table: shares, lifts (share / area) or excesses (share - area).

    Args:
        share: (L, H) from :func:`spurious_attention_share`.
        area: :func:`spurious_area_share`; needed for ``"lift"`` and ``"excess"``.
        value: what the cells hold.

    Returns:
        (L, H) float32 tensor.
    """
    if not isinstance(share, torch.Tensor) or share.ndim != 2:
        raise ValueError(f"share must be an (L, H) tensor, got {getattr(share, 'shape', type(share))}")
    if value not in ("share", "lift", "excess"):
        raise ValueError(f"value must be 'share', 'lift' or 'excess', got {value!r}")
    if value != "share" and area is None:
        raise ValueError(f"value={value!r} needs area (from spurious_area_share)")
    if value == "lift":
        return attention_lift(share, area)
    if value == "excess":
        return share.float() - float(area)
    return share.float()


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
