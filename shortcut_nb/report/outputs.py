"""What a notebook records: its numbers as JSON and its figures as PNG, beside the executed notebook."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..artifacts import atomic_write_json, read_json, write_atomically
from .provenance import provenance


def output_dir(path: str | os.PathLike) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


# The records this process wrote: a notebook may record in several cells, but never merges into a file an earlier
# run left behind (its keys would pass for this run's numbers).
_WRITTEN_HERE: set[Path] = set()


def record(name: str, data: dict[str, Any], out: str | os.PathLike, *, inputs: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/<name>.json`` atomically (merged with what this process recorded there before; a file left by an
    earlier run is replaced, none of its keys kept).

    Every record says what produced it, as ``"provenance"`` (:func:`~.provenance.provenance`: every notebook
    parameter as applied, package version and git commit, torch threads, device, time) and ``"torch_threads"``:
    the same seeds and thread count give the same numbers, another thread count may change the last digits (and,
    through training, more). ``inputs`` (:meth:`~shortcut_nb.pipeline.context.Context.record`: datasets with
    their source and fingerprint, model, checkpoint, seeds, input size and normalisation) is recorded as
    ``"inputs"``.
    """
    path = output_dir(out) / f"{name}.json"
    merged = read_json(path) if path.resolve() in _WRITTEN_HERE and path.is_file() else {}
    merged.update(data)
    if inputs is not None:
        merged["inputs"] = dict(inputs)
    merged["provenance"] = provenance()
    merged["torch_threads"] = merged["provenance"]["torch_threads"]
    atomic_write_json(path, merged)
    _WRITTEN_HERE.add(path.resolve())
    return path


def save_figure(fig, name: str, out: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``out/figures/<name>.png`` (atomically) and return the path."""
    folder = output_dir(Path(out) / "figures")
    return write_atomically(folder / f"{name}.png", lambda temp: fig.savefig(temp, format="png", dpi=dpi,
                                                                              bbox_inches="tight"))

