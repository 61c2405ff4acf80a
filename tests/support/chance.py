"""Find a figure's chance level by where it is drawn: the dashed line at the mask area, not its label or style."""
from __future__ import annotations

import numpy as np

from shortcut_nb.figures import CHANCE_STYLE


def chance_lines(ax, area: float, *, axis: str = "x") -> list:
    """The lines of ``ax`` in the chance style whose ``axis`` data are all ``area`` (``"x"``: vertical lines)."""
    data = {"x": lambda line: line.get_xdata(), "y": lambda line: line.get_ydata()}[axis]
    return [line for line in ax.get_lines() if line.get_linestyle() == CHANCE_STYLE["ls"]
            and np.allclose(np.asarray(data(line), dtype=float), area)]
