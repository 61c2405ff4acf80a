"""What notebooks record: JSON merged atomically (with the torch thread count), figures as PNG."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import torch

from shortcut_nb import report


def test_record_merges_with_what_the_notebook_recorded_before(tmp_path):
    report.record("01_groups", {"avg": 0.8, "wga": 0.4}, tmp_path)
    path = report.record("01_groups", {"wga": 0.5, "gap": 0.3}, tmp_path)
    assert json.loads(path.read_text()) == {"avg": 0.8, "wga": 0.5, "gap": 0.3, "torch_threads": torch.get_num_threads()}


def test_save_figure_writes_png_under_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = report.save_figure(fig, "fig3", tmp_path)
    assert path == tmp_path / "figures" / "fig3.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["fig3.png"]  # no temporary file left

