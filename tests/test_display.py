"""The display step every section widget shares (:func:`shortcut_nb.display.show_in`)."""
from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt

from shortcut_nb.display import show_in


def test_show_in_displays_and_closes_a_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert show_in(w.Output(), lambda: fig) is fig
    assert not plt.fignum_exists(fig.number)  # closed: not drawn again at the end of the cell


def test_show_in_reports_a_failure_in_the_output_and_keeps_going(capsys):
    def broken():
        raise OSError("disk gone")

    assert show_in(w.Output(), broken) is None
    assert "could not draw this view: OSError: disk gone" in capsys.readouterr().out
    assert show_in(w.Output(), lambda: "next choice") == "next choice"
