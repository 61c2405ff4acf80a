"""Notebook 05's subnetwork explorer: switches among precomputed masks, says what was not precomputed."""
from __future__ import annotations

import pytest
from support.subnetwork_records import removal_entry

from shortcut_nb.sections.subnetworks import views as V
from shortcut_nb.sections.subnetworks import widget as W


def test_widget_switches_among_precomputed_masks():
    rem = removal_entry()
    opts = W.choices(rem)
    assert opts["group"] == [("without BwoP", 0), ("without BwP", 1)]
    assert [v for _, v in opts["keep"]] == [0.8, 0.6]
    assert W.caption(rem, 1, 0.6).startswith("not precomputed")
    box = W.subnetwork_explorer(rem)
    assert box.controls["group"].value == 0 and box.controls["keep"].value == 0.8
    assert box.caption.value == V.view_summary(V.subnetwork_view(rem, removed_group=0, keep_fraction=0.8))
    box.controls["keep"].value = 0.6
    assert box.caption.value == V.view_summary(V.subnetwork_view(rem, removed_group=0, keep_fraction=0.6))
    box.controls["group"].value = 1  # (1, 0.6) was not precomputed: said, not raised
    assert box.caption.value.startswith("not precomputed")
    with pytest.raises(ValueError, match="keep_fraction"):
        W.subnetwork_explorer(rem, keep_fraction=0.5)
    with pytest.raises(ValueError, match="removed_group"):
        W.subnetwork_explorer(rem, removed_group=3)
    with pytest.raises(ValueError, match="subnetworks"):
        W.choices({"subnetworks": {}})
