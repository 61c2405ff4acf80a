"""Notebook 01's views: Tables 2 and 3 next to the paper's numbers, and the one figure."""
from __future__ import annotations

import pytest
from support.groups_results import sweep, table2

from shortcut_nb.paper import PAPER_TABLE2, PAPER_TABLE3
from shortcut_nb.sections.groups import views


def test_table2_frame_puts_ours_next_to_the_paper():
    df = views.table2_frame(table2())
    assert list(df.columns) == ["dataset", "model", "AVG", "WGA", "worst group", "GAP", "AVG (train-weighted)",
                                "paper AVG", "paper WGA", "paper GAP"]
    row = df.set_index("dataset").loc["waterbirds"]
    assert row["AVG"] == "0.83 ± 0.00" and row["WGA"] == "0.50 ± 0.00" and row["GAP"] == pytest.approx(0.33)
    assert row["paper WGA"] == PAPER_TABLE2[("waterbirds", "cnn")]["wga"]


def test_table3_frame_rounds_and_names_the_paper_row():
    df = views.table3_frame(sweep())
    assert df["minority ratio"].tolist() == ["50%", "5%", "0%"]
    first = df.iloc[0]
    assert [first[f"G{k}"] for k in range(4)] == [0.97, 0.96, 0.9, 0.92] and first["WGA"] == 0.9
    assert first["paper G0..G3"] == " / ".join(f"{v:.2f}" for v in PAPER_TABLE3[0.5])


def test_plot_groups_draws_every_model_and_every_group_of_the_sweep():
    fig = views.plot_groups(table2(), sweep())
    left, right = fig.axes
    assert len(left.patches) == 2 * 4  # two models, four groups
    assert len(right.lines) == 4 and list(right.lines[1].get_xdata()) == [50.0, 5.0, 0.0]
    assert [t.get_text() for t in right.get_legend().get_texts()][1] == "landbird/water (G1)"
