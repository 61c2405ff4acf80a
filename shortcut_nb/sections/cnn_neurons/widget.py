"""Notebook 03's neuron explorer: pick a dataset, α, τ and a neuron; histogram, bands, Table 4 and heatmaps follow.

The widget is a thin view over a :class:`~.study.NeuronStudy` per dataset.
Heatmaps were binarised at every α of the study's grid when it was built, so moving the α
slider is a lookup; moving τ re-prunes the head on cached features (:meth:`~.study.NeuronStudy.table4`,
refits memoised by neuron set). Every callback calls the module-level functions below, which tests call
without a browser: :func:`band_summary`, :func:`pruning_summary`, :func:`neuron_summary`,
:func:`accuracy_frame`, :func:`histogram_figure` and :func:`neuron_figure`.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as w
import numpy as np
import pandas as pd

from ... import figures
from ...bands import BAND_HIGH, BAND_LOW, PickBy, band_counts, bands, neurons_in_band, pick_neuron
from ...display import show_in
from ...lastlayer.table4 import DEFAULT_TAU, ROWS
from ...vocab import DATASET_LABELS
from ...sscore.units import CAM_METHODS
from ...sscore.variants import VARIANTS
from ...sscore.uncertainty import chance_test
from .study import DEFAULT_ALPHA, NeuronStudy, default_dilation
from .views import NO_MASKED_DATASET, plot_histogram, plot_neuron_rows, table4_frame

PICK_OPTIONS: list[tuple[str, str]] = [
    ("neuron index", "index"),
    ("rank in low band", "low"),
    ("rank in mid band", "mid"),
    ("rank in high band", "high"),
]


METHOD_OPTIONS: list[tuple[str, str]] = [("Grad-CAM", "gradcam"), ("Grad-CAM++", "gradcam++"),
                                         ("HiResCAM", "hirescam"), ("LayerCAM", "layercam")]
VARIANT_OPTIONS: list[tuple[str, str]] = [("hard (paper)", "hard"), ("soft (mass)", "soft"), ("IoU", "iou"),
                                          ("hard, mask dilated", "dilated")]
assert [v for _, v in METHOD_OPTIONS] == list(CAM_METHODS) and [v for _, v in VARIANT_OPTIONS[:3]] == list(VARIANTS)


def variant_spec(study: NeuronStudy, choice: str) -> tuple[str, int]:
    """The picker's variant as ``(variant, dilation)``: ``"dilated"`` is the hard score against the grown mask."""
    if choice == "dilated":
        return "hard", default_dilation(study.images.shape[-1])
    if choice not in VARIANTS:
        raise ValueError(f"variant must be one of {[v for _, v in VARIANT_OPTIONS]}, got {choice!r}")
    return choice, 0


def unit_summary(study: NeuronStudy, block: str, method: str, variant: str, alpha: float) -> str:
    """One line: a block's units under a CAM method and score variant, against chance, with the bootstrap test."""
    a = study.grid_alpha(alpha)
    v, r = variant_spec(study, variant)
    res = study.unit_scores(block, alpha=a, method=method, variant=v, dilation=r)
    s = res.scores
    c = band_counts(s, BAND_LOW, BAND_HIGH)
    sig = int(chance_test(res.per_sample, res.chance)["significant"].sum())
    label = v + (f" (mask + {r} px)" if r else "")
    return (f"{block} ({len(s)} units), {method}, {label} at α = {a:.2f}: low {c['low']} · mid {c['mid']} · high "
            f"{c['high']}; median s {np.median(s):.2f}, chance {res.area:.2f}; {int((s > res.area).sum())} units above "
            f"chance, {sig} significantly (bootstrap, one-sided 95 %)")


def unit_histogram_figure(study: NeuronStudy, block: str, method: str, variant: str, alpha: float, tau: float):
    """The histogram of a block's unit s-scores under a CAM method and score variant."""
    a = study.grid_alpha(alpha)
    v, r = variant_spec(study, variant)
    res = study.unit_scores(block, alpha=a, method=method, variant=v, dilation=r)
    return plot_histogram(res.scores, res.area, alpha=a, tau=tau,
                          title=f"{DATASET_LABELS.get(study.dataset, study.dataset)} {block}, {method}, {variant}")


def band_summary(study: NeuronStudy, alpha: float) -> str:
    """One line: the band counts at ``alpha`` and the chance level."""
    a = study.grid_alpha(alpha)
    s = study.scores(a)
    c = band_counts(s, BAND_LOW, BAND_HIGH)
    return (f"{DATASET_LABELS.get(study.dataset, study.dataset)} at α = {a:.2f}: low {c['low']} · mid {c['mid']} · "
            f"high {c['high']} neurons (s < {BAND_LOW:g} / {BAND_LOW:g}–{BAND_HIGH:g} / > {BAND_HIGH:g}); "
            f"chance level (mean mask area) {study.area:.2f}; {int((s > study.area).sum())} of {study.d} "
            f"neurons above chance")


def pruning_summary(study: NeuronStudy, alpha: float, tau: float, *, seed: int = 0) -> str:
    """One line: how many neurons ``s > tau`` zeroes and the WGA of the four Table-4 heads."""
    table = study.table4(alpha, tau, seed)
    wga = {row: ("n/a" if table[row] is None else f"{table[row]['wga']:.2f}") for row in ROWS}
    return (f"pruning s > {tau:.2f} zeroes {len(table['pruned_neurons'])} neurons: test WGA {wga['baseline']} → "
            f"{wga['pruned']}; group-balanced refit {wga['refit']}, refit after pruning {wga['refit_pruned']}")


def neuron_summary(study: NeuronStudy, alpha: float, by: PickBy, number: int) -> tuple[int | None, str]:
    """The neuron the picker designates and a line describing it (or why there is none).

    Returns:
        ``(neuron, text)``; ``neuron`` is None when the index or rank is out of range (the text says why).
    """
    a = study.grid_alpha(alpha)
    s = study.scores(a)
    try:
        neuron = pick_neuron(s, by, int(number))
    except ValueError as err:
        return None, f"no neuron shown: {err}"
    band = str(bands(s, BAND_LOW, BAND_HIGH)[neuron])
    members = neurons_in_band(s, band, low=BAND_LOW, high=BAND_HIGH).tolist()
    rank = members.index(neuron)
    return neuron, (f"neuron {neuron} ({band} band, rank {rank} of {len(members)}): s = {s[neuron]:.3f} at "
                    f"α = {a:.2f}, lift {s[neuron] / study.area:.2f} over chance {study.area:.2f}")


def top_neuron(study: NeuronStudy, alpha: float) -> int:
    """The neuron with the highest s-score at ``alpha`` (the picker's default)."""
    return int(np.argmax(study.scores(study.grid_alpha(alpha))))


def accuracy_frame(study: NeuronStudy, alpha: float, tau: float, *, seed: int = 0) -> pd.DataFrame:
    """Table 4 of ``study`` at ``alpha`` / ``tau`` (see :func:`shortcut_nb.sections.cnn_neurons.views.table4_frame`)."""
    return table4_frame(study.table4(alpha, tau, seed), study.dataset, tau=tau)


def histogram_figure(study: NeuronStudy, alpha: float, tau: float):
    """The s-score histogram at ``alpha`` with the chance level and ``tau``."""
    a = study.grid_alpha(alpha)
    return plot_histogram(study.scores(a), study.area, alpha=a, tau=tau,
                          title=f"{DATASET_LABELS.get(study.dataset, study.dataset)} {study.model_name}")


def neuron_figure(study: NeuronStudy, neuron: int, alpha: float, samples: Sequence[int] | None = None):
    """One neuron's heatmaps over the shown samples, with the binarised maps ∩ mask below."""
    return plot_neuron_rows(study, {"picked": int(neuron)}, alpha=study.grid_alpha(alpha), samples=samples,
                            overlap_row=True)


def neuron_explorer(studies: Mapping[str, NeuronStudy], *, dataset: str | None = None, alpha: float = DEFAULT_ALPHA,
                    tau: float = DEFAULT_TAU, by: PickBy = "index", number: int | None = None, seed: int = 0,
                    samples: Sequence[int] | None = None, block: str | None = None, method: str = "gradcam",
                    variant: str = "hard"):
    """An ipywidgets box: dataset, α, τ and a neuron picker over texts, the histogram, Table 4 and heatmaps;
    and layer, method and variant pickers over the units of any block.

    Never blocks: everything is drawn when the box is built, and again on each change. By default the
    picker shows the neuron with the highest s-score (``by="index"``, ``number=None``).

    Controls (by ``description``): ``dataset``, ``alpha``, ``tau``, ``pick by``, ``number``, ``layer``,
    ``method``, ``variant`` (the last three: :func:`unit_summary` and :func:`unit_histogram_figure`, text
    ``.units`` and output ``"units"``; block None: the penultimate block).
    Texts: ``.bands`` (band counts, changes with α), ``.pruning`` (WGA of the pruned heads, changes with
    α and τ), ``.neuron`` (the shown neuron, changes with the picker and α).

    Returns:
        ``ipywidgets.VBox`` with ``.controls`` (dict of the controls), ``.bands``, ``.pruning``,
        ``.neuron``, ``.units`` (HTML) and ``.outputs`` (``{"histogram", "table", "heatmaps", "units"}``); without
        studies (no dataset has masks) an ``ipywidgets.HTML`` saying so.
    """
    if not studies:  # no dataset has masks: the explorer says so, the notebook goes on to the mask-free ranking
        return w.HTML(html.escape(NO_MASKED_DATASET))
    dataset = dataset or next(iter(studies))
    if dataset not in studies:
        raise ValueError(f"dataset must be one of {list(studies)}, got {dataset!r}")
    first = studies[dataset]
    grid = first.alphas
    diffs = np.round(np.diff(grid), 6)
    # a uniform grid steps the slider from one precomputed α to the next; otherwise it snaps to the nearest
    step = float(diffs[0]) if len(diffs) and np.all(diffs == diffs[0]) else 0.01
    style = {"description_width": "initial"}
    controls = {
        "dataset": w.Dropdown(options=[(DATASET_LABELS.get(k, k), k) for k in studies], value=dataset,
                              description="dataset", style=style),
        "alpha": w.FloatSlider(value=first.grid_alpha(alpha), min=float(grid[0]), max=float(grid[-1]), step=step,
                               readout_format=".2f", continuous_update=False, description="alpha", style=style),
        "tau": w.FloatSlider(value=float(tau), min=0.0, max=1.0, step=0.05, readout_format=".2f",
                             continuous_update=False, description="tau", style=style),
        "by": w.Dropdown(options=PICK_OPTIONS, value=by, description="pick by", style=style),
        "number": w.BoundedIntText(value=top_neuron(first, alpha) if number is None else int(number), min=0,
                                   max=10**6, description="number", style=style, layout=w.Layout(width="160px")),
        "layer": w.Dropdown(options=first.blocks, value=block or first.default_block, description="layer",
                            style=style),
        "method": w.Dropdown(options=METHOD_OPTIONS, value=method, description="method", style=style),
        "variant": w.Dropdown(options=VARIANT_OPTIONS, value=variant, description="variant", style=style),
    }
    bands_text, pruning_text, neuron_text, units_text = w.HTML(), w.HTML(), w.HTML(), w.HTML()
    outputs = {"histogram": w.Output(), "table": w.Output(), "heatmaps": w.Output(), "units": w.Output()}

    def current() -> tuple[NeuronStudy, float]:
        st = studies[controls["dataset"].value]
        return st, st.grid_alpha(min(grid, key=lambda a: abs(a - controls["alpha"].value)))

    def redraw_neuron(change=None) -> None:
        st, a = current()
        neuron, text = neuron_summary(st, a, controls["by"].value, controls["number"].value)
        neuron_text.value = html.escape(text)
        with outputs["heatmaps"]:
            outputs["heatmaps"].clear_output(wait=True)
        if neuron is not None:
            show_in(outputs["heatmaps"], lambda: neuron_figure(st, neuron, a, samples))

    def redraw_scores(change=None) -> None:
        st, a = current()
        t = float(controls["tau"].value)
        bands_text.value = html.escape(band_summary(st, a))
        pruning_text.value = html.escape(pruning_summary(st, a, t, seed=seed))
        show_in(outputs["histogram"], lambda: histogram_figure(st, a, t))
        show_in(outputs["table"], lambda: accuracy_frame(st, a, t, seed=seed))

    def redraw_units(change=None) -> None:
        st, a = current()
        blk = controls["layer"].value if controls["layer"].value in st.blocks else st.default_block
        m, v = controls["method"].value, controls["variant"].value
        units_text.value = html.escape(unit_summary(st, blk, m, v, a))
        show_in(outputs["units"], lambda: unit_histogram_figure(st, blk, m, v, a, float(controls["tau"].value)))

    def redraw_all(change=None) -> None:
        redraw_scores()
        redraw_neuron()
        redraw_units()

    controls["dataset"].observe(redraw_all, names="value")
    controls["alpha"].observe(redraw_all, names="value")
    controls["tau"].observe(redraw_scores, names="value")
    controls["by"].observe(redraw_neuron, names="value")
    controls["number"].observe(redraw_neuron, names="value")
    for name in ("layer", "method", "variant"):
        controls[name].observe(redraw_units, names="value")
    box = w.VBox([
        w.HBox([controls["dataset"], controls["alpha"], controls["tau"]]),
        bands_text, pruning_text,
        w.HBox([outputs["histogram"], outputs["table"]]),
        w.HBox([controls["by"], controls["number"]]),
        neuron_text, outputs["heatmaps"],
        w.HBox([controls["layer"], controls["method"], controls["variant"]]),
        units_text, outputs["units"],
    ])
    box.controls, box.bands, box.pruning, box.neuron, box.outputs = (controls, bands_text, pruning_text, neuron_text,
                                                                      outputs)
    box.units = units_text
    redraw_all()
    return box


def default_view(studies: Mapping[str, NeuronStudy], dataset: str | None, *, alpha: float = DEFAULT_ALPHA,
                 tau: float = DEFAULT_TAU, seed: int = 0):
    """What the explorer opens on, as plain output for a headless run: its text lines (bands, pruning, the neuron
    with the highest s-score) and that neuron's figure; without studies, a note and a figure saying why."""
    if not studies or dataset is None:
        return NO_MASKED_DATASET, figures.notice_figure(NO_MASKED_DATASET)
    shown = studies[dataset]
    neuron = top_neuron(shown, alpha)
    text = "\n".join([band_summary(shown, alpha), pruning_summary(shown, alpha, tau, seed=seed),
                      neuron_summary(shown, alpha, "index", neuron)[1]])
    return text, neuron_figure(shown, neuron, alpha)


__all__ = ["METHOD_OPTIONS", "PICK_OPTIONS", "VARIANT_OPTIONS", "accuracy_frame", "default_view", "unit_histogram_figure",
           "unit_summary", "variant_spec", "band_summary", "histogram_figure", "neuron_explorer", "neuron_figure",
           "neuron_summary", "pruning_summary", "top_neuron"]
