"""Notebook 04's frames and figures read the study's results; dfr_view selects a precomputed head."""
from __future__ import annotations

import pytest
from matplotlib.collections import PathCollection
from support.chance import chance_lines
from support.entanglement_toys import as_results, run_toy

from shortcut_nb.sections.entanglement import views


def test_frames():
    results = as_results(run_toy())
    table = views.table_frame(results)
    assert list(table["head"]) == ["baseline", "DFR", "single-weight edit"]
    assert table.loc[1, "paper WGA"] == 0.82 and table.loc[1, "paper Prune_h"] == 0.52
    assert table.loc[0, "chance s (mask area)"] == 0.5
    sweep = views.sweep_frame(results)
    assert len(sweep) == 3 and sweep.loc[0, "DFR"].startswith("tuned")
    assert len(views.edit_frame(results)) == 1


def test_plots_draw_every_model():
    results = {**as_results(run_toy()), **as_results(run_toy(), dataset="isic", arch="vit", area=0.05)}
    fig = views.plot_fig5(results)
    assert len(fig.axes) == 4 and sum(ax.axison for ax in fig.axes) == 2  # (cnn, vit) x (waterbirds, isic)
    fig = views.plot_kept_vs_zeroed(results)
    assert "waterbirds/cnn" in fig.axes[0].get_xticklabels()[0].get_text()
    fig = views.plot_dfr_view(views.dfr_view(results, "isic/vit", "0.1"))
    assert "C=0.1" in fig.axes[0].get_title()


def test_dfr_view_selects_precomputed_heads():
    results = as_results(run_toy())
    run = results["waterbirds/cnn"].runs[0]
    v = views.dfr_view(results, "waterbirds/cnn", "0.1")
    assert v["wga"] == run["sweep"]["0.1"]["wga"] and sum(v["kept"]) == run["sweep"]["0.1"]["n_used_average"]
    assert views.dfr_view(results, "waterbirds/cnn")["C"] == run["dfr"]["C"]
    assert v["mean_s_all"] == run["sscore"]["mean"] and v["area"] == 0.5
    with pytest.raises(ValueError, match="choice"):
        views.dfr_view(results, "waterbirds/cnn", "0.5")
    with pytest.raises(ValueError, match="key"):
        views.dfr_view(results, "isic/vit")
    with pytest.raises(ValueError, match="seed_index"):
        views.dfr_view(results, "waterbirds/cnn", seed_index=1)


def test_histograms_and_strips_draw_the_chance_level_at_each_mask_area():
    results = {**as_results(run_toy()), **as_results(run_toy(), dataset="isic", arch="vit", area=0.05)}
    fig = views.plot_fig5(results)
    shown = [ax for ax in fig.axes if ax.axison]
    assert [len(chance_lines(ax, area)) for ax, area in zip(shown, (0.5, 0.05))] == [1, 1]
    view = views.dfr_view(results, "isic/vit", "0.1")
    assert len(chance_lines(views.plot_dfr_view(view).axes[0], 0.05)) == 1
    ax = views.plot_kept_vs_zeroed(results).axes[0]
    for i, area in enumerate((0.5, 0.05)):  # one horizontal chance line across each model's column
        assert [list(line.get_xdata()) for line in chance_lines(ax, area, axis="y")] == [[i - 0.4, i + 0.4]]
    n_neurons = sum(len(r.runs[0]["sscore"]["scores"]) for r in results.values())
    assert sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) == n_neurons
