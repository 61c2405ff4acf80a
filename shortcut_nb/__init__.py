"""shortcut_nb: find and measure shortcut learning in vision models with explainable-AI tools.

Layers, each importing only from those before it: the foundation (:mod:`~shortcut_nb.vocab`,
:mod:`~shortcut_nb.paper`, :mod:`~shortcut_nb.config`, artifacts, locks, progress, the claims registry); the core
by concept (:mod:`~shortcut_nb.data`, :mod:`~shortcut_nb.models`, :mod:`~shortcut_nb.metrics`,
:mod:`~shortcut_nb.sscore`, :mod:`~shortcut_nb.bands`, :mod:`~shortcut_nb.attention`, :mod:`~shortcut_nb.embeddings`,
:mod:`~shortcut_nb.lastlayer`, :mod:`~shortcut_nb.masks`); the :mod:`~shortcut_nb.pipeline` (training, caches,
sweeps, the notebook's :class:`~shortcut_nb.pipeline.context.Context`); one folder per notebook under
:mod:`shortcut_nb.sections`; :mod:`~shortcut_nb.api`, one call per analysis on your own classifier and dataset
folder (:func:`group_report`, :func:`neuron_scores`, :func:`latent_purity`, :func:`prune_neurons`, :func:`dfr`,
:func:`attention_heads`, re-exported here); and :mod:`~shortcut_nb.report` (claims report, runner, CLI).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import get_device, seed_everything

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these load on first use (below)
    from .api import attention_heads, dfr, group_report, latent_purity, neuron_scores, prune_neurons  # noqa: F401

__version__ = "0.1.0"
#: one call per analysis on your own classifier and dataset folder (:mod:`shortcut_nb.api`)
API = ("group_report", "neuron_scores", "latent_purity", "prune_neurons", "dfr", "attention_heads")
__all__ = ["get_device", "seed_everything", "__version__", *API]


def __getattr__(name: str) -> Any:
    """``shortcut_nb.group_report`` etc.: :mod:`shortcut_nb.api` is imported on first use, so that ``import
    shortcut_nb`` stays as light as torch (the api pulls in timm, torchvision and scikit-learn: about 6 s more)."""
    if name in API:
        return getattr(importlib.import_module(".api", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
