"""Cross-check against a library nobody here wrote: Quantus's TopKIntersection and RelevanceMassAccuracy.

Per image, ``TopKIntersection(k = |b|, normalise=False)`` is our hard per-sample score (the top-k pixels of a
map are exactly those at or above alpha) and ``RelevanceMassAccuracy`` our soft one, on the same heatmaps and masks.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from shortcut_nb import sscore
from shortcut_nb.models import build_model
from shortcut_nb.sscore.variants import variant_scores
from support.sscore_models import trained_like

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
except Exception as err:  # pragma: no cover - quantus is in the test extra
    quantus = None
    REASON = f"QUANTUS CANNOT BE IMPORTED ({err!r}): the Quantus cross-check of the s-score did NOT run"
else:
    REASON = ""

pytestmark = pytest.mark.skipif(quantus is None, reason=REASON or "quantus missing")
ALPHA = 0.5


@pytest.fixture(scope="module")
def cams_masks():
    torch.manual_seed(0)
    model = trained_like(build_model("resnet_mini", image_size=32))
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(4, 32, 32, dtype=torch.bool)
    masks[:, 4:20, 6:22] = True
    masks[1] = False
    masks[1, 20:30, 0:12] = True
    cams = sscore.unit_cams(model, images, layer=model.f_enc.layer3[0], units=list(range(0, 128, 9)))
    return images, cams, masks


def _quantus(metric, images, cam, mask):
    x = images.numpy()
    a = cam.numpy()[:, None].astype(np.float32)
    s = mask.numpy()[:, None].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(len(x), dtype=int), a_batch=a, s_batch=s,
                                 channel_first=True), dtype=np.float64)


def test_hard_score_is_quantus_top_k_intersection(cams_masks):
    images, cams, masks = cams_masks
    ours = variant_scores(cams, masks, alpha=ALPHA, variant="hard").numpy()
    paper = sscore.per_sample_scores(cams, masks, ALPHA).numpy()  # the same, in float32
    checked = 0
    for j in range(cams.shape[0]):
        for k in range(cams.shape[1]):
            n_b = int(sscore.binarize(cams[j, k], ALPHA).sum())
            if n_b == 0:
                continue
            metric = quantus.TopKIntersection(k=n_b, normalise=False, abs=False, disable_warnings=True)
            theirs = _quantus(metric, images[j:j + 1], cams[j:j + 1, k], masks[j:j + 1])[0]
            assert ours[j, k] == pytest.approx(theirs, abs=1e-12), (j, k)
            assert paper[j, k] == pytest.approx(theirs, abs=1e-6), (j, k)
            checked += 1
    assert checked >= 40


def test_soft_score_is_quantus_relevance_mass_accuracy(cams_masks):
    images, cams, masks = cams_masks
    ours = variant_scores(cams, masks, alpha=ALPHA, variant="soft").numpy()
    metric = quantus.RelevanceMassAccuracy(normalise=False, abs=False, disable_warnings=True)
    checked = 0
    for k in range(cams.shape[1]):
        theirs = _quantus(metric, images, cams[:, k], masks)
        focused = cams[:, k].flatten(1).sum(1).numpy() > 0  # an all-zero map: Quantus gives nan (0/0), we give 0
        assert np.all(np.isnan(theirs[~focused])) and np.all(ours[~focused, k] == 0)
        assert np.allclose(ours[focused, k], theirs[focused], atol=1e-6), k
        checked += int(focused.sum())
    assert checked >= 30
