"""Notebook 06's frames and figures: Fig. 8, the neuron view, Fig. 9 and the layer x head tables."""
from __future__ import annotations

import pytest
import torch
from support.chance import chance_lines

from shortcut_nb.figures import THRESHOLD_COLOUR
from shortcut_nb.sections.vit_heads import attention_study as ast
from shortcut_nb.sections.vit_heads import neuron_study as ns
from shortcut_nb.sections.vit_heads import views

SIZE = 16  # the toy images of this folder's conftest


def test_figures_have_the_expected_panels(study, astudy):
    fig = views.plot_fig8([study], image=0, k=3)
    assert len(fig.axes) == 2 * (1 + 3) + 1  # two rows (ViT, CNN) of image + 3 heatmaps, one histogram
    view = ast.target_view(astudy, image=0, layer=2, head=1)
    fig = views.plot_fig9(view)
    assert len(fig.axes) == 2 * (1 + 4)
    assert fig.axes[3].get_title().startswith("layer 2")
    fig = views.plot_head_tables(view, astudy)
    assert len(fig.axes) == 4  # two tables, two colour bars
    fig = views.plot_neuron_view(ns.neuron_view(study, "vit", threshold=0.9, k=2))
    assert len(fig.axes) >= 2
    with pytest.raises(ValueError, match="at least one"):
        views.plot_fig8([])


def test_sscore_frame_reads_the_summary_and_the_paper(study):
    frame = views.sscore_frame([study])
    assert list(frame["dataset"]) == ["isic", "isic"] and set(frame["paper mean s"]) == {0.23, 0.40}
    row = frame.iloc[0]
    s = study.stats("cnn")
    assert row["neurons"] == 256 and row["mean s"] == round(s["mean"], 3)
    assert row["lift (mean / area)"] == round(s["lift"], 2)


def test_head_table_and_target_table(astudy):
    share = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    table = views.head_table(share, area=0.2)
    assert table.shape == (2, 2) and table.index.name == "layer" and table.columns.name == "head"
    assert table.loc[1, 0] == pytest.approx(0.3) and table.attrs == {"area": pytest.approx(0.2), "value": "share"}
    view = ast.target_view(astudy, image=1, row=2, col=6, layer=1, head=3)
    lift = views.target_table(view, "lift")
    assert lift.shape == (4, 4) and lift.iloc[1, 3] == pytest.approx(view["selected_lift"], rel=1e-5)
    assert lift.attrs["value"] == "lift" and lift.attrs["area"] == pytest.approx(view["area"])
    excess = views.target_table(view, "excess")
    assert excess.iloc[1, 3] == pytest.approx(view["selected_share"] - view["area"], abs=1e-6)


def test_views_of_data_without_spurious_patches_still_draw(toy):
    _, vit, images, _ = toy
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 0, 0] = True  # one pixel: no patch is more than half spurious
    empty = ast.attention_study(vit, images[:2], masks, dataset="isic", n_examples=1)
    view = ast.target_view(empty)
    views.plot_head_tables(view, empty)
    views.plot_fig9(view)
    assert "area" not in views.target_table(view, "share").attrs
    with pytest.raises(ValueError, match="needs spurious patches"):
        views.target_table(view, "lift")


def test_depth_profile_figure_and_frame(study):
    prof = ns.vit_depth_profiles([study])
    assert len(views.plot_depth_profile(prof).axes) == 2
    assert len(views.depth_frame(prof)) == len(prof[study.dataset].blocks)


def test_sscore_histograms_draw_the_chance_level_at_the_mask_area(study):
    hist = views.plot_fig8([study], image=0, k=3).axes[-1]
    assert len(chance_lines(hist, study.area)) == 1
    assert len(hist.containers) == len(study.archs)  # one density histogram per model
    view = ns.neuron_view(study, "vit", threshold=0.9, k=2)
    ax = views.plot_neuron_view(view).axes[0]
    assert len(chance_lines(ax, view["area"])) == 1 and view["area"] == pytest.approx(study.area)
    assert [list(line.get_xdata()) for line in ax.get_lines() if line.get_color() == THRESHOLD_COLOUR] == [[0.9, 0.9]]
