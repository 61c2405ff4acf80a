"""shortcut_nb: find and measure shortcut learning in vision models with explainable-AI tools.

Layers, each importing only from those before it: the foundation (:mod:`~shortcut_nb.vocab`,
:mod:`~shortcut_nb.paper`, :mod:`~shortcut_nb.config`, artifacts, locks, progress, the claims registry); the core
by concept (:mod:`~shortcut_nb.data`, :mod:`~shortcut_nb.models`, :mod:`~shortcut_nb.metrics`,
:mod:`~shortcut_nb.sscore`, :mod:`~shortcut_nb.bands`, :mod:`~shortcut_nb.attention`, :mod:`~shortcut_nb.embeddings`,
:mod:`~shortcut_nb.lastlayer`, :mod:`~shortcut_nb.masks`); the :mod:`~shortcut_nb.pipeline` (training, caches,
sweeps, the notebook's :class:`~shortcut_nb.pipeline.context.Context`); one folder per notebook under
:mod:`shortcut_nb.sections`; and :mod:`~shortcut_nb.report` (claims report, runner, CLI).
"""
from .config import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
