"""Group removal (paper Fig. 7, after Csordás et al. 2021): a mask trained on the data without one group."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .result import MaskResult
from .train import train_mask


def _as_group_set(groups: int | Iterable[int]) -> set[int]:
    items = [groups] if isinstance(groups, (int, np.integer)) else list(groups)
    if not items or not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) for g in items):
        raise ValueError(f"groups must be an int or a non-empty list of ints (g = 2*y + a), got {groups!r}")
    return {int(g) for g in items}


def _dataset_groups(ds: torch.utils.data.Dataset) -> np.ndarray:
    """Per-item group labels: ``ds.g`` when present (ShortcutDataset), Subsets resolved, else ``ds[i]['g']``."""
    if isinstance(ds, torch.utils.data.Subset):
        return _dataset_groups(ds.dataset)[np.asarray(ds.indices, dtype=np.int64)]
    g = getattr(ds, "g", None)
    if g is not None and len(g) == len(ds):
        return np.asarray(torch.as_tensor(g).cpu().numpy(), dtype=np.int64).reshape(-1)
    return np.array([int(ds[i]["g"]) for i in range(len(ds))], dtype=np.int64)


def exclude_groups(
    indices_or_g: torch.utils.data.Dataset | torch.Tensor | np.ndarray | Sequence[int],
    groups: int | Iterable[int],
) -> np.ndarray:
    """Indices of the samples whose group is not in ``groups`` (the data D \\ {groups}).

    Args:
        indices_or_g: per-sample group labels (tensor/array/list, shape (N,)), or a
            dataset (its ``.g`` or each item's ``"g"`` is read).
        groups: group id(s) to remove (``g = 2*y + a``; ISIC: 0 BwoP, 1 BwP, 2 MwoP, 3 MwP).

    Returns:
        Sorted int64 indices into ``indices_or_g``.
    """
    remove = _as_group_set(groups)
    if isinstance(indices_or_g, torch.utils.data.Dataset):
        g = _dataset_groups(indices_or_g)
    else:
        g = np.asarray(torch.as_tensor(indices_or_g).cpu().numpy()).reshape(-1)
        if g.dtype.kind not in "iu":
            raise TypeError(f"indices_or_g must hold integer group labels, got dtype {g.dtype}")
    return np.flatnonzero(~np.isin(g, sorted(remove))).astype(np.int64)


class _FilteredBatches:
    """Re-iterable view of a loader that drops the rows of removed groups from every batch."""

    def __init__(self, source: Iterable[Mapping] | Callable[[], Iterable[Mapping]], remove: set[int]):
        self.source = source
        self.remove = remove

    def __iter__(self) -> Iterator[dict]:
        loader = self.source() if callable(self.source) else self.source
        for batch in loader:
            g = batch.get("g") if isinstance(batch, Mapping) else None
            if g is None:
                raise ValueError("group removal needs each batch to carry 'g' (group labels)")
            g = torch.as_tensor(g)
            keep = ~torch.isin(g.cpu(), torch.tensor(sorted(self.remove)))
            if not bool(keep.any()):
                continue
            idx = torch.nonzero(keep).flatten()
            out = {}
            for k, v in batch.items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == keep.numel():
                    out[k] = v[idx.to(v.device)]
                elif isinstance(v, (list, tuple)) and len(v) == keep.numel():
                    out[k] = [v[i] for i in idx.tolist()]
                else:
                    out[k] = v
            yield out


def train_group_removal_mask(
    model: nn.Module,
    dataset_or_loader_factory: torch.utils.data.Dataset | Iterable[Mapping] | Callable[[], Iterable[Mapping]],
    *,
    remove_group: int | Iterable[int],
    keep_fraction: float | None = 0.8,
    batch_size: int = 32,
    seed: int = 0,
    **train_kwargs: Any,
) -> MaskResult:
    """Fig. 7: a mask trained on D \\ {group}, keeping ``keep_fraction`` of the weights.

    Args:
        model: the model trained on all of D; never modified.
        dataset_or_loader_factory: a map-style dataset (items with ``image``, ``y``,
            ``g``; batched here, shuffled with ``seed``), an iterable of batches, or a
            zero-argument callable returning one; batch rows of the removed group(s)
            are dropped.
        remove_group: group id(s) left out (``g = 2*y + a``; ISIC: 0 BwoP, 1 BwP).
        keep_fraction: fraction of weights kept (paper: 0.8); None: no target, the penalty stays on throughout
            (Csordás et al.'s own setting) and the mask is ``logits >= 0``.
        batch_size: for a dataset.
        seed: mask noise and dataset shuffling.
        **train_kwargs: passed to :func:`train_mask` (``objective``, ``steps``, ``lr``, ...).

    Returns:
        A :class:`MaskResult`; ``settings["removed_groups"]`` lists the removed groups.
    """
    remove = _as_group_set(remove_group)
    if isinstance(dataset_or_loader_factory, torch.utils.data.Dataset):
        ds = dataset_or_loader_factory
        idx = exclude_groups(ds, remove)
        if idx.size == 0:
            raise ValueError(f"no training data left after removing groups {sorted(remove)}")
        gen = torch.Generator().manual_seed(int(seed))
        loader: Iterable = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, idx.tolist()), batch_size=batch_size, shuffle=True, generator=gen
        )
    elif callable(dataset_or_loader_factory) or isinstance(dataset_or_loader_factory, Iterable):
        loader = _FilteredBatches(dataset_or_loader_factory, remove)
    else:
        raise TypeError(
            "dataset_or_loader_factory must be a Dataset, an iterable of batches or a callable returning one, "
            f"got {type(dataset_or_loader_factory).__name__}"
        )
    result = train_mask(model, loader, keep_fraction=keep_fraction, seed=seed, **train_kwargs)
    result.settings["removed_groups"] = ",".join(str(g) for g in sorted(remove))
    return result
