"""What a notebook records: its numbers as JSON and its figures as PNG, beside the executed notebook."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .artifacts import atomic_write_json, read_json


def output_dir(path: str | os.PathLike) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def record(name: str, data: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write ``out/<name>.json`` atomically (merging with what the notebook recorded before in this run)."""
    path = output_dir(out) / f"{name}.json"
    merged = read_json(path) if path.is_file() else {}
    merged.update(data)
    return atomic_write_json(path, merged)


def save_figure(fig, name: str, out: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``out/figures/<name>.png`` (atomically) and return the path."""
    folder = output_dir(Path(out) / "figures")
    path = folder / f"{name}.png"
    tmp = folder / f".{name}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def run_summary(recorded: dict[str, Any]) -> str:
    """One line for a notebook's closing cell: the profile this run used and how long the notebook took."""
    missing = [key for key in ("profile", "seconds") if key not in recorded]
    if missing:
        raise KeyError(f"recorded numbers lack {missing}: record_payload(..., profile=, seconds=) writes them")
    seconds = float(recorded["seconds"])
    took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return f"This run: profile '{recorded['profile']}', {took} for the whole notebook (models and caches reused where present)."
