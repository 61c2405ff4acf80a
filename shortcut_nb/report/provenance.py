"""What produced a notebook's numbers, recorded beside them: parameters, package, commit, threads, device, time."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import get_device
from .parameters import applied_parameters

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def git_commit(folder: Path = PACKAGE_DIR) -> str:
    """The commit of the git checkout holding ``folder`` (``+dirty`` when it has uncommitted changes), or
    ``"unknown"`` (an installed package, no git)."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_version() -> str:
    """The installed shortcut_nb's version ("unknown" when it runs from a checkout that is not installed)."""
    try:
        return importlib.metadata.version("shortcut_nb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def device_text() -> str:
    """The device this process computes on, with the GPU's name when there is one."""
    device = get_device()
    return f"cuda ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else device.type


def provenance() -> dict[str, Any]:
    """This process's share of a record's provenance: every notebook parameter as applied (defaults included; empty
    outside a notebook), package version, git commit, torch threads, device, python and torch versions, and when."""
    return {"parameters": applied_parameters(), "package_version": package_version(), "git_commit": git_commit(),
            "torch_threads": torch.get_num_threads(), "device": device_text(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
