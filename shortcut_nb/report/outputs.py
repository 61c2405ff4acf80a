"""What a notebook records: its numbers as JSON and its figures as PNG, beside the executed notebook."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..artifacts import atomic_write_json, read_json


def output_dir(path: str | os.PathLike) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def record(name: str, data: dict[str, Any], out: str | os.PathLike, *, inputs: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/<name>.json`` atomically (merging with what the notebook recorded before in this run).

    Every record also says how many torch threads computed it: the same seeds and thread count give the same
    numbers, another thread count may change the last digits (and, through training, more). ``inputs``
    (:meth:`~shortcut_nb.pipeline.context.Context.record`: data folders, model, checkpoint, input size and
    normalisation) is recorded as ``"inputs"``.
    """
    path = output_dir(out) / f"{name}.json"
    merged = read_json(path) if path.is_file() else {}
    merged.update(data)
    if inputs is not None:
        merged["inputs"] = dict(inputs)
    merged["torch_threads"] = torch.get_num_threads()
    return atomic_write_json(path, merged)


def save_figure(fig, name: str, out: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``out/figures/<name>.png`` (atomically) and return the path."""
    folder = output_dir(Path(out) / "figures")
    path = folder / f"{name}.png"
    tmp = folder / f".{name}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path

