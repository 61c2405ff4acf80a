"""Artifacts on disk: atomic writes, keys of what produced a file, JSON records.

A writer writes ``.<name>.tmp-<pid>`` beside the artifact and renames it over ``<name>`` when complete, so a
reader sees the old file or the new one, never half of one. A writer that fails (a full disk included) removes its
temp file; one killed outright leaves it, and the next process that takes the artifact's lock removes it
(:func:`remove_stale_temps`, called by :mod:`.locks`).
"""
from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

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


TEMP_MARK = ".tmp-"
# torch.save's own messages when its zip writer meets a full disk (writing to a path rather than a file object)
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed")


def temp_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """Where a writer of ``path`` (a file or a folder) writes first: ``.<name>.tmp-<pid>`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid() if pid is None else pid}")


def temp_writer_pid(temp: str | os.PathLike) -> int | None:
    """The pid in a temp file's name (:func:`temp_path`), or None when ``temp`` is not named like one."""
    name = Path(temp).name
    if not name.startswith(".") or TEMP_MARK not in name:
        return None
    pid = name.rsplit(TEMP_MARK, 1)[1]
    return int(pid) if pid.isdigit() else None


def stale_temps(artifact: str | os.PathLike, *, inside: bool = False) -> list[Path]:
    """Temp files and folders other processes left while writing ``artifact`` or its companions.

    Companions share the artifact's stem (``w.pth`` -> ``w.head.pth``, ``w.pth.partial.pt``, ``w.json``; artifact
    names end in a key, so no other artifact's name starts with that stem).
    ``inside``: ``artifact`` is a folder whose every file is written under one lock (a run folder): the temps
    within it. Temps named with this process's pid are left to their writer.
    """
    artifact = Path(artifact)
    if inside:
        found = artifact.glob(f".*{TEMP_MARK}*")
    else:
        name, stem = glob.escape(artifact.name), glob.escape(artifact.stem)
        found = [*artifact.parent.glob(f".{name}{TEMP_MARK}*"), *artifact.parent.glob(f".{stem}.*{TEMP_MARK}*")]
    pids = {temp: temp_writer_pid(temp) for temp in set(found)}
    return sorted(temp for temp, pid in pids.items() if pid is not None and pid != os.getpid())


def remove_stale_temps(artifact: str | os.PathLike, *, inside: bool = False) -> list[Path]:
    """Remove :func:`stale_temps` of ``artifact``; call it holding the artifact's lock (its writers hold it too,
    so every other temp is a dead writer's, whichever host it ran on). Returns what was removed."""
    return [temp for temp in stale_temps(artifact, inside=inside) if _remove(temp)]


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` says the disk (or the user's quota) is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in _TORCH_WRITE_FAILURES)


def no_space_error(path: str | os.PathLike) -> OSError:
    """The error of a write to ``path`` that found no space: the path, and what is free on its file system."""
    path = Path(path)
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.1f} MiB free there"
    except OSError:
        free = "free space unknown"
    return OSError(errno.ENOSPC, f"no space left on device while writing {path} ({free}); nothing was replaced "
                                 "and no temp file was left: free some space (or choose another --runs-root / --out) "
                                 "and run again", str(path))


def _remove(temp: Path) -> bool:
    """Remove a temp file or folder; False when it was gone already."""
    try:
        shutil.rmtree(temp) if temp.is_dir() and not temp.is_symlink() else temp.unlink()
    except FileNotFoundError:
        return False
    return True


def write_atomically(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """``write(temp)`` then rename the temp over ``path``; on any failure the temp is removed, and a full disk
    raises :func:`no_space_error` (the path and the free space) instead of the writer's own words."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(path)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException as error:  # KeyboardInterrupt included: no temp file is left behind
        _remove(temp)
        if is_out_of_space(error):
            raise no_space_error(path) from error
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomically(path, lambda temp: temp.write_bytes(data))


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
    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:  # a Python file: a full disk raises OSError(ENOSPC), not torch's words
            torch.save(obj, handle)

    return write_atomically(path, write)


def load_checkpoint(path: str | os.PathLike) -> Any:
    """Checkpoints are data: tensors and plain Python values only (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
