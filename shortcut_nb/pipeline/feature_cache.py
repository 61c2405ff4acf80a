"""Penultimate features ``z = f_enc(x)`` of a dataset split, cached on disk by what produced them.

Every analysis after §4.1 works on the penultimate representation (t-SNE of
§4.2, DFR and s-scores of §5, the ViT heads of §6). :func:`extract_features`
computes it once per (model weights, dataset folder, split, image transform)
and keeps it under ``<runs root>/features/``; later calls, later notebooks and
widget redraws load it back. A missing entry is extracted under its lock
(:func:`~shortcut_nb.locks.artifact_lock`), so processes sharing a runs root
extract it once.

The cache key
-------------
* **Model**: :func:`model_fingerprint` hashes the encoder's *content*: the
  architecture (``repr(f_enc)``) and every tensor of ``f_enc.state_dict()``
  (name, dtype, shape and bytes). It does not depend on a checkpoint path, so a
  model edited in memory (pruned heads, zeroed neurons, a further fine-tuning
  step) gets a new key, and the same weights loaded from two files share one.
  The linear head is left out on purpose: ``z`` does not depend on it, so
  refitting the head (DFR) keeps the features. Forward hooks and monkey-patched
  ``forward`` methods are not part of a state dict: callers who change the
  encoder that way pass ``key_extra`` (or ``cache=False``).
* **Data**: :func:`dataset_fingerprint` uses the dataset folder (resolved path),
  its content fingerprint (``metadata.csv`` and the bytes of every image and
  mask it names: :func:`~shortcut_nb.data.fingerprint.folder_fingerprint`, a
  few % of one decoding pass), the split, the image size and the
  transform's identity (:data:`TRANSFORM_ID`, or a dataset's own
  ``transform_id`` attribute), plus the indices of a ``torch.utils.data.Subset``.
  An image overwritten in place gives new features.

A hash collision aside, any change of these inputs gives a new key and the
features are recomputed; nothing is ever served stale for a changed model.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..artifacts import atomic_write_bytes, atomic_write_json, stable_key
from ..data.fingerprint import folder_fingerprint
from ..config import model_device, runs_root
from ..data import ShortcutDataset
from ..data.transforms import TRANSFORM_ID
from ..locks import artifact_lock
from ..progress import progress

# Bump when the stored layout or the meaning of the key changes: old entries are then ignored.
FEATURE_FORMAT_VERSION = 1


class FeatureSet(TypedDict):
    """What :func:`extract_features` returns.

    Keys:
        z: float32 array (N, d), the penultimate features ``f_enc(x)`` in dataset order.
        y, a, g, index: int64 arrays (N,): class, spurious attribute, group ``2y + a`` and the row's index in
            the split (for a ``Subset``: the index within the wrapped split).
        from_cache: True when the features were loaded from disk, False when computed now.
        key: the cache key (also the file name stem).
        path: the cache file (``None`` when ``cache=False``).
        seconds: wall time of this call (loading or computing).
        extract_seconds: wall time the forward passes took when the features were computed.
    """

    z: np.ndarray
    y: np.ndarray
    a: np.ndarray
    g: np.ndarray
    index: np.ndarray
    from_cache: bool
    key: str
    path: str | None
    seconds: float
    extract_seconds: float


def encoder_of(model: nn.Module) -> nn.Module:
    """The feature extractor of ``model``: its ``.f_enc`` (a :class:`~shortcut_nb.models.SplitModel`).

    Raises:
        TypeError: when ``model`` is not an ``nn.Module`` with an ``f_enc`` sub-module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module with an .f_enc encoder (a SplitModel), got {type(model).__name__}")
    enc = getattr(model, "f_enc", None)
    if not isinstance(enc, nn.Module):
        raise TypeError(f"model must have an .f_enc sub-module (build it with shortcut_nb.models.build_model); "
                        f"{type(model).__name__} has none")
    return enc


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor, any dtype (bfloat16 included), without a numpy dtype round trip."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 (hex, 64 characters) of the encoder's architecture and weights.

    Hashes ``repr(model.f_enc)`` (layer types and sizes) and, for every entry of
    ``model.f_enc.state_dict()`` in order, its name, dtype, shape and bytes
    (parameters and buffers such as BatchNorm statistics). Costs one pass over
    the weights (about 0.1 s for ResNet-18, well under a second for ViT-B/16).

    Args:
        model: a model with an ``f_enc`` encoder (:class:`~shortcut_nb.models.SplitModel`).

    Returns:
        The hex digest.
    """
    enc = encoder_of(model)
    digest = hashlib.sha256()
    digest.update(f"{type(enc).__module__}.{type(enc).__qualname__}\n{enc!r}\n".encode())
    for name, tensor in enc.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def _unwrap(dataset: Dataset) -> tuple[Dataset, list[np.ndarray]]:
    """Peel ``Subset`` wrappers off, returning the base dataset and the index arrays from outer to inner."""
    chain = []
    while isinstance(dataset, Subset):
        chain.append(np.asarray(dataset.indices, dtype=np.int64))
        dataset = dataset.dataset
    return dataset, chain


def dataset_fingerprint(dataset: Dataset, *, dataset_key: str | None = None) -> dict[str, Any]:
    """What identifies a dataset split's images for the feature cache (a JSON-able dict).

    Args:
        dataset: a :class:`~shortcut_nb.data.ShortcutDataset` (from ``load_dataset``), possibly wrapped in
            ``torch.utils.data.Subset``; any other dataset needs ``dataset_key``.
        dataset_key: a caller-chosen identity for datasets that are not folders (or to add to a folder's).

    Returns:
        ``{"folder", "content", "split", "image_size", "transform", "n", "subset", "extra"}``.

    Raises:
        TypeError: a dataset that is not a ShortcutDataset (or Subset of one) and no ``dataset_key``.
    """
    base, chain = _unwrap(dataset)
    subset = stable_key(*[c.tolist() for c in chain], length=16) if chain else None
    if isinstance(base, ShortcutDataset):
        return {
            "folder": str(Path(base.root).resolve()),
            "content": folder_fingerprint(base.root),
            "split": base.split,
            "image_size": int(base.image_size),
            "transform": getattr(base, "transform_id", TRANSFORM_ID),
            "n": len(dataset),
            "subset": subset,
            "extra": dataset_key,
        }
    if dataset_key is None:
        raise TypeError(
            f"dataset must be a ShortcutDataset from shortcut_nb.data.load_dataset (or a Subset of one) so the "
            f"feature cache can key it by folder, split and image size; for a {type(base).__name__}, pass "
            f"dataset_key='<what identifies its images and transform>' or cache=False"
        )
    return {"folder": None, "content": None, "split": None, "image_size": None,
            "transform": getattr(base, "transform_id", None), "n": len(dataset), "subset": subset, "extra": dataset_key}


def feature_key(model: nn.Module, dataset: Dataset, *, dataset_key: str | None = None, key_extra: str | None = None,
                _model_hash: str | None = None) -> str:
    """The cache key of ``(model, dataset)``: 24 hex characters of a hash of both fingerprints."""
    model_hash = _model_hash or model_fingerprint(model)
    return stable_key(FEATURE_FORMAT_VERSION, model_hash, dataset_fingerprint(dataset, dataset_key=dataset_key),
                      key_extra, length=24)


def feature_cache_dir(cache_dir: str | os.PathLike | None = None, *, root: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``<runs root>/features`` (see :func:`shortcut_nb.config.runs_root`)."""
    return Path(cache_dir) if cache_dir is not None else runs_root(root) / "features"


def feature_path(model: nn.Module, dataset: Dataset, *, cache_dir: str | os.PathLike | None = None,
                 root: str | os.PathLike | None = None, dataset_key: str | None = None,
                 key_extra: str | None = None) -> Path:
    """Where the features of ``(model, dataset)`` are (or would be) cached: ``<cache dir>/<key>.npz``."""
    key = feature_key(model, dataset, dataset_key=dataset_key, key_extra=key_extra)
    return feature_cache_dir(cache_dir, root=root) / f"{key}.npz"


def is_cached(model: nn.Module, dataset: Dataset, **kwargs) -> bool:
    """Whether :func:`extract_features` would load these features from disk (same keyword arguments as
    :func:`feature_path`)."""
    return feature_path(model, dataset, **kwargs).is_file()




def _as_long(values, n: int, name: str) -> torch.Tensor:
    if values is None:
        raise ValueError(f"dataset items must carry {name!r} (class y, attribute a, group g), as ShortcutDataset's do")
    t = torch.as_tensor(values).reshape(-1).long()
    if t.numel() != n:
        raise ValueError(f"batch field {name!r} has {t.numel()} values for {n} images")
    return t


@torch.no_grad()
def _compute(encoder: nn.Module, dataset: Dataset, *, batch_size: int, num_workers: int, progress_bar: bool,
             desc: str) -> dict[str, np.ndarray]:
    """Forward every image through ``encoder`` in eval mode (every sub-module's mode is restored afterwards)."""
    device = model_device(encoder)
    modes = [(m, m.training) for m in encoder.modules()]  # per module: a caller may have frozen some BN layers
    encoder.eval()
    zs, ys, as_, gs, idx = [], [], [], [], []
    try:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        for batch in progress(loader, desc=desc, enabled=progress_bar, leave=False):
            if not isinstance(batch, dict) or "image" not in batch:
                raise TypeError("dataset items must be dicts with an 'image' tensor (3, H, W), as ShortcutDataset's are")
            images = batch["image"].to(device)
            z = encoder(images)
            if z.ndim != 2 or z.shape[0] != images.shape[0]:
                raise ValueError(f"f_enc must return penultimate vectors of shape (B, d); got {tuple(z.shape)} "
                                 f"for a batch of {images.shape[0]} images")
            n = images.shape[0]
            zs.append(z.float().cpu())
            ys.append(_as_long(batch.get("y"), n, "y"))
            as_.append(_as_long(batch.get("a"), n, "a"))
            gs.append(_as_long(batch.get("g"), n, "g"))
            index = batch.get("index")
            idx.append(_as_long(index, n, "index") if index is not None else torch.full((n,), -1, dtype=torch.long))
    finally:
        for module, training in modes:
            module.training = training
    if not zs:
        raise ValueError("dataset is empty: no features to extract")
    cat = lambda xs: torch.cat(xs).numpy()
    return {"z": cat(zs).astype(np.float32, copy=False), "y": cat(ys), "a": cat(as_), "g": cat(gs), "index": cat(idx)}


_ARRAYS = ("z", "y", "a", "g", "index")


def _save(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **{k: arrays[k] for k in _ARRAYS})
    atomic_write_json(path.with_suffix(".json"), meta)  # first: a reader who finds the arrays finds their meta
    atomic_write_bytes(path, buffer.getvalue())


def _load(path: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The cached arrays and meta, or None when the entry is missing or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in _ARRAYS}
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: recompute rather than fail
        warnings.warn(f"ignoring unreadable feature cache {path} ({type(err).__name__}: {err}); recomputing")
        return None
    return arrays, meta


def extract_features(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 128,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    progress_bar: bool = True,
    num_workers: int = 0,
    dataset_key: str | None = None,
    key_extra: str | None = None,
) -> FeatureSet:
    """Penultimate features ``z = model.f_enc(x)`` of every image of ``dataset``, in order, cached on disk.

    The forward passes run in eval mode on the model's device (the model's mode is
    restored afterwards), without gradients, in batches of ``batch_size``. With
    ``cache=True`` the result is stored as ``<cache dir>/<key>.npz`` (+ a ``.json``
    describing it) and a later call with the same encoder weights, dataset folder,
    split and image transform loads it instead of recomputing; see the module
    docstring for what the key covers.

    Args:
        model: a :class:`~shortcut_nb.models.SplitModel` (anything with an ``f_enc`` returning (B, d)).
        dataset: a split from :func:`shortcut_nb.data.load_dataset` (or a ``Subset`` of one); items are dicts
            with ``image`` (3, H, W), ``y``, ``a``, ``g`` and ``index``.
        batch_size: images per forward pass.
        cache: read and write the disk cache; ``False`` always computes and writes nothing.
        cache_dir: folder of the cache; default ``<runs root>/features`` (``root`` or ``$SHORTCUT_NB_RUNS``
            or ``runs/``).
        root: the runs root used when ``cache_dir`` is None.
        progress_bar: show a progress bar while extracting.
        num_workers: DataLoader workers (0 loads images in this process).
        dataset_key: identity of a dataset that is not a ShortcutDataset folder (required for those when
            caching); added to the key of folder datasets.
        key_extra: anything else that changes ``f_enc``'s output but not its state dict (hooks, patched
            forwards); part of the key.

    Returns:
        A :class:`FeatureSet` dict: ``z`` float32 (N, d), ``y``/``a``/``g``/``index`` int64 (N,),
        ``from_cache`` (True when nothing was computed), ``key``, ``path``, ``seconds``, ``extract_seconds``.

    Raises:
        TypeError: ``model`` has no ``f_enc``; a non-folder dataset without ``dataset_key`` while caching.
        ValueError: ``batch_size`` or ``num_workers`` out of range; an empty dataset; items without labels.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    encoder = encoder_of(model)
    tic = time.perf_counter()
    base, _ = _unwrap(dataset)
    desc = f"features {getattr(model, 'name', type(model).__name__)} {getattr(base, 'split', '')}".strip()
    if not cache:
        arrays = _compute(encoder, dataset, batch_size=batch_size, num_workers=num_workers, progress_bar=progress_bar,
                          desc=desc)
        seconds = time.perf_counter() - tic
        return FeatureSet(**arrays, from_cache=False, key="", path=None, seconds=seconds, extract_seconds=seconds)

    model_hash = model_fingerprint(model)
    fingerprint = dataset_fingerprint(dataset, dataset_key=dataset_key)
    key = feature_key(model, dataset, dataset_key=dataset_key, key_extra=key_extra, _model_hash=model_hash)
    path = feature_cache_dir(cache_dir, root=root) / f"{key}.npz"

    def cached() -> FeatureSet | None:
        hit = _load(path)
        if hit is None or len(hit[0]["z"]) != len(dataset):
            return None
        arrays, meta = hit
        return FeatureSet(**arrays, from_cache=True, key=key, path=str(path), seconds=time.perf_counter() - tic,
                          extract_seconds=float(meta.get("extract_seconds", float("nan"))))

    # a cached entry loads without the lock (a read-only runs root serves it); a second process asking for a
    # missing one waits at the lock, then loads what the first extracted, as training does
    found = cached()
    if found is not None:
        return found
    with artifact_lock(path):
        found = cached()
        if found is not None:
            return found
        arrays = _compute(encoder, dataset, batch_size=batch_size, num_workers=num_workers, progress_bar=progress_bar,
                          desc=desc)
        extract_seconds = time.perf_counter() - tic
        meta = {"format": FEATURE_FORMAT_VERSION, "key": key, "model": getattr(model, "name", type(model).__name__),
                "model_sha256": model_hash, "dataset": fingerprint, "key_extra": key_extra, "n": len(arrays["z"]),
                "d": int(arrays["z"].shape[1]), "extract_seconds": extract_seconds,
                "device": str(model_device(encoder)), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _save(path, arrays, meta)
    return FeatureSet(**arrays, from_cache=False, key=key, path=str(path), seconds=time.perf_counter() - tic,
                      extract_seconds=extract_seconds)
