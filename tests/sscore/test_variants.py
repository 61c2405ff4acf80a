"""Score variants (:mod:`shortcut_nb.sscore.variants`): hard, soft, IoU and dilated masks, by their formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.sscore import variants as V


def _cams_masks(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cams = torch.rand(4, 3, 12, 10, generator=g) * 0.999
    masks = torch.rand(4, 12, 10, generator=g) > 0.6
    masks[:, 0, 0] = True
    return cams, masks


def test_variants_follow_their_formulas():
    cams, masks = _cams_masks()
    b = (cams >= np.float32(0.5)).numpy()
    m = masks.numpy()[:, None]
    c = cams.double().numpy()
    hard = (b & m).sum((2, 3)) / np.maximum(b.sum((2, 3)), 1)
    soft = (c * m).sum((2, 3)) / c.sum((2, 3))
    iou = (b & m).sum((2, 3)) / (b | m).sum((2, 3))
    assert np.allclose(V.variant_scores(cams, masks, alpha=0.5).numpy(), hard, atol=1e-12)
    assert np.allclose(V.variant_scores(cams, masks, alpha=0.5, variant="soft").numpy(), soft, atol=1e-12)
    assert np.allclose(V.variant_scores(cams, masks, alpha=0.5, variant="iou").numpy(), iou, atol=1e-12)
    # hard without dilation is the paper's per-sample score
    assert torch.equal(V.variant_scores(cams, masks, alpha=0.5).float(), sscore.per_sample_scores(cams, masks, 0.5))


def test_empty_focus_scores_zero_and_soft_needs_no_alpha():
    cams, masks = _cams_masks()
    cams[0, 0] = 0.0
    for v in V.VARIANTS:
        assert float(V.variant_scores(cams, masks, alpha=0.5, variant=v)[0, 0]) == 0.0
    a = V.variant_scores(cams, masks, alpha=0.2, variant="soft")
    assert torch.equal(a, V.variant_scores(cams, masks, alpha=0.9, variant="soft"))


def test_dilation_grows_the_mask_by_r_pixels():
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[0, 4, 4] = True
    assert torch.equal(V.dilate_masks(m, 0), m)
    grown = V.dilate_masks(m, 2)
    assert int(grown.sum()) == 25 and bool(grown[0, 2:7, 2:7].all())
    # a heatmap on the rim of a patch: low against the patch, high against the grown patch (Appendix A)
    patch = torch.zeros(1, 20, 20, dtype=torch.bool)
    patch[0, 6:14, 6:14] = True
    cam = torch.zeros(1, 1, 20, 20)
    cam[0, 0, 5:15, 5:15] = 0.9
    cam[0, 0, 7:13, 7:13] = 0.0
    plain = float(V.variant_scores(cam, patch, alpha=0.5)[0, 0])
    grown_s = float(V.variant_scores(cam, patch, alpha=0.5, dilation=1)[0, 0])
    assert plain < 0.5 and grown_s == 1.0
    with pytest.raises(ValueError, match="dilation"):
        V.dilate_masks(m, -1)


def test_chance_levels():
    cams, masks = _cams_masks()
    scored = V.ScoredMasks.build(masks)
    n_b = torch.full((4, 3), 30)
    assert torch.allclose(V.chance_levels("hard", n_b, scored), scored.area[:, None].expand(4, 3))
    iou = V.chance_levels("iou", n_b, scored)
    a, nm = scored.area[:, None], scored.n_m[:, None]
    assert torch.allclose(iou, 30 * a / (30 + nm - 30 * a))
    # a random heatmap scores about its chance level
    g = torch.Generator().manual_seed(5)
    rnd = torch.rand(200, 1, 12, 10, generator=g) * 0.999
    big = masks[:1].expand(200, 12, 10)
    for v in ("hard", "soft"):
        s = V.variant_scores(rnd, big, alpha=0.5, variant=v).mean()
        assert float(s) == pytest.approx(float(big[0].float().mean()), abs=0.03)
