"""Notebook 02's explorer: pick model, dataset, split, projection and colouring; the picture redraws.

The widget is a thin view. Its callback turns the dropdown values into a
:class:`~.study.LatentView` with :func:`view_from_values` and draws it with
:func:`draw`; both are plain module-level functions that tests call without a
browser. Features and projections come from the :class:`~.study.LatentSource`
caches, so going back to an earlier choice costs no forward pass and no new t-SNE.
"""
from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as w

from ...display import show_in
from ...embeddings import PROJECTIONS
from ...vocab import ARCH_LABELS, DATASET_LABELS, SPLITS
from .study import COLOUR_BY, LatentSource, LatentView, view_results
from .views import PROJECTION_LABELS, purity_note, render_view

FIELDS = ("arch", "dataset", "split", "projection", "colour_by")


def options(source: LatentSource) -> dict[str, list[tuple[str, str]]]:
    """The ``(label, value)`` choices of each dropdown for ``source``."""
    return {
        "arch": [(ARCH_LABELS.get(a, a), a) for a in source.archs],
        "dataset": [(DATASET_LABELS.get(d, d), d) for d in source.datasets],
        "split": [(s, s) for s in SPLITS],
        "projection": [(PROJECTION_LABELS[p], p) for p in PROJECTIONS],
        "colour_by": [(c, c) for c in COLOUR_BY],
    }


def view_from_values(source: LatentSource, values: Mapping[str, str]) -> LatentView:
    """The view the dropdowns describe.

    Args:
        source: the data source (its offered datasets and models).
        values: ``{"arch", "dataset", "split", "projection", "colour_by"}`` (missing keys take the defaults).

    Raises:
        ValueError: an unknown key or a value that is not offered (named in the message).
    """
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown widget field(s) {sorted(unknown)}; expected some of {FIELDS}")
    return source.check(LatentView(**dict(values)))


def caption(view: LatentView, results: Mapping[str, Mapping] | None = None) -> str:
    """The line under the picture: what is shown and, when measured, its within-class attribute purity."""
    label = (f"{ARCH_LABELS.get(view.arch, view.arch)} · {DATASET_LABELS.get(view.dataset, view.dataset)} · "
             f"{view.split} · {PROJECTION_LABELS[view.projection]} · colour: {view.colour_by}")
    if results is None:
        return label
    result = view_results(results, view)
    note = purity_note(result) if result is not None else "within-class attribute purity: not computed for this split"
    return f"{label} — {note}"


def draw(source: LatentSource, view: LatentView, results: Mapping[str, Mapping] | None = None):
    """The figure of ``view`` (what the widget shows; see :func:`~.views.render_view`); with ``results`` the
    title carries the view's within-class purity."""
    return render_view(source.picture(view), result=view_results(results, view))


def latent_explorer(source: LatentSource, *, initial: LatentView | None = None,
                    results: Mapping[str, Mapping] | None = None):
    """An ipywidgets box: five dropdowns, a caption (:func:`caption`) and an output area showing :func:`draw`
    of the current choice. ``results`` (from :func:`~.study.neighbourhood_analysis`) puts each view's measured
    purity in the caption.

    Never blocks: the first picture is drawn when the box is built, later ones on each change.

    Returns:
        ``ipywidgets.VBox`` (``.controls`` maps field name -> Dropdown, ``.caption`` the HTML caption,
        ``.output`` the Output).
    """
    view = source.check(initial or LatentView(dataset=source.datasets[0], arch=source.archs[0]))
    opts = options(source)
    controls = {name: w.Dropdown(options=opts[name], value=getattr(view, name), description=name.replace("_", " "),
                                 style={"description_width": "initial"}, layout=w.Layout(width="190px"))
                for name in FIELDS}
    output = w.Output()
    caption_html = w.HTML()

    def redraw(change=None):
        shown = {}

        def make():
            shown["view"] = view_from_values(source, {k: c.value for k, c in controls.items()})
            return draw(source, shown["view"], results)

        drawn = show_in(output, make)
        caption_html.value = (f"<b>{caption(shown['view'], results)}</b>" if drawn is not None
                              else "<i>no picture for this choice</i>")

    for control in controls.values():
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox(list(controls.values())), caption_html, output])
    box.controls, box.caption, box.output = controls, caption_html, output
    redraw()
    return box
