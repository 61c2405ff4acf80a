"""Notebook 03's neuron explorer: its functions without a browser, and the box's controls and texts."""
from __future__ import annotations

import pytest

from shortcut_nb.bands import band_counts
from shortcut_nb.sections.cnn_neurons import widget as W
from shortcut_nb.vocab import GROUP_NAMES
from support.cnn_neurons import tiny_study


@pytest.fixture(scope="module")
def study():
    return tiny_study()


def test_widget_functions_and_explorer(study):
    text = W.band_summary(study, 0.5)
    c = band_counts(study.scores(0.5))
    assert f"low {c['low']} · mid {c['mid']} · high {c['high']}" in text and "α = 0.50" in text
    n_positive = int((study.scores(0.5) > 0).sum())
    assert W.pruning_summary(study, 0.5, 0.0).startswith(f"pruning s > 0.00 zeroes {n_positive}")
    top = W.top_neuron(study, 0.5)
    neuron, line = W.neuron_summary(study, 0.5, "index", top)
    assert neuron == top and line.startswith(f"neuron {top} (")
    neuron, line = W.neuron_summary(study, 0.5, "index", 9999)
    assert neuron is None and "index must lie" in line
    assert list(W.accuracy_frame(study, 0.5, 0.7).columns)[:4] == list(GROUP_NAMES["isic"])
    assert len(W.histogram_figure(study, 0.5, 0.7).axes) >= 1
    assert len(W.neuron_figure(study, top, 0.5).axes) == 2 * 5
    box = W.neuron_explorer({"isic": study}, alpha=0.5, tau=0.7)
    assert {c.description for c in box.controls.values()} == {"dataset", "alpha", "tau", "pick by", "number", "layer",
                                                                  "method", "variant"}
    assert box.controls["number"].value == top and box.neuron.value.startswith(f"neuron {top} (")
    before = (box.bands.value, box.pruning.value)
    box.controls["alpha"].value = 0.2
    assert "α = 0.20" in box.bands.value and box.bands.value != before[0]
    box.controls["tau"].value = 0.05
    assert "pruning s &gt; 0.05" in box.pruning.value
    box.controls["number"].value = 3
    assert box.neuron.value.startswith("neuron 3 (")
    box.controls["by"].value = "high"
    box.controls["number"].value = 10**5
    assert "no neuron shown" in box.neuron.value
    with pytest.raises(ValueError, match="dataset must be one of"):
        W.neuron_explorer({"isic": study}, dataset="waterbirds")
    empty = W.neuron_explorer({})  # no dataset has masks: a sentence, not an error
    assert "spurious masks" in empty.value and not hasattr(empty, "controls")


def test_the_widget_shares_the_studys_table4(study):
    """The widget reads Table 4 through the study's public, memoised method (no private state)."""
    assert W.accuracy_frame(study, 0.5, 0.7)["WGA"].tolist()[0] == round(study.table4(0.5, 0.7)["baseline"]["wga"], 3)
    assert f"test WGA {study.table4(0.5, 0.7)['baseline']['wga']:.2f}" in W.pruning_summary(study, 0.5, 0.7)


def test_layer_method_and_variant_pickers(study):
    line = W.unit_summary(study, "layer2.0", "gradcam++", "dilated", 0.5)
    assert line.startswith("layer2.0 (64 units), gradcam++, hard (mask + 1 px) at α = 0.50") and "significantly" in line
    assert W.variant_spec(study, "soft") == ("soft", 0)
    with pytest.raises(ValueError, match="variant"):
        W.variant_spec(study, "precision")
    assert len(W.unit_histogram_figure(study, "layer3.0", "gradcam", "iou", 0.5, 0.7).axes) >= 1
    box = W.neuron_explorer({"isic": study}, alpha=0.5)
    assert box.controls["layer"].value == "layer4.0" and "layer4.0 (256 units)" in box.units.value
    box.controls["layer"].value = "layer1.0"
    box.controls["variant"].value = "soft"
    assert box.units.value.startswith("layer1.0 (32 units), gradcam, soft")
