"""Notebook 02's explorer: the widget's functions, and redrawing from the caches without recomputing."""
from __future__ import annotations

import pytest

from shortcut_nb.sections.latent_space import study, widget


def test_widget_functions_and_explorer_redraw_from_caches(toy_source, capsys):
    view = widget.view_from_values(toy_source, {"arch": "cnn", "dataset": "waterbirds", "split": "val",
                                                "projection": "pca", "colour_by": "class"})
    assert view == study.LatentView("waterbirds", "cnn", "val", "pca", "class")
    with pytest.raises(ValueError, match="unknown widget field"):
        widget.view_from_values(toy_source, {"model": "cnn"})
    with pytest.raises(ValueError, match="split"):
        widget.view_from_values(toy_source, {"split": "holdout"})
    assert len(widget.draw(toy_source, view).axes[0].collections) >= 2
    box = widget.latent_explorer(toy_source, initial=view)
    n_features = sum(r["what"] == "features" for r in toy_source.log)
    n_projections = sum(r["what"] == "projection" for r in toy_source.log)
    box.controls["colour_by"].value = "group"  # recolouring: nothing recomputed
    box.controls["colour_by"].value = "attribute"
    assert sum(r["what"] == "features" for r in toy_source.log) == n_features
    assert sum(r["what"] == "projection" for r in toy_source.log) == n_projections
    box.controls["arch"].value = "vit"  # a new model: one extraction, one projection
    assert sum(r["what"] == "features" for r in toy_source.log) == n_features + 1
    assert sum(r["what"] == "projection" for r in toy_source.log) == n_projections + 1
    assert "could not draw" not in capsys.readouterr().out  # every callback drew its view
    assert box.caption.value == "<b>ViT · Waterbirds-like · val · PCA · colour: attribute</b>"
    box.controls["split"].value = "test"
    toy_source._get_split = lambda dataset, split: (_ for _ in ()).throw(OSError("disk gone"))
    box.controls["dataset"].value = "isic"  # a failing view is reported in the widget, not raised
    assert "could not draw this view: OSError: disk gone" in capsys.readouterr().out


def test_explorer_caption_carries_the_views_measured_purity(toy_source):
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds"], archs=["cnn"], splits=["train"],
                                           k=5, n_shuffles=20)
    att = results["waterbirds/cnn/train"]["attribute"]
    view = study.LatentView("waterbirds", "cnn", "train", "pca", "group")
    assert widget.caption(view, results) == (
        f"CNN · Waterbirds-like · train · PCA · colour: group — within-class attribute purity {att['purity']:.2f} "
        f"(shuffled {att['baseline']:.2f})")
    other = study.LatentView("waterbirds", "cnn", "test", "pca", "group")
    assert widget.caption(other, results).endswith("not computed for this split")
    box = widget.latent_explorer(toy_source, initial=view, results=results)
    assert f"purity {att['purity']:.2f}" in box.caption.value
    assert f"purity {att['purity']:.2f}" in widget.draw(toy_source, view, results).axes[0].get_title()
    box.controls["split"].value = "test"
    assert "not computed for this split" in box.caption.value
