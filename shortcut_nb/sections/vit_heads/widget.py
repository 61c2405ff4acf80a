"""Notebook 06's explorers: attention of a chosen target patch, and ViT neurons above an s-score threshold.

Thin views. The attention explorer's callback turns its sliders and dropdowns into
:func:`~.attention_study.target_view` and draws :func:`~.views.plot_fig9`
(the attention matrices were computed once, so a change costs no forward pass). The
neuron explorer's callback calls :func:`~.neuron_study.neuron_view` (heatmaps of the
few neurons shown, one Grad-CAM pass on one image) and draws
:func:`~.views.plot_neuron_view`. :func:`attention_values` and
:func:`neuron_values` map control values to those calls, so tests need no browser.

Each explorer has a caption (an ``HTML`` widget) whose text names the current selection,
e.g. ``image 0 · target patch (3, 4) [core] · layer 3 · head 1: 0.12 of its attention ...``.
"""
from __future__ import annotations

import html
from typing import Mapping

import ipywidgets as w

from ...attention import default_target_patch
from ...display import show_in
from ...vocab import ARCH_LABELS
from .attention_study import AttentionStudy, target_view
from .neuron_study import ModelScores, neuron_view
from .views import plot_fig9, plot_neuron_view

MEAN_HEADS = -1  # the head dropdown's value for "mean over heads"
DESCRIPTIONS = {
    "image": "image",
    "row": "patch row",
    "col": "patch col",
    "layer": "layer",
    "head": "head",
    "threshold": "min s-score",
    "arch": "model",
    "neuron_image": "scored image",
}


def head_options(num_heads: int) -> list[tuple[str, int]]:
    """The head dropdown's ``(label, value)`` options: the mean over heads, then every head."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    return [("mean over heads", MEAN_HEADS)] + [(f"head {h}", h) for h in range(num_heads)]


def attention_values(study: AttentionStudy, values: Mapping[str, int]) -> dict:
    """The view the attention controls describe: ``values`` holds image, row, col, layer, head (-1 = mean)."""
    unknown = set(values) - {"image", "row", "col", "layer", "head"}
    if unknown:
        raise ValueError(f"unknown control(s) {sorted(unknown)}; expected image, row, col, layer, head")
    head = values.get("head", MEAN_HEADS)
    return target_view(study, image=values.get("image", 0), row=values.get("row"), col=values.get("col"),
                       layer=values.get("layer"), head=None if head == MEAN_HEADS else head)


def neuron_values(study: ModelScores, values: Mapping[str, object], *, k: int = 6) -> dict:
    """The view the neuron controls describe: ``values`` holds arch, threshold, image."""
    unknown = set(values) - {"arch", "threshold", "image"}
    if unknown:
        raise ValueError(f"unknown control(s) {sorted(unknown)}; expected arch, threshold, image")
    return neuron_view(study, values.get("arch", "vit"), threshold=values.get("threshold", 0.5),
                       image=values.get("image", 0), k=k)


def _redrawer(controls: dict, caption, output, make_view, make_fig):
    def redraw(change=None):
        shown = {}

        def make():
            shown["view"] = make_view({name: c.value for name, c in controls.items()})
            return make_fig(shown["view"])

        drawn = show_in(output, make)
        caption.value = html.escape(shown["view"]["text"]) if drawn is not None else "no picture for this choice"

    return redraw


def attention_explorer(study: AttentionStudy, *, image: int = 0, row: int | None = None, col: int | None = None,
                       layer: int | None = None, head: int | None = None):
    """An ipywidgets box: pick the example image, the target patch (row/col sliders), the layer and the head.

    Never blocks: the first picture is drawn when the box is built, later ones on each change.

    Args:
        study: from :func:`~.attention_study.attention_study`.
        image, row, col, layer, head: initial selection (defaults: image 0, its default core
            target patch, the last layer, the mean over heads).

    Returns:
        ``ipywidgets.VBox`` with ``.controls`` (``{"image", "row", "col", "layer", "head"}``),
        ``.caption`` (HTML naming the selection) and ``.output`` (Output).
    """
    gh, gw = study.layout.grid
    n_img = int(study.images.shape[0])
    if row is None or col is None:
        row, col = default_target_patch(study.masks[image], study.layout, threshold=study.threshold)
    style = {"description_width": "initial"}
    controls = {
        "image": w.Dropdown(options=[(f"sample {i}", i) for i in range(n_img)], value=image,
                            description=DESCRIPTIONS["image"], style=style),
        "row": w.IntSlider(value=row, min=0, max=gh - 1, description=DESCRIPTIONS["row"], style=style,
                           continuous_update=False),
        "col": w.IntSlider(value=col, min=0, max=gw - 1, description=DESCRIPTIONS["col"], style=style,
                           continuous_update=False),
        "layer": w.IntSlider(value=study.num_layers - 1 if layer is None else layer, min=0, max=study.num_layers - 1,
                             description=DESCRIPTIONS["layer"], style=style, continuous_update=False),
        "head": w.Dropdown(options=head_options(study.num_heads), value=MEAN_HEADS if head is None else head,
                           description=DESCRIPTIONS["head"], style=style),
    }
    caption = w.HTML()
    output = w.Output()
    redraw = _redrawer(controls, caption, output, lambda v: attention_values(study, v), plot_fig9)
    for control in controls.values():
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox([controls["image"], controls["layer"], controls["head"]]),
                  w.HBox([controls["row"], controls["col"]]), caption, output])
    box.controls, box.caption, box.output = controls, caption, output
    redraw()
    return box


def neuron_explorer(study: ModelScores, *, arch: str = "vit", threshold: float = 0.5, image: int = 0, k: int = 6):
    """An ipywidgets box: an s-score threshold slider, the model and the image; shows the neurons just above it.

    Returns:
        ``ipywidgets.VBox`` with ``.controls`` (``{"arch", "threshold", "image"}``), ``.caption``
        (HTML: how many neurons pass, against the chance level) and ``.output`` (Output).
    """
    style = {"description_width": "initial"}
    archs = [a for a in study.archs if a in study.models]
    if arch not in archs:
        raise ValueError(f"arch must be one of {archs}, got {arch!r}")
    controls = {
        "arch": w.Dropdown(options=[(ARCH_LABELS[a], a) for a in archs], value=arch, description=DESCRIPTIONS["arch"],
                           style=style),
        "threshold": w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.05, description=DESCRIPTIONS["threshold"],
                                   style=style, continuous_update=False, readout_format=".2f"),
        "image": w.Dropdown(options=[(f"sample {i}", i) for i in range(int(study.images.shape[0]))], value=image,
                            description=DESCRIPTIONS["neuron_image"], style=style),
    }
    caption = w.HTML()
    output = w.Output()
    redraw = _redrawer(controls, caption, output, lambda v: neuron_values(study, v, k=k), plot_neuron_view)
    for control in controls.values():
        control.observe(redraw, names="value")
    box = w.VBox([w.HBox(list(controls.values())), caption, output])
    box.controls, box.caption, box.output = controls, caption, output
    redraw()
    return box
