"""Notebook 05's subnetwork explorer: pick the group left out of the mask's data and the sparsity target.

Mask training is far too slow for a live callback, so the notebook precomputes a small
grid of masks (removed group × keep fraction, cached on disk) and this widget only
switches among them. The callback turns the two dropdowns into a view with
:func:`.views.subnetwork_view` and draws it with
:func:`.views.plot_subnetwork_view`; :func:`choices` and
:func:`caption` are plain functions too, so tests need no browser.
"""
from __future__ import annotations

from typing import Mapping

import ipywidgets as w

from ...display import show_in
from .views import plot_subnetwork_view, subnetwork_view, view_summary


def choices(removal: Mapping) -> dict[str, list[tuple[str, object]]]:
    """The ``(label, value)`` options of the two dropdowns, from what was precomputed.

    Args:
        removal: a :func:`.record.removal_entry` (or its recorded JSON).

    Returns:
        ``{"group": [("without BwoP", 0), ...], "keep": [("80 % of weights", 0.8), ...]}``,
        groups ascending, keep fractions descending.
    """
    subs = removal.get("subnetworks") if isinstance(removal, Mapping) else None
    if not subs:
        raise ValueError("removal has no precomputed subnetworks: run study.group_removal_experiment first")
    names = removal["group_names"]
    groups = sorted({int(e["removed_group"]) for e in subs.values()})
    keeps = sorted({float(e["keep_target"]) for e in subs.values()}, reverse=True)
    return {
        "group": [(f"without {names[g]}", g) for g in groups],
        "keep": [(f"{k:.0%} of weights", k) for k in keeps],
    }


def caption(removal: Mapping, removed_group: int, keep_fraction: float) -> str:
    """The text above the figure for one choice (a missing grid cell says so instead of failing)."""
    try:
        return view_summary(subnetwork_view(removal, removed_group=removed_group, keep_fraction=keep_fraction))
    except ValueError as err:
        return f"not precomputed: {err}"


def subnetwork_explorer(removal: Mapping, *, removed_group: int | None = None, keep_fraction: float | None = None):
    """An ipywidgets box: two dropdowns, a caption and the figure of the chosen subnetwork.

    Never blocks: the first picture is drawn when the box is built, later ones on each change.

    Args:
        removal: a :func:`.record.removal_entry` (or its recorded JSON).
        removed_group: initial group (default: the first precomputed).
        keep_fraction: initial keep fraction (default: 0.8 if precomputed, else the largest).

    Returns:
        ``ipywidgets.VBox`` with ``.controls`` (``{"group", "keep"}`` Dropdowns), ``.caption`` (HTML)
        and ``.output`` (Output).
    """
    opts = choices(removal)
    groups = [v for _, v in opts["group"]]
    keeps = [v for _, v in opts["keep"]]
    g0 = groups[0] if removed_group is None else removed_group
    k0 = keep_fraction if keep_fraction is not None else (0.8 if any(abs(k - 0.8) < 1e-9 for k in keeps) else keeps[0])
    if g0 not in groups:
        raise ValueError(f"removed_group must be one of the precomputed groups {groups}, got {removed_group!r}")
    k0 = next((k for k in keeps if abs(k - k0) < 1e-9), None)
    if k0 is None:
        raise ValueError(f"keep_fraction must be one of the precomputed {keeps}, got {keep_fraction!r}")
    controls = {
        "group": w.Dropdown(options=opts["group"], value=g0, description="mask trained",
                            style={"description_width": "initial"}),
        "keep": w.Dropdown(options=opts["keep"], value=k0, description="keeping",
                           style={"description_width": "initial"}),
    }
    text = w.HTML()
    output = w.Output()

    def redraw(change=None):
        g, k = controls["group"].value, controls["keep"].value
        text.value = caption(removal, g, k)
        show_in(output, lambda: plot_subnetwork_view(subnetwork_view(removal, removed_group=g, keep_fraction=k)))

    for control in controls.values():
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox(list(controls.values())), text, output])
    box.controls, box.caption, box.output = controls, text, output
    redraw()
    return box
