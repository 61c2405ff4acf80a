"""Notebook 01's spread over seeds (Tables 2 and 3): each seed's AVG and WGA, with their mean ± sd, by seaborn."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex
from support.groups_results import table2

from shortcut_nb.figures import METRIC_COLOURS
from shortcut_nb.sections.groups import record, views


def per_seed(avg: float, wgas: list[float]) -> list[dict]:
    """Recorded per-seed summaries (the keys ``run_and_summarize`` writes that the spread reads)."""
    return [{"seed": s, "avg": avg + 0.01 * s, "wga": w, "groups": [avg, w]} for s, w in enumerate(wgas)]


TABLE2 = {"waterbirds/cnn": per_seed(0.8, [0.5, 0.6, 0.7]), "isic/vit": per_seed(0.9, [0.3, 0.4, 0.2])}
SWEEP = {"0.05": per_seed(0.85, [0.4, 0.5, 0.45]), "0.5": per_seed(0.95, [0.9, 0.92, 0.91]),
         "0": per_seed(0.8, [0.1, 0.2, 0.15])}


def test_seed_spread_frame_is_one_row_per_run_seed_and_metric():
    frame = views.seed_spread_frame(TABLE2)
    assert list(frame.columns) == ["run", "seed", "metric", "accuracy"] and len(frame) == 2 * 3 * 2
    wga = frame[(frame["run"] == "isic/vit") & (frame["metric"] == "WGA")]
    assert wga["accuracy"].tolist() == [0.3, 0.4, 0.2] and wga["seed"].tolist() == [0, 1, 2]
    assert views.seed_spread_frame({}).empty


def test_plot_seed_spread_draws_every_seed_in_the_project_colours():
    fig = views.plot_seed_spread(TABLE2, SWEEP)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["waterbirds/cnn", "isic/vit"]
    assert [t.get_text() for t in right.get_xticklabels()] == ["50%", "5%", "0%"]  # Table 3's order
    for ax, n_runs in ((left, 2), (right, 3)):
        points = np.concatenate([c.get_offsets() for c in ax.collections])
        assert len(points) == n_runs * 3 * 2  # every seed of every run, AVG and WGA
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(METRIC_COLOURS)
    assert "3 seeds" in left.get_title() and "Table 3" in right.get_title()
    wga_points = left.collections[1].get_offsets()  # waterbirds/cnn, WGA: right of the category's centre
    assert sorted(wga_points[:, 1]) == pytest.approx([0.5, 0.6, 0.7]) and (wga_points[:, 0] > 0).all()
    assert to_hex(left.collections[1].get_facecolor()[0], keep_alpha=False) == to_hex(METRIC_COLOURS["WGA"])


def test_plot_seed_spread_without_a_sweep_has_one_panel():
    assert len(views.plot_seed_spread(TABLE2).axes) == 1
    assert len(views.plot_seed_spread(TABLE2, {}).axes) == 1


def test_the_notebooks_call_draws_one_seed_without_a_sweep():
    t2 = table2()  # one seed per row, as the study returns them
    fig = views.plot_seed_spread(record.per_seed(t2), record.per_seed({}))
    (ax,) = fig.axes
    assert "1 seed)" in ax.get_title()
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(t2) * 2  # each row's one seed, AVG and WGA
    assert record.per_seed(t2) == record.payload(t2, {}, profile="smoke", seconds=0.0)["table2_per_seed"]
