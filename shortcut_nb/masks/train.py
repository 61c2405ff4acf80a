"""Training a binary weight mask over a frozen model (paper §5.3, Figs. 6–7).

The paper finds subnetworks of a trained classifier by learning a binary mask
on its frozen weights: PruSC [13] (Le et al. 2024, "Out of Spuriousity")
prunes towards a subnetwork that relies less on the spurious feature, and the
group-removal study (after Csordás et al. 2021 [5], "Are Neural Nets Modular?
Inspecting Functional Modularity Through Differentiable Weight Masks") trains a
mask on the data without one group, keeping 80 % of the weights, and measures
which groups the subnetwork still classifies.

How a mask is trained (all defaults from Csordás et al. 2021, their code
``RobertCsordas/modules``, ``main.py`` and ``masked_model.py``):

* one logit per weight (``granularity="weight"``) or per output channel/row
  (``"channel"``) of every conv and linear weight; biases, norm parameters and
  buffers are never masked;
* logits start at ``init_logit=2.0`` (their ``-mask_init 2.0``; keep
  probability sigmoid(2) = 0.88);
* masks are sampled with the Gumbel-sigmoid (logistic noise) at temperature
  ``temperature=1.0`` and binarised with a straight-through estimator (hard
  0/1 forward, the soft sigmoid's gradient backward) — their
  ``gumbel_sigmoid(..., hard=True)``;
* ``mask_samples=4`` samples per step; as in their multi-mask layers, the
  batch is split into ``mask_samples`` slices and each slice is seen through
  its own sample, so a step costs one forward/backward pass and the loss is the
  average over samples;
* the sparsity penalty is ``sparsity_weight * sum(logits)`` over all masked
  weights (their ``mask_loss``; ``-mask_loss_weight 1e-4``); a channel logit
  counts once per weight of its row;
* Adam on the logits only, ``lr=1e-2`` (their ``-mask_lr 1e-2``);
* the frozen model runs in eval mode (batch-norm running statistics, no
  dropout), as their ``set_model_to_eval`` does, and its weights enter
  :func:`torch.func.functional_call` detached, so training never writes to
  them (not even their ``.grad``);
* evaluation mask: ``logits >= 0``, deterministic.

Sparsity target (``keep_fraction``). The paper prunes "to 80 % of the total
number of weights". Two mechanisms together:

1. during training the sparsity penalty is switched on only while the
   deterministic mask keeps more than the target (a bang-bang controller on
   the penalty weight), so training prunes towards the target and stops
   pushing once there; cross-entropy alone may then re-grow needed weights;
2. the evaluation mask keeps exactly the ``keep_fraction`` of weights with the
   highest logits (a global top-k over all masked weights; ties broken by
   parameter order then flat index via a stable sort, so it is
   deterministic). With channel granularity rows are taken whole, so the kept
   fraction is the closest reachable to the target (within one row).

So the target is always met at evaluation (up to the layer guarantee below),
whether or not training had enough steps to reach it; ``history`` records the
fraction training itself reached (``train_keep``).

No layer is ever pruned entirely (paper footnote 6): after thresholding, a
layer whose mask is empty keeps its ``min_keep`` highest logits (default 1: one
weight, or one output row with channel granularity). This may add at most
``min_keep`` entries per layer above the target.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import model_device
from .diagnostics import undecided_share_of
from .gumbel import DEFAULT_TEMPERATURE
from .mask import DEFAULT_INIT_LOGIT, Granularity, WeightMask, check_choice
from .result import MaskResult

Objective = Literal["ce", "prusc"]

DEFAULT_MASK_SAMPLES = 4  # several samples per step; the batch is split between them
DEFAULT_SPARSITY_WEIGHT = 1e-4  # -mask_loss_weight 1e-4, on the sum of logits
DEFAULT_LR = 1e-2  # -mask_lr 1e-2, Adam
# SupCon (Khosla et al. 2020) default temperature, used by PruSC's contrastive term.
DEFAULT_CONTRASTIVE_TEMPERATURE = 0.07


def supcon_loss(z: torch.Tensor, y: torch.Tensor, *, temperature: float = DEFAULT_CONTRASTIVE_TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L^sup_out) with class labels as positives.

    For anchor i with positives P(i) = {p != i : y_p = y_i}:
    ``l_i = -1/|P(i)| * sum_p log(exp(s_ip) / sum_{a != i} exp(s_ia))``,
    ``s = cos(z_i, z_a) / temperature``; averaged over anchors with at least one positive.

    Args:
        z: features (B, d).
        y: labels (B,).
        temperature: > 0.

    Returns:
        Scalar tensor; 0 (with a graph) when no anchor has a positive.
    """
    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature
    b = z.shape[0]
    self_mask = torch.eye(b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has])
    return per_anchor.mean()


def _batches(loader: Iterable, *, steps: int | None, epochs: int | None) -> Iterator[tuple[int, Mapping]]:
    """Yield ``(epoch, batch)``: ``steps`` batches (cycling the loader) or ``epochs`` passes."""
    if steps is not None:
        done = 0
        epoch = 0
        while done < steps:
            got = False
            for batch in loader:
                got = True
                yield epoch, batch
                done += 1
                if done >= steps:
                    return
            if not got:
                raise ValueError("loader yielded no batches")
            epoch += 1
    else:
        for epoch in range(epochs):
            got = False
            for batch in loader:
                got = True
                yield epoch, batch
            if not got:
                raise ValueError("loader yielded no batches")


def _take(batch: Mapping, key: str) -> torch.Tensor:
    if not isinstance(batch, Mapping):
        raise TypeError(f"loader batches must be dicts with 'image' and 'y', got {type(batch).__name__}")
    try:
        return batch[key]
    except KeyError:
        raise ValueError(f"loader batch has no {key!r} entry (batches must be dicts with 'image' and 'y')") from None


def train_mask(
    model: nn.Module,
    loader: Iterable[Mapping[str, torch.Tensor]],
    *,
    objective: Objective = "ce",
    keep_fraction: float | None = None,
    granularity: Granularity = "weight",
    sparsity_weight: float = DEFAULT_SPARSITY_WEIGHT,
    contrastive_weight: float = 1.0,
    contrastive_temperature: float = DEFAULT_CONTRASTIVE_TEMPERATURE,
    steps: int | None = None,
    epochs: int | None = 1,
    lr: float = DEFAULT_LR,
    init_logit: float = DEFAULT_INIT_LOGIT,
    init_spread: float = 0.0,
    temperature: float = DEFAULT_TEMPERATURE,
    mask_samples: int = DEFAULT_MASK_SAMPLES,
    min_keep: int = 1,
    include: Callable[[str], bool] | None = None,
    seed: int = 0,
    on_step: Callable[[dict], None] | None = None,
) -> MaskResult:
    """Train a binary weight mask on a frozen model.

    Objectives (group labels are never read; only ``batch["image"]`` and ``batch["y"]``):

    * ``"ce"``: cross-entropy of the masked model + sparsity penalty (Csordás et al. 2021).
    * ``"prusc"``: cross-entropy + sparsity + ``contrastive_weight`` × a supervised
      contrastive loss (:func:`supcon_loss`, class labels as positives) on the masked
      model's penultimate features z (PruSC, Le et al. 2024, paper ref. [13]).
      PruSC's full recipe picks contrastive pairs from clusters of the ERM
      representation; this uses plain class-label SupCon.

    Args:
        model: the trained model (SplitModel for ``"prusc"``); never modified.
        loader: iterable of dict batches: ``image`` (B, 3, H, W), ``y`` (B,) long.
        objective: ``"ce"`` or ``"prusc"``.
        keep_fraction: target fraction of weights kept (e.g. 0.8), in (0, 1];
            ``None`` = no target, the mask is ``logits >= 0``. See the module docstring.
        granularity: ``"weight"`` or ``"channel"``.
        sparsity_weight: α of the penalty ``α · Σ logits`` (Csordás: 1e-4).
        contrastive_weight: weight of the SupCon term (``"prusc"`` only).
        contrastive_temperature: SupCon temperature (Khosla et al.: 0.07).
        steps: number of optimisation steps (cycles the loader); wins over ``epochs``.
        epochs: passes over the loader when ``steps`` is None.
        lr: Adam learning rate on the logits (Csordás: 1e-2). Adam's steps are
            about ``lr`` per step whatever the penalty size, so a logit at
            ``init_logit`` needs about ``init_logit / lr`` steps to be pruned by
            training; short runs rely on the final top-k threshold.
        init_logit: initial logit (Csordás: 2.0).
        init_spread: magnitude-ordered start, ``init_logit ± init_spread`` (see :class:`WeightMask`; 0: Csordás).
        temperature: Gumbel-sigmoid temperature (Csordás: 1).
        mask_samples: mask samples per step; the batch is split between them.
        min_keep: every layer keeps at least this many entries (footnote 6).
        include: optional filter on parameter names to mask.
        seed: seeds the Gumbel noise (the loader's order is the loader's business).
        on_step: called with each step's history row once the step is done (a progress bar, say: the core
            shows nothing itself).

    Returns:
        A :class:`MaskResult`.
    """
    check_choice("objective", objective, ("ce", "prusc"))
    check_choice("granularity", granularity, ("weight", "channel"))
    if keep_fraction is not None and not (0.0 < float(keep_fraction) <= 1.0):
        raise ValueError(f"keep_fraction must be in (0, 1] or None, got {keep_fraction!r}")
    if steps is None and (epochs is None or epochs < 1):
        raise ValueError(f"give steps >= 1 or epochs >= 1, got steps={steps!r}, epochs={epochs!r}")
    if steps is not None and steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    if mask_samples < 1:
        raise ValueError(f"mask_samples must be >= 1, got {mask_samples!r}")
    if temperature <= 0 or contrastive_temperature <= 0:
        raise ValueError("temperature and contrastive_temperature must be > 0")
    if min_keep < 1:
        raise ValueError(f"min_keep must be >= 1 (footnote 6: no layer entirely pruned), got {min_keep!r}")
    if sparsity_weight < 0 or contrastive_weight < 0:
        raise ValueError("sparsity_weight and contrastive_weight must be >= 0")
    if objective == "prusc" and not (hasattr(model, "f_enc") and hasattr(model, "head")):
        raise ValueError("objective='prusc' needs a model with .f_enc and .head (a SplitModel)")

    wrapper = WeightMask(model, granularity=granularity, init_logit=init_logit, include=include,
                         init_spread=init_spread)
    device = model_device(model)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    opt = torch.optim.Adam(wrapper.logits.parameters(), lr=lr)
    # a channel logit stands for all weights of its row in the penalty (Σ over weights)
    row_sizes = {n: math.prod(wrapper.weight_shapes[n]) / wrapper.logit(n).numel() for n in wrapper.names}

    history: list[dict] = []
    was_training = model.training
    model.eval()  # frozen: BN running stats are used, never updated
    try:
        train_keep = wrapper.train_keep_fraction()
        batches = _batches(loader, steps=steps, epochs=epochs) if steps != 0 else iter(())
        for epoch, batch in batches:
            t0 = time.perf_counter()
            x = _take(batch, "image").to(device)
            y = _take(batch, "y").to(device).long()
            n_chunks = min(mask_samples, x.shape[0])
            zs, outs = [], []
            for xc in torch.tensor_split(x, n_chunks):
                masks = wrapper.sample_masks(temperature=temperature, generator=generator)
                if objective == "prusc":
                    z, out = wrapper.features(xc, masks)
                    zs.append(z)
                else:
                    out = wrapper(xc, masks)
                outs.append(out)
            out = torch.cat(outs)
            ce = F.cross_entropy(out, y)
            loss = ce
            con = torch.zeros((), device=device)
            if objective == "prusc":
                con = supcon_loss(torch.cat(zs), y, temperature=contrastive_temperature)
                loss = loss + contrastive_weight * con
            # bang-bang controller: prune only while the deterministic mask keeps more than the target
            penalty_on = keep_fraction is None or train_keep > keep_fraction
            if penalty_on and sparsity_weight > 0:
                penalty = sum(wrapper.logit(n).sum() * row_sizes[n] for n in wrapper.names)
                loss = loss + sparsity_weight * penalty
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            train_keep = wrapper.train_keep_fraction()
            history.append(
                {
                    "epoch": epoch,
                    "loss": float(loss.detach()),
                    "ce": float(ce.detach()),
                    "contrastive": float(con.detach()),
                    "train_keep": train_keep,
                    "undecided": undecided_share_of(wrapper.named_logits(), wrapper.weight_shapes),
                    "penalty_on": bool(penalty_on),
                    "seconds": time.perf_counter() - t0,
                }
            )
            if on_step is not None:
                on_step(history[-1])
    finally:
        model.train(was_training)

    settings = dict(
        objective=objective, keep_fraction=keep_fraction, granularity=granularity, sparsity_weight=sparsity_weight,
        contrastive_weight=contrastive_weight, contrastive_temperature=contrastive_temperature, steps=steps,
        epochs=epochs, lr=lr, init_logit=init_logit, init_spread=init_spread, temperature=temperature, mask_samples=mask_samples,
        min_keep=min_keep, seed=seed,
    )
    return MaskResult(
        logits={n: wrapper.logit(n).detach().cpu().clone() for n in wrapper.names},
        weight_shapes=dict(wrapper.weight_shapes),
        granularity=granularity,
        keep_target=None if keep_fraction is None else float(keep_fraction),
        min_keep=min_keep,
        head_names=wrapper.head_names,
        objective=objective,
        history=history,
        settings=settings,
    )
