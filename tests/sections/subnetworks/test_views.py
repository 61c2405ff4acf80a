"""Notebook 05's views: the widget's pure view of one subnetwork, the Fig. 6/7 tables and figures."""
from __future__ import annotations

import matplotlib
import pytest
from support.chance import chance_lines
from support.subnetwork_records import prusc_entry, removal_entry

from shortcut_nb.sections.subnetworks import views as V


def test_layers_lost_most_orders_and_breaks_ties_by_module_order():
    keep = {"a": 0.5, "b": 0.2, "c": 0.9, "d": 0.2}
    assert V.layers_lost_most(keep, 3) == [("b", 0.2), ("d", 0.2), ("a", 0.5)]
    assert V.layers_lost_most(keep, 10)[-1] == ("c", 0.9)
    with pytest.raises(ValueError, match="n must"):
        V.layers_lost_most(keep, 0)


def test_subnetwork_view_picks_the_cell_and_computes_deltas():
    rem = removal_entry()
    v = V.subnetwork_view(rem, removed_group=0, keep_fraction=0.8, top=2)
    assert v["removed_name"] == "BwoP" and v["keep_target"] == 0.8
    assert v["full"] == [0.9, 0.99, 0.6, 0.4] and v["sub"] == [0.2, 0.99, 0.62, 0.41]
    assert v["delta"] == pytest.approx([-0.7, 0.0, 0.02, 0.01])
    assert [n for n, _ in v["lost_most"]] == ["f_enc.layer1.conv", "f_enc.layer2.conv"]
    assert V.subnetwork_view(rem, removed_group=0, keep_fraction=0.6)["sub"][0] == 0.1
    with pytest.raises(ValueError, match="available"):
        V.subnetwork_view(rem, removed_group=1, keep_fraction=0.6)
    text = V.view_summary(v)
    assert "BwoP accuracy 0.90 → 0.20" in text and "largest change elsewhere 0.02" in text


def test_fig_frames_carry_our_and_the_papers_numbers():
    f6 = V.fig6_frame(prusc_entry())
    assert f6.loc["WGA"].tolist()[:2] == [0.3, 0.6] and f6.loc["WGA", "paper: PruSC"] == 0.73
    assert f6.loc["Prune_h", "ours: PruSC-style mask"] == 0.6 and f6.loc["Prune_f", "paper: PruSC"] == 0.48
    f7 = V.fig7_frame(removal_entry())
    assert list(f7.index[:3]) == ["full model", "without BwoP", "without BwP"]
    assert f7.loc["without BwoP", "BwoP"] == 0.2 and f7.loc["paper: without BwoP", "BwoP"] == 0.18
    wb = V.fig7_frame(removal_entry(dataset="waterbirds"))
    assert not any(i.startswith("paper") for i in wb.index)  # the paper has no Waterbirds Fig. 7
    assert "without BwoP" not in V.fig7_frame(removal_entry(), keep_fraction=0.6).index.tolist()[2:]


def test_plots_draw_the_expected_bars():
    fig = V.plot_fig7({"isic": removal_entry(), "waterbirds": removal_entry(dataset="waterbirds")})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].patches) == 4 * 3  # four groups x (full model + two masks at 80 %)
    fig = V.plot_per_layer_keep({"a": 0.5, "b": 0.2, "c": 0.9}, highlight=1)
    reds = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
    assert len(reds) == 1 and reds[0].get_width() == 0.2
    fig = V.plot_fig6(prusc_entry())
    assert len(fig.axes) == 3
    fig = V.plot_subnetwork_view(V.subnetwork_view(removal_entry(), removed_group=1, keep_fraction=0.8))
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 2 * 4
    with pytest.raises(ValueError, match="removals is empty"):
        V.plot_fig7({})


def test_fig6_histogram_draws_the_chance_level_at_the_mask_area():
    entry = prusc_entry()
    ax = V.plot_fig6(entry).axes[0]
    assert len(chance_lines(ax, entry["baseline"]["sscore"]["area"])) == 1
    assert [c.get_label() for c in ax.containers] == ["toy (mean 0.40)", "PruSC-style mask (mean 0.20)"]
