"""Notebook 04's DFR explorer: a thin view over dfr_view / view_text / plot_dfr_view."""
from __future__ import annotations

import pytest
from support.entanglement_toys import as_results, run_toy

from shortcut_nb.sections.entanglement import views, widget


def test_explorer_updates_text_when_C_changes():
    results = {**as_results(run_toy()), **as_results(run_toy(c_grid=(1.0, 0.1, 0.03)), dataset="isic")}
    assert widget.model_options(results) == [("waterbirds · toy", "waterbirds/cnn"), ("isic · toy", "isic/cnn")]
    assert [v for _, v in widget.c_options(results, "waterbirds/cnn")] == ["tuned", "1", "0.1"]
    box = widget.dfr_explorer(results)
    assert box.controls["model"].description == "model" and box.controls["C"].description == "C"
    first = box.caption.value
    assert "WGA" in first and "AVG" in first and "Prune_h" in first
    box.controls["C"].value = "0.1"
    assert box.caption.value != first and "DFR C=0.1:" in box.caption.value
    assert box.caption.value == views.view_text(views.dfr_view(results, "waterbirds/cnn", "0.1"))
    box.controls["model"].value = "isic/cnn"
    assert [v for _, v in box.controls["C"].options] == ["tuned", "1", "0.1", "0.03"]
    assert box.controls["C"].value == "0.1" and box.caption.value.startswith("isic/cnn · DFR C=0.1")
    with pytest.raises(ValueError, match="choice"):
        widget.dfr_explorer(results, choice="7")
    with pytest.raises(ValueError, match="empty"):
        widget.model_options({})
    with pytest.raises(ValueError, match="key"):
        widget.c_options(results, "isic/vit")
