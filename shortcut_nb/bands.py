"""Band selection (paper §5.1): the ranges of s-scores the paper reads neurons by, and pickers over them.

``"low"`` if s < 0.2, ``"high"`` if s > 0.7, else ``"mid"`` (edges inclusive in mid); pure functions on
(d,) score vectors.
"""
from __future__ import annotations

from typing import Literal, Sequence, overload

import numpy as np
import torch
from torch import Tensor

Band = Literal["low", "mid", "high"]
BANDS: tuple[Band, ...] = ("low", "mid", "high")
BAND_LOW, BAND_HIGH = 0.2, 0.7  # the paper's band edges
PickBy = Literal["index", "low", "mid", "high"]


def _scores_1d(scores: Tensor | np.ndarray | Sequence[float]) -> Tensor:
    s = torch.as_tensor(np.asarray(scores) if not isinstance(scores, Tensor) else scores.detach().cpu())
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (one per neuron), got shape {tuple(s.shape)}")
    return s.double()


def _check_band_edges(low: float, high: float) -> None:
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")


def bands(scores: Tensor | np.ndarray | Sequence[float], low: float = BAND_LOW, high: float = BAND_HIGH) -> np.ndarray:
    """Paper §5.1 ranges: ``"low"`` if s < low, ``"high"`` if s > high, else ``"mid"`` (edges inclusive in mid).

    Args:
        scores: (d,) s-scores.
        low, high: band edges (paper: 0.2 and 0.7).

    Returns:
        numpy array (d,) of the strings "low" / "mid" / "high".
    """
    _check_band_edges(low, high)
    s = _scores_1d(scores).numpy()
    return np.where(s < low, "low", np.where(s > high, "high", "mid"))


def band_counts(scores: Tensor | np.ndarray | Sequence[float], low: float = BAND_LOW, high: float = BAND_HIGH) -> dict[str, int]:
    """Number of neurons per band, ``{"low": .., "mid": .., "high": ..}`` in that order."""
    labels = bands(scores, low, high)
    return {b: int((labels == b).sum()) for b in BANDS}


def select_neurons(scores: Tensor | np.ndarray | Sequence[float], threshold: float) -> Tensor:
    """Indices of neurons with ``s > threshold``, highest score first (ties by index).

    Args:
        scores: (d,) s-scores.
        threshold: strict lower bound (the paper prunes s > 0.7).

    Returns:
        long tensor (k,) of neuron indices.
    """
    s = _scores_1d(scores)
    idx = torch.nonzero(s > float(threshold)).flatten()
    order = torch.sort(-s[idx], stable=True).indices
    return idx[order]


@overload
def neurons_in_band(scores: Tensor | np.ndarray | Sequence[float], band: Band, rank: None = ..., *,
                    low: float = ..., high: float = ...) -> Tensor: ...
@overload
def neurons_in_band(scores: Tensor | np.ndarray | Sequence[float], band: Band, rank: int, *,
                    low: float = ..., high: float = ...) -> int: ...
def neurons_in_band(scores: Tensor | np.ndarray | Sequence[float], band: Band, rank: int | None = None, *,
                    low: float = BAND_LOW, high: float = BAND_HIGH) -> Tensor | int:
    """Neurons of one band, highest score first, or the one at position ``rank`` (for a picker widget).

    Args:
        scores: (d,) s-scores.
        band: "low", "mid" or "high".
        rank: None for all, else a position in the band's ranking (0 = highest, -1 = lowest).
        low, high: band edges.

    Returns:
        long tensor of indices (rank None) or one neuron index.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    s = _scores_1d(scores)
    in_band = torch.from_numpy(bands(s, low, high) == band)
    idx = torch.nonzero(in_band).flatten()
    idx = idx[torch.sort(-s[idx], stable=True).indices]
    if rank is None:
        return idx
    if isinstance(rank, bool) or not isinstance(rank, int) or not -len(idx) <= rank < len(idx):
        raise ValueError(f"rank must be an int in [-{len(idx)}, {len(idx)}) for band {band!r} "
                         f"({len(idx)} neurons), got {rank!r}")
    return int(idx[rank])


def band_representatives(scores: np.ndarray | Sequence[float], *, low: float = BAND_LOW,
                         high: float = BAND_HIGH) -> dict[str, int | None]:
    """One neuron per band for Fig. 4: the band's median-ranked neuron (None for an empty band)."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    out: dict[str, int | None] = {}
    for band in BANDS:
        idx = neurons_in_band(s, band, low=low, high=high)
        out[band] = int(idx[len(idx) // 2]) if len(idx) else None
    return out


def pick_neuron(scores: np.ndarray | Sequence[float], by: PickBy, number: int, *, low: float = BAND_LOW,
                high: float = BAND_HIGH) -> int:
    """The neuron a picker designates: ``by="index"`` -> neuron ``number``; a band -> rank ``number`` in it.

    Ranks count from 0 at the band's highest score.

    Raises:
        ValueError: an unknown ``by``, an index outside [0, d), a rank outside the band (the message says
            how many neurons the band holds).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
        raise TypeError(f"number must be an int, got {number!r}")
    if by == "index":
        if not 0 <= number < len(s):
            raise ValueError(f"neuron index must lie in [0, {len(s)}), got {number}")
        return int(number)
    if by not in BANDS:
        raise ValueError(f"by must be 'index' or one of {BANDS}, got {by!r}")
    idx = neurons_in_band(torch.from_numpy(s), by, low=low, high=high)
    if not 0 <= number < len(idx):
        raise ValueError(f"the {by} band holds {len(idx)} neurons: rank must lie in [0, {len(idx)}), got {number}")
    return int(idx[number])
