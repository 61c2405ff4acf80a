"""Notebook 04's DFR explorer: pick a model and DFR's C (or the tuned one); see WGA, AVG, Prune_h and the kept s-scores.

Every DFR head (tuned, and one per C of the grid) is fitted once by
:func:`~.study.entanglement_study`; the widget only selects among them. The callback
calls :func:`~.views.dfr_view` (selection), :func:`~.views.view_text` (the line of
numbers) and :func:`~.views.plot_dfr_view` (the histogram);
:func:`model_options` and :func:`c_options` are plain functions too, so tests
need no browser.

Controls have stable descriptions, ``"model"`` and ``"C"``; the text line
starts ``"<dataset>/<arch> · DFR C=<C>..."`` and carries ``WGA``, ``AVG`` and
``Prune_h``, so a browser test can move a control and assert on the text.
"""
from __future__ import annotations

from typing import Mapping

import ipywidgets as w

from ...display import show_in
from .study import ModelResults
from .views import dfr_view, plot_dfr_view, view_text


def model_options(results: Mapping[str, ModelResults]) -> list[tuple[str, str]]:
    """``(label, key)`` of every analysed model, e.g. ``("waterbirds · resnet_mini", "waterbirds/cnn")``."""
    if not results:
        raise ValueError("results is empty: run study.entanglement_study first")
    return [(f"{r.dataset} · {r.model}", key) for key, r in results.items()]


def c_options(results: Mapping[str, ModelResults], key: str, *, seed_index: int = 0) -> list[tuple[str, str]]:
    """``(label, value)`` of the DFR heads of one model: the tuned one first, then the grid in its order.

    Values are stable (``"tuned"``, ``"1"``, ``"0.7"``, ...); only the tuned label names its C.
    """
    if key not in results:
        raise ValueError(f"key must be one of {sorted(results)}, got {key!r}")
    run = results[key].runs[seed_index]
    dfr = run["dfr"]
    tuned = f"tuned (C={dfr['C']:g})" if dfr["tuned"] else f"not tuned (C={dfr['C']:g})"
    return [(tuned, "tuned")] + [(f"C={c}", c) for c in run["sweep"]]


def dfr_explorer(results: Mapping[str, ModelResults], *, key: str | None = None, choice: str = "tuned", seed_index: int = 0):
    """An ipywidgets box: model and C dropdowns, a line of numbers and the kept-neuron s-score histogram.

    Never blocks: the first view is drawn when the box is built, later ones on each change.

    Args:
        results: :func:`~.study.entanglement_study`'s output.
        key: initial model (default: the first).
        choice: initial head, ``"tuned"`` or a C key of the sweep.
        seed_index: which seed's run is shown.

    Returns:
        ``ipywidgets.VBox`` with ``.controls`` (``{"model", "C"}`` Dropdowns), ``.caption`` (HTML) and
        ``.output`` (Output).
    """
    models = model_options(results)
    key = models[0][1] if key is None else key
    opts = c_options(results, key, seed_index=seed_index)
    if choice not in [v for _, v in opts]:
        raise ValueError(f"choice must be one of {[v for _, v in opts]}, got {choice!r}")
    controls = {
        "model": w.Dropdown(options=models, value=key, description="model"),
        "C": w.Dropdown(options=opts, value=choice, description="C"),
    }
    text = w.HTML()
    output = w.Output()

    def redraw(change=None):
        k, c = controls["model"].value, controls["C"].value
        try:
            view = dfr_view(results, k, c, seed_index=seed_index)
        except ValueError as err:
            text.value = f"not precomputed: {err}"
            return
        text.value = view_text(view)
        show_in(output, lambda: plot_dfr_view(view))

    relabelling = [False]

    def on_c(change):
        if not relabelling[0]:
            redraw()

    def on_model(change):
        # the tuned C differs per model: relabel the options, keep the selected value, draw once
        current = controls["C"].value
        new = c_options(results, change["new"], seed_index=seed_index)
        relabelling[0] = True
        try:
            controls["C"].options = new  # resets the value to the first option
            controls["C"].value = current if current in [v for _, v in new] else "tuned"
        finally:
            relabelling[0] = False
        redraw()

    controls["model"].observe(on_model, names="value")
    controls["C"].observe(on_c, names="value")
    box = w.VBox([w.HBox(list(controls.values())), text, output])
    box.controls, box.caption, box.output = controls, text, output
    redraw()
    return box
