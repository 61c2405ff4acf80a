"""Notebook 06, "Does the s-score find the ViT neurons that use the shortcut?": detectors against a causal truth.

The ViT's counterpart of notebook 03's section, on the same pairs (:meth:`Context.counterfactual_pairs`: validation
images with the spurious attribute flipped and with the core flipped; forward passes only). Each penultimate neuron's
spurious share is the ground truth (:mod:`shortcut_nb.counterfactuals`); the detectors scored against it
(:func:`~shortcut_nb.counterfactuals.evaluate_detectors`) are the s-score at the notebook's α (the paper's hard
score, Fig. 8's, on the study's samples; the ViT's penultimate neuron is its final class token, whose heatmaps need
gradients, so no other variant is computed) and the mask-free group gap and spuriosity on the pairs' images. The
notebook's own ViT is randomised (last block, whole model); every seed's ViT is scored on the same pairs.
"""
from __future__ import annotations

from collections.abc import Mapping

from ...counterfactuals import DatasetDetectors, Scorer, core_flip_unavailable, evaluate_detectors, sscore_key
from ...counterfactuals.randomise import SCOPES
from ...pipeline.context import Context
from ...sscore import score_neurons
from .neuron_study import ModelScores

#: The model whose neurons are scored (notebook 03 scores the CNN's).
ARCH = "vit"
#: The split the pairs come from.
SPLIT = "val"

__all__ = ["ARCH", "SPLIT", "detector_studies", "sscore_scorer"]


def sscore_scorer(study: ModelScores) -> Scorer:
    """The s-score at the study's α on its samples, as a scorer of any model (e.g. a randomised copy of the ViT)."""
    return lambda model: score_neurons(model, study.samples, alpha=study.alpha)


def detector_studies(ctx: Context, studies: Mapping[str, ModelScores],
                     by_seed: Mapping[str, Mapping[int, ModelScores]] | None = None, *, seed: int = 0,
                     model: str | None = None, pair_seed: int = 0,
                     n_pairs: int | None = None) -> dict[str, DatasetDetectors]:
    """``{dataset: DatasetDetectors}`` of the ViT for the datasets whose study has one (see the module docstring).

    Args:
        ctx: the notebook's context.
        studies: the notebook's own :class:`~.neuron_study.ModelScores` per dataset (seed ``seed``).
        by_seed: :func:`~.neuron_study.seed_studies` (every seed's; None: the own seed alone).
        seed: the notebook's model seed; model: the ViT (None: the profile's).
        pair_seed: seed of the pairs' draw; n_pairs: pairs (None: the profile's ``counterfactual_pairs``).
    """
    out = {}
    for name, st in studies.items():
        if ARCH not in st.models:
            continue
        spec = ctx.run_spec(name, arch=ARCH, seed=seed, model=model)
        common = dict(dataset=name, model_name=st.model_names.get(ARCH, ARCH), own_seed=int(seed),
                      alpha=float(st.alpha), area=st.area, pair_seed=int(pair_seed), split=SPLIT)
        reason = core_flip_unavailable(ctx.split(spec, SPLIT))
        if reason is not None:
            out[name] = DatasetDetectors(reason=reason, evaluations={}, **common)
            continue
        attribute, core = ctx.counterfactual_pairs(spec, seed=pair_seed, n=n_pairs, split=SPLIT)
        seeds = {int(seed): st, **{int(s): v for s, v in ((by_seed or {}).get(name) or {}).items()}}
        evaluations = {
            s: evaluate_detectors(v.models[ARCH], attribute, core, {sscore_key(): sscore_scorer(v)},
                                  scores={sscore_key(): v.scores[ARCH]}, randomise=SCOPES if s == int(seed) else (),
                                  seed=s)
            for s, v in seeds.items() if ARCH in v.models}
        out[name] = DatasetDetectors(reason=None, evaluations=evaluations, **common)
    return out
