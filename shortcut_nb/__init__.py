"""shortcut_nb: find and measure shortcut learning in vision models with explainable-AI tools.

One module per paper section: :mod:`~shortcut_nb.groups` (§4.1), ``latent`` (§4.2),
:mod:`~shortcut_nb.sscore` (§3.3, §5.1), :mod:`~shortcut_nb.lastlayer.dfr` (§5.2, §6.1),
:mod:`~shortcut_nb.masks` (§5.3), :mod:`~shortcut_nb.attention` (§6.2);
shared pieces: :mod:`~shortcut_nb.data`, :mod:`~shortcut_nb.models`,
:mod:`~shortcut_nb.train`, :mod:`~shortcut_nb.metrics`, :mod:`~shortcut_nb.experiment`.
"""
from .config import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
