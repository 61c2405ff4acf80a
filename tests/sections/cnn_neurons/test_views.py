"""Notebook 03's frames and figures: Figs. 2 and 4, the histograms, Table 4 (frame and bars), the α table."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shortcut_nb.bands import band_representatives, pick_neuron
from shortcut_nb.paper import PAPER_TABLE4
from shortcut_nb.sections.cnn_neurons import study as S
from shortcut_nb.sections.cnn_neurons import views as V
from shortcut_nb.sections.cnn_neurons.record import ROWS, dataset_record
from shortcut_nb.sections.cnn_neurons.study import N_SHOW
from shortcut_nb.vocab import GROUP_NAMES
from support.cnn_neurons import tiny_study
from support.detector_records import detector_entry, unavailable_entry


@pytest.fixture(scope="module")
def study():
    return tiny_study()


def test_bands_and_picker_the_views_use():
    s = np.array([0.05, 0.9, 0.5, 0.1, 0.75, 0.3, 0.0, 0.4])
    reps = band_representatives(s)
    assert reps == {"low": 0, "mid": 7, "high": 4}  # median-ranked: low [3, 0, 6], mid [2, 7, 5], high [1, 4]
    assert band_representatives(np.zeros(4))["high"] is None
    assert pick_neuron(s, "index", 6) == 6
    assert pick_neuron(s, "high", 0) == 1 and pick_neuron(s, "mid", 2) == 5
    with pytest.raises(ValueError, match="high band holds 2 neurons"):
        pick_neuron(s, "high", 2)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 8\)"):
        pick_neuron(s, "index", 8)
    with pytest.raises(ValueError, match="by must be"):
        pick_neuron(s, "top", 0)


def test_overlap_image_colours():
    b = np.array([[1, 1], [0, 0]], bool)
    m = np.array([[1, 0], [1, 0]], bool)
    img = V.overlap_image(b, m)
    assert tuple(img[0, 0]) == (0.90, 0.15, 0.15) and tuple(img[0, 1]) == (0.25, 0.45, 0.95)
    assert tuple(img[1, 0]) == (0.82, 0.82, 0.82) and tuple(img[1, 1]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="must be"):
        V.overlap_image(b, m[:1])


def test_table4_frame(study):
    t = study.table4(0.5, 0.7, 0)
    frame = V.table4_frame(t, "isic", tau=0.7)
    assert list(frame.index) == [V.ROW_LABELS[r].replace("τ", "0.7") for r in ROWS]
    assert list(frame.columns)[:4] == list(GROUP_NAMES["isic"])
    assert frame.loc["Pruning (s-score > 0.7)", "zeroed"] == len(t["pruned_neurons"])
    assert frame["paper WGA (MwP)"].tolist() == [PAPER_TABLE4[r][3] for r in ROWS]
    missing = {**t, "refit": None, "errors": {"refit": "group 3 is missing"}}
    frame = V.table4_frame(missing, "waterbirds", tau=0.7)
    assert frame.loc["Group-balanced refit (val)", "note"] == "group 3 is missing"
    assert "paper WGA (MwP)" not in frame.columns


def test_figures_and_alpha_frame(study):
    res = dataset_record(study, alpha=0.5, tau=0.7, seed=0, sensitivity_alphas=(0.33, 0.5))
    results = {"isic": res, "waterbirds": {**res, "dataset": "waterbirds",
                                           "group_names": list(GROUP_NAMES["waterbirds"])}}
    fig = V.plot_sscore_derivation({"isic": study}, alpha=0.5)
    assert len(fig.axes) == 4 and "neuron" in fig.axes[2].get_title()
    fig = V.plot_band_neurons(study, alpha=0.5)
    assert len(fig.axes) == 3 * N_SHOW
    fig = V.plot_neuron_rows(study, {"empty": None, "one": 3}, alpha=0.5, samples=[0, 1], overlap_row=True)
    assert len(fig.axes) == 8 and "sample 1" in fig.axes[5].get_title()
    fig = V.plot_histograms({"isic": study}, alpha=0.5, tau=0.7)
    assert f"{study.area:.2f}" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert len(V.plot_table4(results).axes) == 2
    frame = V.alpha_sensitivity_frame(results)
    assert len(frame) == 4 and set(frame["α"]) == {0.33, 0.5}


def test_depth_and_method_views(study):
    prof = S.depth_profiles({"isic": study}, alpha=0.5)
    assert len(V.plot_depth_profile(prof).axes) == 2
    frame = V.depth_frame(prof)
    assert len(frame) == 4 and "share_significant" in frame.columns
    mf = V.method_variant_frame(S.method_variant_bands(study, alpha=0.5))
    assert len(mf) == 8 and list(mf["variant"])[-1] == "hard (mask + 1 px)"
    fig = V.plot_dilation_example(study, S.dilation_example(study, alpha=0.5), alpha=0.5)
    assert len(fig.axes) == 5


# --------------------------------------------------------------------------- detectors against the ground truth


@pytest.fixture(scope="module")
def detector_entries(tiny_isic):
    isic = detector_entry(tiny_isic, seeds=(0, 1))
    isic.update(tau=0.7, pruning={
        "k": 2, "rule": "top 2", "baseline": {"wga": 0.2, "avg": 0.8}, "refit": {"wga": 0.5, "avg": 0.7},
        "rows": {key: {"neurons": [0, 1], "overlap_truth": 1, "pruned": {"wga": 0.3, "avg": 0.8},
                       "refit_pruned": None, "errors": {"refit_pruned": "why"}} for key in ("truth", "sscore")}})
    return {"isic": isic, "mine": {**unavailable_entry(), "tau": 0.7, "pruning": None}}


def test_detector_table_has_intervals_seeds_and_the_reason_of_a_dataset_without_truth(detector_entries):
    frame = V.detector_frame(detector_entries)
    as_read = json.loads(json.dumps(detector_entries, sort_keys=True))  # a recorded JSON sorts its keys
    assert V.detector_frame(as_read).equals(frame)
    isic = frame.loc["ISIC-like"]
    assert list(isic.index) == ["s-score (hard)", "group gap", "spuriosity"]
    m = detector_entries["isic"]["table"]["sscore"]["auroc"]
    assert isic.loc["s-score (hard)", "AUROC"] == f"{m['value']:.2f} [{m['low']:.2f}, {m['high']:.2f}]"
    assert "AUROC (2 seeds)" in frame.columns
    assert isic.loc["group gap", "neurons"] == detector_entries["isic"]["table"]["group_gap"]["n"] <= 256
    assert frame.loc[("mine", "—"), "note"] == "not the synthetic benchmark"


def test_randomisation_frame_flags_what_survives(detector_entries):
    frame = V.randomisation_frame(detector_entries)
    assert "AUROC, whole model randomised" in frame.columns and "Spearman, last block randomised" in frame.columns
    entry = detector_entries["isic"]["randomised"]
    for key, label in (("sscore", "s-score (hard)"), ("group_gap", "group gap")):
        kept = [s for s in ("last_block", "all") if any(entry[s][key]["survives"].values())]
        flag = frame.loc[("ISIC-like", label), "survives randomisation"]
        assert (flag == "no") == (not kept)
    # the s-score stand-in ignores the model: it survives both randomisations
    assert frame.loc[("ISIC-like", "s-score (hard)"), "survives randomisation"].count("randomised") in (0, 2)
    assert list(V.randomisation_frame({"mine": detector_entries["mine"]})["note"]) == [
        "no dataset has a counterfactual ground truth"]


def test_pruning_frame_rows_per_detector(detector_entries):
    frame = V.detector_pruning_frame(detector_entries)
    rows = frame.loc["ISIC-like"]
    assert list(rows.index) == ["none (trained head; refit with all)", "ground truth (spurious share)", "s-score (hard)"]
    assert rows.loc["s-score (hard)", "WGA zeroed"] == 0.3 and pd.isna(rows.loc["s-score (hard)", "WGA refit"])
    assert rows.loc["none (trained head; refit with all)", "WGA refit"] == 0.5


def test_scatter_marks_chance_and_tau_and_explains_a_dataset_without_truth(detector_entries):
    fig = V.plot_detector_scatter(detector_entries, tau=0.7)
    ax, empty = fig.axes[:2]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["chance = mask area 0.06"].get_xdata()[0] == 0.06 and lines["τ = 0.7"].get_xdata()[0] == 0.7
    shares = detector_entries["isic"]["truth"]["spurious_share"]
    unmoved = sum(v is None for v in shares)
    assert len(ax.collections[0].get_offsets()) == len(shares) - unmoved
    assert (f"{unmoved} neurons neither flip moves" in ax.get_title()) == (unmoved > 0)
    assert "no ground truth" in empty.texts[0].get_text()


def test_mask_free_frame_and_caption():
    entry = {"dataset": "bare", "model": "m", "reason": "no mask_filename column", "split": "val", "n_images": 16,
             "scores": {"group_gap": [0.1, 0.9, 0.5], "spuriosity": [0.0, 0.2, 0.1]},
             "top": {"group_gap": [1, 2, 0], "spuriosity": [1, 2, 0]}, "agreement": 1.0}
    frame = V.mask_free_frame({"bare": entry})
    assert frame.loc[("bare", "group gap"), "top neurons"] == "n1 (0.90), n2 (0.50), n0 (0.10)"
    assert "no mask_filename column" in V.mask_free_caption({"bare": entry}) and "3 neurons" in V.mask_free_caption(
        {"bare": entry})
    assert V.mask_free_caption({}).startswith("Every dataset analysed has spurious masks")
    assert list(V.mask_free_frame({})["note"]) == ["every dataset has masks: nothing to rank without them"]


def test_pruning_caption_says_which_k(detector_entries):
    assert V.detector_pruning_caption(detector_entries) == "ISIC-like: top 2."
    assert V.detector_pruning_caption({"mine": detector_entries["mine"]}).startswith("No dataset has a counterfactual")


def test_every_sscore_view_of_no_dataset_says_why_instead_of_failing():
    """Notebook 03 on data without any masks (issue 29, item 6): each s-score view gets no dataset and shows the
    reason (a figure with the sentence, a frame whose note is it), never an error."""
    figures = [V.plot_sscore_derivation({}), V.plot_histograms({}), V.plot_table4({}), V.plot_depth_profile({}),
               V.plot_dilation_example(None, None), V.plot_detector_scatter({})]
    for fig in figures:
        text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        assert "masks" in text or "ground truth" in text, text
    for frame in (V.seed_frame({}), V.alpha_sensitivity_frame({}), V.method_variant_frame([]), V.depth_frame({})):
        assert frame["note"].str.contains("spurious masks").all()
    assert S.method_variant_bands(None) == [] and S.dilation_example(None) is None
    assert V.dilation_caption(None, None) == V.NO_MASKED_DATASET
