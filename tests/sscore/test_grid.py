"""s-scores at every alpha of a grid: one heatmap pass, the same numbers as scoring at each alpha."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore.grid import ALPHA_GRID, alpha_grid, check_alphas, grid_scores, score_grid
from support.sscore_models import trained_like


def test_alpha_grid_adds_sorts_and_deduplicates() -> None:
    assert ALPHA_GRID[0] == 0.05 and ALPHA_GRID[-1] == 0.95 and len(ALPHA_GRID) == 19
    assert alpha_grid() == ALPHA_GRID
    grid = alpha_grid(0.33, 0.5)
    assert 0.33 in grid and grid.count(0.5) == 1 and list(grid) == sorted(grid) and len(grid) == 20
    assert alpha_grid(0.7, base=(0.2, 0.7)) == (0.2, 0.7)
    with pytest.raises(ValueError, match="alphas"):
        alpha_grid(1.5)


@pytest.mark.parametrize("bad", [[], [0.5, 0.3], [0.2, 0.2], [-0.1, 0.5], [0.5, 1.1]])
def test_check_alphas_refuses_bad_grids(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="alphas"):
        check_alphas(bad)


def test_grid_scores_equal_per_sample_scores_at_every_alpha() -> None:
    cams = torch.rand(3, 7, 12, 10)
    cams[0, 0] = 0.0  # |b| = 0 at every alpha: 0
    cams[1, 2, :4] = 0.5  # values exactly on a threshold: >= keeps them
    masks = torch.rand(3, 12, 10) > 0.4
    alphas = alpha_grid(0.33)
    got = grid_scores(cams, masks, alphas)
    assert got.shape == (3, 7, len(alphas)) and got.dtype == torch.float32
    for a, alpha in enumerate(alphas):
        assert torch.equal(got[..., a], sscore.per_sample_scores(cams, masks, alpha)), alpha
    with pytest.raises(ValueError, match="alphas"):
        grid_scores(cams, masks, [0.5, 0.3])
    with pytest.raises(ValueError, match="masks"):
        grid_scores(cams, masks[:, :4], alphas)


def test_score_grid_equals_s_scores_across_chunks_and_restores_modes() -> None:
    model = trained_like(build_model("resnet_mini", image_size=32))
    model.train()
    images = torch.randn(3, 3, 32, 32)
    masks = torch.rand(3, 32, 32) > 0.5
    alphas = (0.3, 0.5)
    whole = score_grid(model, images, masks, alphas)
    seen: list[int] = []

    def chunks(starts):
        seen.extend(starts)
        return iter(starts)

    chunked = score_grid(model, images, masks, alphas, budget_bytes=3 * 32 * 32 * 4 * 100, chunks=chunks)  # 100 a chunk
    d = model.num_features
    assert whole.shape == (2, 3, d) and whole.dtype == np.float32
    assert seen == list(range(0, d, 100))
    assert np.array_equal(chunked, whole)
    assert model.training and all(m.training for m in model.modules())
    for a, alpha in enumerate(alphas):
        ref = sscore.s_scores(model, images, masks, alpha=alpha, reduction="none").numpy()
        assert np.array_equal(whole[a], ref), alpha
    with pytest.raises(ValueError, match="budget_bytes"):
        score_grid(model, images, masks, alphas, budget_bytes=0)
    with pytest.raises(ValueError, match="masks"):
        score_grid(model, images, masks[:2], alphas)
