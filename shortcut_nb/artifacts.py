"""Artifacts on disk: atomic writes, keys of what produced a file, JSON records."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch


def stable_key(*parts: Any, length: int = 12) -> str:
    """A short hash of JSON-serialisable parts (dataclasses included), stable across runs."""

    def plain(obj):
        if is_dataclass(obj):
            return {"__type__": type(obj).__name__, **asdict(obj)}
        if isinstance(obj, Path):
            return str(obj)
        return obj

    payload = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def weights_hash(module: torch.nn.Module, length: int = 16) -> str:
    """A hash of a module's state (names, dtypes, shapes and values): equal weights, equal hash, wherever saved."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:length]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if is_dataclass(obj):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Checkpoints are data: tensors and plain Python values only (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
