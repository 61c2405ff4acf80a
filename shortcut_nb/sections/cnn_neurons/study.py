"""Notebook 03's study: the s-scores of a CNN's penultimate neurons on an alpha grid, and its Table 4.

For each dataset the trained CNN's penultimate neurons are scored with the s-score
(:mod:`shortcut_nb.sscore`) on ``N`` random *training* images whose spurious mask is
non-empty (:meth:`Context.masked_samples`, the one draw; the paper: 50 training images; an
ISIC image without a colour patch has an empty mask, on which every neuron scores 0 whatever
it looks at; for the Waterbirds-like set every image qualifies, the mask being the background).

The heatmaps of all neurons on the ``N`` samples are computed once (in neuron chunks, so
memory stays bounded at any image size) and binarised at every threshold of a grid of
``alpha`` values (:func:`shortcut_nb.sscore.grid.score_grid`): :class:`NeuronStudy` keeps the
per-sample scores ``(A, N, d)``, so a new ``alpha`` is a lookup, never a new Grad-CAM pass. The
paper does not state its ``alpha`` (§3.3 and Appendix A leave it open); we default to
:data:`DEFAULT_ALPHA` = 0.5 and expose it.

Beyond the penultimate layer (issue 17): :meth:`NeuronStudy.unit_scores` scores the units of any block
(:func:`shortcut_nb.sscore.units.unit_per_sample`, any CAM method and score variant, memoised);
:func:`depth_profiles` walks every block (:func:`shortcut_nb.sscore.depth.depth_profile`);
:func:`method_variant_bands` says how the bands move with the CAM method and the score variant;
:func:`dilation_example` finds the neuron whose score rises most when the mask is dilated (Appendix A).

Table 4 (:meth:`NeuronStudy.table4`, memoised) is :func:`shortcut_nb.lastlayer.table4.prune_and_refit`
on the cached penultimate features of the validation (refit) and test (accuracy) splits.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...config import model_device
from ...data.samples import MaskedSamples
from ...lastlayer.table4 import DEFAULT_TAU, prune_and_refit
from ...pipeline.context import Context
from ...pipeline.feature_cache import FeatureSet
from ...pipeline.runs import RunSpec
from ...progress import progress
from ...bands import BAND_HIGH, BAND_LOW, band_counts
from ...sscore import neuron_cams
from ...sscore.depth import DepthProfile, depth_profile, model_blocks
from ...sscore.units import CAM_METHODS, CamMethod, UnitScores, unit_per_sample
from ...sscore.variants import VARIANTS, Variant
from ...sscore.grid import ALPHA_GRID, CAM_BUDGET_BYTES, check_alphas, score_grid
from ...vocab import DatasetName, GROUP_NAMES

#: Grad-CAM binarisation threshold. The paper does not state it; 0.5 keeps the upper half of each min-max
#: normalised heatmap, its "highly focused region" (§3.3).
DEFAULT_ALPHA = 0.5
#: Samples shown per neuron in Fig. 4 and the widget (the paper shows five).
N_SHOW = 5
#: Heatmaps of all neurons on the shown samples are kept when they take at most this many bytes.
SHOWN_BUDGET_BYTES = 2**26

#: Pixels the masks are grown by in the dilated variant, per 32 px of image side (Appendix A's edge-focused neuron).
DILATION_PER_32PX = 1

__all__ = ["CAM_METHODS", "DEFAULT_ALPHA", "DEFAULT_TAU", "DILATION_PER_32PX", "N_SHOW", "NeuronStudy", "VARIANTS",
           "build_study", "default_dilation", "depth_profiles", "dilation_example", "method_variant_bands",
           "neuron_study", "seed_studies"]


def default_dilation(image_size: int) -> int:
    """Pixels of mask dilation at an image side: :data:`DILATION_PER_32PX` per 32 px (1 at 32 px, 7 at 224 px)."""
    return max(1, round(DILATION_PER_32PX * int(image_size) / 32))


@dataclass
class NeuronStudy:
    """Everything notebook 03 needs about one dataset's CNN: s-score samples, per-sample scores, features.

    Attributes:
        dataset: ``"waterbirds"`` or ``"isic"``.
        model_name: the model's name (e.g. ``resnet_mini``).
        model: the trained SplitModel (eval mode), used again only for the heatmaps shown.
        images: (N, 3, H, W) s-score samples (cpu).
        masks: (N, H, W) bool spurious masks (cpu).
        sample_index: int64 (N,) indices of the samples in the training split.
        alphas: float64 (A,) thresholds of the grid.
        per_sample: float32 (A, N, d) per-sample s-scores at each alpha.
        area: the chance level, mean mask area of the samples.
        head: a cpu copy of the trained classifier ``nn.Linear(d, 2)``.
        test, val: penultimate features (``z``, ``y``, ``g``) of the test and validation splits.
        train_group_counts: training samples per group (for the weighted average).
        seconds: wall time of the steps (``scores``, ``features``).
    """

    dataset: str
    model_name: str
    model: nn.Module
    images: torch.Tensor
    masks: torch.Tensor
    sample_index: np.ndarray
    alphas: np.ndarray
    per_sample: np.ndarray
    area: float
    head: nn.Linear
    test: FeatureSet
    val: FeatureSet
    train_group_counts: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    data_group_names: tuple[str, ...] = ()  # the data's own (:class:`~shortcut_nb.data.groups.GroupScheme`)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def d(self) -> int:
        """Number of penultimate neurons."""
        return int(self.per_sample.shape[2])

    @property
    def n_samples(self) -> int:
        return int(self.per_sample.shape[1])

    @property
    def group_names(self) -> tuple[str, ...]:
        """The groups' names: the data's own, else the paper's for its datasets."""
        return self.data_group_names or tuple(GROUP_NAMES.get(self.dataset, ("G0", "G1", "G2", "G3")))

    def alpha_index(self, alpha: float) -> int:
        """Position of ``alpha`` in the grid (within 1e-6; sliders give 0.30000000000000004)."""
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha must be a number, got {alpha!r}")
        hits = np.flatnonzero(np.abs(self.alphas - float(alpha)) < 1e-6)
        if hits.size == 0:
            raise ValueError(f"alpha must be one of the precomputed thresholds "
                             f"{[round(a, 4) for a in self.alphas.tolist()]}, got {alpha!r}")
        return int(hits[0])

    @property
    def target_map(self) -> tuple[int, int]:
        """(h, w) of the map at the Grad-CAM target layer (ResNet-18 at 224 px: 7×7): the heatmaps' resolution."""
        seen: list[tuple[int, int]] = []
        handle = self.model.default_target_layer().register_forward_hook(
            lambda module, inputs, output: seen.append(tuple(output.shape[-2:])))
        try:
            with torch.no_grad():
                self.model.f_enc(self.images[:1].to(model_device(self.model)))
        finally:
            handle.remove()
        return seen[0]

    def has_alpha(self, alpha: float) -> bool:
        """Whether ``alpha`` is a threshold of the grid (within 1e-6)."""
        return bool(np.any(np.abs(self.alphas - alpha) < 1e-6))

    def grid_alpha(self, alpha: float) -> float:
        """The grid value ``alpha`` designates (sliders give 0.30000000000000004)."""
        return float(self.alphas[self.alpha_index(alpha)])

    def per_sample_at(self, alpha: float) -> np.ndarray:
        """(N, d) per-sample scores at ``alpha`` (a grid value)."""
        return self.per_sample[self.alpha_index(alpha)]

    def scores(self, alpha: float) -> np.ndarray:
        """(d,) s-scores at ``alpha``: the mean over samples of the per-sample scores."""
        return self.per_sample_at(alpha).astype(np.float64).mean(0)

    def table4(self, alpha: float, tau: float, seed: int = 0) -> dict[str, Any]:
        """Table 4 at ``alpha`` / ``tau`` (:func:`~shortcut_nb.lastlayer.table4.prune_and_refit`; refits memoised).

        The refit subsample and solver use ``seed``; a neuron set refit once is never refit again, so the
        notebook, the record and every widget redraw share the refits.
        """
        return prune_and_refit(self.head, self.scores(self.grid_alpha(alpha)), tau=tau, test=self.test,
                               val=self.val, seed=seed, train_group_counts=self.train_group_counts, memo=self._memo)

    def table4_neurons(self, neurons: Sequence[int], seed: int = 0) -> dict[str, Any]:
        """Table 4 with ``neurons`` pruned instead of those with s > τ (another detector's pick): the same
        :func:`~shortcut_nb.lastlayer.table4.prune_and_refit`, on a 0/1 score that is 1 for ``neurons`` (τ = 0.5),
        refits memoised with :meth:`table4`'s."""
        picked = np.zeros(self.d)
        picked[[int(i) for i in neurons]] = 1.0
        return prune_and_refit(self.head, picked, tau=0.5, test=self.test, val=self.val, seed=seed,
                               train_group_counts=self.train_group_counts, memo=self._memo)

    @property
    def blocks(self) -> list[str]:
        """The model's blocks by name, input to output (:func:`~shortcut_nb.sscore.depth.model_blocks`)."""
        return list(model_blocks(self.model))

    @property
    def default_block(self) -> str:
        """The block whose units are the penultimate neurons (the model's default Grad-CAM layer)."""
        target = self.model.default_target_layer()
        return next(name for name, m in model_blocks(self.model).items() if m is target)

    def unit_scores(self, block: str | None = None, *, alpha: float, method: CamMethod = "gradcam",
                    variant: Variant = "hard", dilation: int = 0) -> UnitScores:
        """Per-sample scores of one block's units (:func:`~shortcut_nb.sscore.units.unit_per_sample`; memoised).

        ``block=None`` is :attr:`default_block`: its units are the penultimate neurons, and with the defaults
        the scores are :meth:`scores`.
        """
        blocks = model_blocks(self.model)
        block = self.default_block if block is None else block
        if block not in blocks:
            raise ValueError(f"block must be one of {list(blocks)}, got {block!r}")
        key = ("units", block, round(float(alpha), 6), method, variant, int(dilation))
        if key not in self._memo:
            device = model_device(self.model)
            self._memo[key] = unit_per_sample(self.model, self.images.to(device), self.masks.to(device),
                                              layer=blocks[block], alpha=alpha, method=method, variant=variant,
                                              dilation=dilation)
        return self._memo[key]

    def heatmaps(self, neuron: int, samples: Sequence[int]) -> np.ndarray:
        """Grad-CAM heatmaps (len(samples), H, W) of one neuron on some of the study's samples (memoised)."""
        if not 0 <= int(neuron) < self.d:
            raise ValueError(f"neuron must lie in [0, {self.d}), got {neuron}")
        samples = [int(j) for j in samples]
        if not samples or min(samples) < 0 or max(samples) >= self.n_samples:
            raise ValueError(f"samples must be a non-empty list of indices in [0, {self.n_samples}), got {samples}")
        device = model_device(self.model)
        shown = list(range(min(N_SHOW, self.n_samples)))
        h, w = self.images.shape[-2:]
        if set(samples) <= set(shown) and len(shown) * self.d * h * w * 4 <= SHOWN_BUDGET_BYTES:
            # One pass gives every neuron's maps on the shown samples (the analytic CNN path costs one
            # forward for all neurons), so the picker and Figs. 2 and 4 need no further forward pass.
            if "shown_cams" not in self._memo:
                cams = neuron_cams(self.model, self.images[shown].to(device))
                self._memo["shown_cams"] = cams.cpu().numpy()
            return self._memo["shown_cams"][samples, int(neuron)]
        key = ("cams", int(neuron), tuple(samples))
        if key not in self._memo:
            cams = neuron_cams(self.model, self.images[samples].to(device), neurons=[int(neuron)])
            self._memo[key] = cams[:, 0].cpu().numpy()
        return self._memo[key]


def build_study(*, dataset: str, model: nn.Module, samples: MaskedSamples, test: FeatureSet, val: FeatureSet,
                train_group_counts: Sequence[int], alphas: Sequence[float] = ALPHA_GRID,
                budget_bytes: int = CAM_BUDGET_BYTES, progress_bar: bool = False,
                group_names: Sequence[str] = ()) -> NeuronStudy:
    """A :class:`NeuronStudy` from its parts (scores the neurons; no data loading).

    Args:
        dataset: dataset name (``"waterbirds"``/``"isic"``; names the groups).
        model: a trained SplitModel with ``.head`` an ``nn.Linear``.
        samples: the s-score samples (images (N, 3, H, W), bool masks (N, H, W), indices in the training split).
        test, val: features of the test split (accuracies) and validation split (refit).
        train_group_counts: training samples per group.
        alphas: the alpha grid.
        budget_bytes: heatmap memory one neuron chunk may hold (see :func:`~shortcut_nb.sscore.grid.score_grid`).
        progress_bar: a progress bar over the neuron chunks.
        group_names: the data's group names (default: the paper's for its datasets).
    """
    if not isinstance(getattr(model, "head", None), nn.Linear):
        raise TypeError("model must be a SplitModel whose .head is an nn.Linear")
    images, masks = samples.images, samples.masks
    tic = time.perf_counter()
    per_sample = score_grid(model, images, masks, alphas, budget_bytes=budget_bytes,
                            chunks=lambda starts: progress(starts, desc="s-scores (neuron chunks)",
                                                           enabled=progress_bar and len(starts) > 1))
    seconds = time.perf_counter() - tic
    head = copy.deepcopy(model.head).cpu().float().eval()
    return NeuronStudy(dataset=dataset, model_name=getattr(model, "name", type(model).__name__), model=model,
                       images=images.cpu(), masks=masks.cpu().bool(), sample_index=np.asarray(samples.indices),
                       alphas=check_alphas(alphas), per_sample=per_sample, area=samples.area, head=head, test=test,
                       val=val,
                       train_group_counts=[int(c) for c in train_group_counts], seconds={"scores": seconds},
                       data_group_names=tuple(group_names))


def neuron_study(ctx: Context, dataset: DatasetName, *, seed: int = 0, sample_seed: int = 0,
                 n_samples: int | None = None, alphas: Sequence[float] = ALPHA_GRID,
                 model: str | None = None) -> NeuronStudy:
    """Load (or train) the context's CNN on ``dataset`` and score its penultimate neurons.

    Args:
        ctx: the notebook's context (profile, runs root, data folders, progress).
        dataset: ``"waterbirds"`` or ``"isic"``.
        seed: training seed of the model (the notebook also seeds the refit's subsample with it).
        sample_seed: seed of the draw of s-score samples.
        n_samples: s-score samples (default: the profile's ``sscore_samples``, 50 outside smoke).
        alphas: the alpha grid.
        model: the CNN (None: the profile's; any of the paper's five).
    """
    spec = ctx.run_spec(dataset, arch="cnn", seed=seed, model=model)
    model, info = ctx.train_or_load(spec)
    samples = ctx.masked_samples(spec, seed=sample_seed, n=n_samples)
    tic = time.perf_counter()
    feats = {split: ctx.features(model, ctx.split(spec, split)) for split in ("val", "test")}
    feature_seconds = time.perf_counter() - tic
    study = build_study(dataset=dataset, model=model, samples=samples, test=feats["test"], val=feats["val"],
                        train_group_counts=info["train_group_counts"], alphas=alphas, progress_bar=ctx.progress,
                        group_names=ctx.split(spec, "test").groups.names)
    study.seconds["features"] = feature_seconds
    return study


def seed_studies(ctx: Context, datasets: Sequence[DatasetName], seeds: Sequence[int] | None = None, *,
                 alpha: float, sample_seed: int = 0, n_samples: int | None = None, model: str | None = None,
                 studies: Mapping[str, NeuronStudy] | None = None,
                 studies_seed: int = 0) -> dict[str, dict[int, NeuronStudy]]:
    """``{dataset: {seed: study}}`` at ``alpha`` alone, for deciding the claims per seed (issue 16).

    ``seeds``: None: the profile's (:meth:`Context.seeds`, ``studies_seed`` first). Every seed's model is scored
    on the same draw of samples (``sample_seed``), so the seeds differ only in training. ``studies`` (scored for
    ``studies_seed``, the notebook's own) are reused, not scored again.
    """
    return ctx.by_seed(datasets, lambda name, seed: neuron_study(
        ctx, name, seed=seed, sample_seed=sample_seed, n_samples=n_samples, alphas=(alpha,), model=model),
        seeds, own=studies, own_seed=studies_seed)


def depth_profiles(studies: dict[str, NeuronStudy], *, alpha: float = DEFAULT_ALPHA, variant: Variant = "hard",
                   dilation: int = 0, method: CamMethod = "gradcam", seed: int = 0) -> dict[str, DepthProfile]:
    """Every dataset's depth profile: all blocks of its CNN (:func:`~shortcut_nb.sscore.depth.depth_profile`)."""
    out = {}
    for name, st in studies.items():
        device = model_device(st.model)
        out[name] = depth_profile(st.model, st.images.to(device), st.masks.to(device), alpha=alpha, variant=variant,
                                  dilation=dilation, method=method, seed=seed)
    return out


def _band_row(factor: str, method: str, variant: str, dilation: int, res: UnitScores, *, low: float,
              high: float) -> dict[str, Any]:
    s = res.scores
    return {"factor": factor, "method": method, "variant": variant, "dilation": int(dilation),
            "band_counts": band_counts(s, low, high), "mean": float(s.mean()), "max": float(s.max()),
            "chance": res.area, "n_above_chance": int((s > res.area).sum())}


def method_variant_bands(study: NeuronStudy | None, *, alpha: float = DEFAULT_ALPHA, dilation: int | None = None,
                         methods: Sequence[str] = CAM_METHODS, low: float = BAND_LOW,
                         high: float = BAND_HIGH) -> list[dict[str, Any]]:
    """How the penultimate neurons' bands move with the CAM method (hard score) and the variant (Grad-CAM).

    Rows: one per method (``factor="method"``, the paper's hard score), then one per variant
    (``factor="variant"``: hard, soft, iou, and hard against the mask dilated by ``dilation`` pixels,
    default :func:`default_dilation`), each ``{"factor", "method", "variant", "dilation", "band_counts",
    "mean", "max", "chance", "n_above_chance"}``. The chance level of hard/soft is the (dilated) mask area,
    of IoU that of a random region of the same size. No rows without a study (no dataset has masks).
    """
    if study is None:
        return []
    r = default_dilation(study.images.shape[-1]) if dilation is None else int(dilation)
    rows = [_band_row("method", m, "hard", 0, study.unit_scores(alpha=alpha, method=m), low=low, high=high)
            for m in methods]
    for variant, d in [*((v, 0) for v in VARIANTS), ("hard", r)]:
        rows.append(_band_row("variant", "gradcam", variant, d, study.unit_scores(alpha=alpha, variant=variant,
                                                                                  dilation=d), low=low, high=high))
    return rows


def dilation_example(study: NeuronStudy | None, *, alpha: float = DEFAULT_ALPHA,
                     dilation: int | None = None) -> dict | None:
    """The penultimate neuron whose hard s-score rises most when the mask is dilated (Appendix A's edge neuron).

    Returns:
        ``{"neuron", "dilation", "s", "s_dilated", "gain", "chance", "chance_dilated"}``; None without a study (no
        dataset has masks).
    """
    if study is None:
        return None
    r = default_dilation(study.images.shape[-1]) if dilation is None else int(dilation)
    plain, grown = study.unit_scores(alpha=alpha), study.unit_scores(alpha=alpha, dilation=r)
    gain = grown.scores - plain.scores
    k = int(np.argmax(gain))
    return {"neuron": k, "dilation": r, "s": float(plain.scores[k]), "s_dilated": float(grown.scores[k]),
            "gain": float(gain[k]), "chance": plain.area, "chance_dilated": grown.area}


def planned_runs(ctx: Context, parameters: Mapping[str, Any]) -> list[RunSpec]:
    """What notebook 03 trains with these parameters (its ``parameters`` cell): for ``sweep plan``."""
    return [ctx.run_spec(ds, arch="cnn", seed=seed, model=parameters.get("MODEL"))
            for ds in ctx.datasets(parameters.get("DATASETS"))
            for seed in ctx.seeds(int(parameters.get("SEED", 0)), parameters.get("SEEDS"))]
