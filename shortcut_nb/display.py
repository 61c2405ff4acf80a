"""The one display step every section widget shares (ipywidgets output areas)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
from IPython.display import display


def show_in(output: Any, make: Callable[[], Any]) -> Any | None:
    """Replace what ``output`` (an ``ipywidgets.Output``) shows with ``make()``; return it, or None on failure.

    A failing ``make`` prints "could not draw this view: <error>" into the output instead of raising, so one bad
    choice never kills the widget and the user sees why (the browser tests treat that text as an error). A
    matplotlib figure is closed after display so it is not drawn a second time at the end of the cell.
    """
    with output:
        output.clear_output(wait=True)
        try:
            obj = make()
        except Exception as err:  # noqa: BLE001 - show it where the user looks, keep the widget alive
            print(f"could not draw this view: {type(err).__name__}: {err}")
            return None
        display(obj)
        if hasattr(obj, "savefig"):
            plt.close(obj)
    return obj
