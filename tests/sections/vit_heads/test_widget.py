"""Notebook 06's explorers: their captions follow the controls (no browser needed)."""
from __future__ import annotations

import html

import pytest

from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import widget


def test_attention_explorer_updates_its_caption(astudy):
    box = widget.attention_explorer(astudy, image=0, row=1, col=1)
    assert {c.description for c in box.controls.values()} == {"image", "patch row", "patch col", "layer", "head"}
    assert "target patch (1, 1)" in box.caption.value and "mean over heads" in box.caption.value
    box.controls["row"].value = 6
    assert "target patch (6, 1)" in box.caption.value
    box.controls["head"].value = 2
    box.controls["layer"].value = 0
    assert "layer 0 · head 2" in box.caption.value
    assert box.caption.value == html.escape(ast.target_view(astudy, image=0, row=6, col=1, layer=0, head=2)["text"])
    with pytest.raises(ValueError, match="unknown control"):
        widget.attention_values(astudy, {"colour": 1})
    assert widget.head_options(2) == [("mean over heads", -1), ("head 0", 0), ("head 1", 1)]
    with pytest.raises(ValueError, match="num_heads"):
        widget.head_options(0)


def test_attention_explorer_defaults_to_the_core_target_patch(astudy):
    box = widget.attention_explorer(astudy)
    view = ast.target_view(astudy)
    assert (box.controls["row"].value, box.controls["col"].value) == view["target"]
    assert box.controls["layer"].value == astudy.num_layers - 1 and box.controls["head"].value == widget.MEAN_HEADS


def test_neuron_explorer_updates_its_caption(study):
    nbox = widget.neuron_explorer(study, threshold=0.0, k=2)
    assert {c.description for c in nbox.controls.values()} == {"model", "min s-score", "scored image"}
    assert "128 of 128" in nbox.caption.value
    nbox.controls["threshold"].value = 1.0
    assert "0 of 128" in nbox.caption.value and "none to show" in nbox.caption.value
    nbox.controls["arch"].value = "cnn"
    assert "of 256 neurons" in nbox.caption.value
    with pytest.raises(ValueError, match="unknown control"):
        widget.neuron_values(study, {"alpha": 0.5})
    with pytest.raises(ValueError, match="arch must be"):
        widget.neuron_explorer(study, arch="rnn")
