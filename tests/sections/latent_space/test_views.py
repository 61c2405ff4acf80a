"""Notebook 02's figures and frames: each group has its colour and marker, Fig. 3 and the purity bars, the tables."""
from __future__ import annotations

import pytest
from matplotlib.colors import to_hex

from shortcut_nb.sections.latent_space import study, views
from shortcut_nb.vocab import GROUP_NAMES


def test_render_view_draws_each_group_with_its_colour_and_marker(toy_source):
    view = study.LatentView("isic", "vit", "test", "pca", "group")
    fig = views.render_view(toy_source.picture(view))
    feats = toy_source.features("isic", "vit", "test")
    ax = fig.axes[0]
    present = [g for g in range(4) if (feats["g"] == g).any()]
    assert len(ax.collections) == len(present)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(f"{GROUP_NAMES['isic'][g]} (n={int((feats['g'] == g).sum())})" for g in present)
    by_label = {c.get_label().split(" (n=")[0]: to_hex(c.get_facecolor()[0]) for c in ax.collections}
    for g in present:
        assert by_label[GROUP_NAMES["isic"][g]] == views.GROUP_COLOURS[g]
    fig2 = views.render_view(toy_source.picture(study.LatentView("isic", "vit", "test", "pca", "attribute")))
    colours = {to_hex(c.get_facecolor()[0]) for c in fig2.axes[0].collections}
    assert colours <= set(views.ATTRIBUTE_COLOURS)
    with pytest.raises(ValueError, match="colour_by"):
        views.scatter_panel(ax, feats["z"][:, :2], feats["y"], feats["a"], colour_by="rainbow")


def test_fig3_purity_bars_and_frames(toy_source):
    rows = study.extract_all(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"], splits=["train"])
    frame = views.features_frame(rows)
    assert list(frame.columns) == views.FEATURE_COLUMNS and len(frame) == 2 and not frame["from_cache"].any()
    results = study.neighbourhood_analysis(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"],
                                           splits=["train"], k=5, n_shuffles=20)
    table = views.neighbourhood_frame(results)
    assert list(table["split"]) == ["train", "train"] and table["attr. purity"].between(0, 1).all()
    pictures = study.fig3_pictures(toy_source, datasets=["waterbirds", "isic"], archs=["cnn"], projection="pca")
    fig = views.plot_fig3(pictures, results=results)
    assert len(fig.axes) == 2 and "purity" in fig.axes[0].get_title()
    assert fig._suptitle.get_text().startswith("PCA of penultimate features f_enc(x), train split")
    assert "purity" not in views.plot_fig3(pictures).axes[0].get_title()
    assert views.plot_purity(results).axes[0].get_ylim()[1] > 1.0
    assert set(views.log_frame(toy_source)["what"]) == {"features", "projection"}
    assert views.purity_note(None) == "within-class attribute purity: n/a"
