"""What a mask step costs, whether longer runs decide the mask logits, and what the paper's recipe would cost.

Trains notebook 05's Fig. 7 mask (the profile's removal recipe: the profile's CNN, one group left out, 80 % kept)
for each ``--steps`` and ``--lr`` given, and prints per run: seconds per step, the cross-entropy's first and last
window means, the share of weights training's own mask (logits >= 0) keeps, the share of logits still undecided
(keep probability in (0.1, 0.9), :func:`~shortcut_nb.masks.undecided_share`) over training (window means), the
overlap of the kept weights with magnitude pruning of the same size, and the subnetwork's per-group test accuracy
next to the full model's. Masks are cached under the runs root like the notebook's, so a re-run only loads them.

Last, the cost of the mask recipes of Csordás et al. 2021 (their ``main.py`` profiles: CIFAR-10 class removal
20,000 steps, the CIFAR-10 ResNet 30,000 steps at mask batch 256), as ratios of images seen and estimated hours at
this run's seconds per image.

Examples::

    python benchmarks/bench_masks.py                                   # the cpu recipe (200 steps)
    python benchmarks/bench_masks.py --steps 200 1000 --remove 0       # does a 5x longer run decide the logits?
    python benchmarks/bench_masks.py --steps 2000 --lr 0.01            # Csordás et al.'s learning rate
    python benchmarks/bench_masks.py --penalty-always 1e-4 1e-6 1e-8   # no target while training, the 80 % cut after

``--penalty-always W ...`` trains instead with the sparsity penalty always on at each weight W (Csordás et al.'s own
setting: no keep target during training; the 80 % top-k cut only at evaluation), for the first ``--steps`` and
``--lr``: does any penalty weight keep 80 % with its logits decided?

Measured (cpu, ISIC-like, seed 0, without BwoP; recorded in ``shortcut_nb.pipeline.mask_runs``): 99.9 % undecided
after 200, 1000 and 2000 steps at lr 0.1 and after 1000 and 2000 at lr 0.01; with the penalty always on, all but 1 %
of the logits decided by step 80 at weight 1e-4 but training keeps 0.1 %; 1e-6 keeps 13 % (20 % undecided), 1e-8
83 % (74 %).
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from shortcut_nb.masks import magnitude_overlap, train_group_removal_mask
from shortcut_nb.pipeline.context import Context
from shortcut_nb.pipeline.mask_runs import MaskRecipe
from shortcut_nb.pipeline.runs import get_split
from shortcut_nb.sections.subnetworks.study import (
    PAPER_KEEP,
    evaluate_groups,
    group_removal_experiment,
    mask_recipes,
    window_curve,
)
from shortcut_nb.vocab import group_names

#: (name, steps, mask batch) of the mask recipes in Csordás et al.'s ``main.py`` (RobertCsordas/modules).
CSORDAS_RECIPES = (("Csordás et al., CIFAR-10 class removal", 20_000, 128),
                   ("Csordás et al., CIFAR-10 ResNet", 30_000, 256))


def curve_text(curve: list[list[float]]) -> str:
    """``step:value`` pairs of a recorded curve (``[[step, value], ...]``)."""
    return " ".join(f"{step}:{value:.3f}" for step, value in curve) or "not recorded"


def penalty_always_on(ctx: Context, dataset: str, group: int, seed: int, recipe: MaskRecipe, weight: float) -> str:
    """A mask trained without the group, the penalty on throughout (no target), cut to 80 % at evaluation."""
    spec = ctx.run_spec(dataset, arch="cnn", seed=seed)
    model, _ = ctx.train_or_load(spec)
    data = get_split(spec.data, recipe.data_split, root=ctx.root)
    mask = train_group_removal_mask(model, data, remove_group=[group], keep_fraction=None, batch_size=recipe.batch_size,
                                    steps=recipe.steps, lr=recipe.lr, sparsity_weight=weight, seed=seed)
    cut = replace(mask, keep_target=PAPER_KEEP)
    full, sub = (evaluate_groups(ctx, net, spec)["groups"] for net in (model, cut.apply(model)))
    names = group_names(dataset)
    return (f"\npenalty always on, weight {weight:g}, {recipe.steps} steps, lr {recipe.lr:g}: training's own mask keeps "
            f"{mask.history[-1]['train_keep']:.1%}; undecided (step:share) "
            + curve_text(window_curve([h["undecided"] for h in mask.history]))
            + f"; overlap with magnitude pruning {magnitude_overlap(cut, model):.3f}\n  group accuracy, full -> 80 % cut: "
            + ", ".join(f"{n} {f:.2f} -> {s:.2f}" for n, f, s in zip(names, full, sub)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", choices=["waterbirds", "isic"], default="isic")
    parser.add_argument("--remove", type=int, default=0, help="the group left out (ISIC-like: 0 BwoP, 1 BwP)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", default=[None], help="mask steps (default: the profile's)")
    parser.add_argument("--lr", type=float, nargs="+", default=[None], help="mask learning rates (default: the profile's)")
    parser.add_argument("--penalty-always", type=float, nargs="+", default=None, metavar="WEIGHT",
                        help="instead: the penalty always on at these weights (no target while training)")
    args = parser.parse_args()
    ctx = Context.build(args.profile, progress=False)
    base = mask_recipes(ctx).removal
    names = group_names(args.dataset)
    print(f"profile {args.profile}, {args.dataset}, seed {args.seed}: the Fig. 7 mask without {names[args.remove]}, "
          f"{PAPER_KEEP:.0%} kept (batch {base.batch_size}, sparsity weight {base.sparsity_weight:g})")
    if args.penalty_always:
        recipe = replace(base, steps=args.steps[0] or base.steps, lr=args.lr[0] or base.lr)
        for weight in args.penalty_always:
            print(penalty_always_on(ctx, args.dataset, args.remove, args.seed, recipe, weight), flush=True)
        return
    per_image = []
    for steps in args.steps:
        for lr in args.lr:
            recipe = replace(base, steps=steps or base.steps, lr=lr or base.lr)
            result = group_removal_experiment(ctx, dataset=args.dataset, remove_groups=(args.remove,),
                                              keep_fractions=(PAPER_KEEP,), seed=args.seed, recipe=recipe)
            sub = result.subnetworks[0]
            facts = sub.mask
            seconds = facts.train_seconds / max(facts.steps, 1)
            per_image.append(seconds / recipe.batch_size)
            print(f"\nsteps {recipe.steps}, lr {recipe.lr:g}: {seconds:.3f} s/step "
                  f"({'loaded' if facts.loaded else 'trained now'})")
            print(f"  cross-entropy {facts.loss_curve[0][1]:.3f} -> {facts.loss_curve[-1][1]:.3f}; training's own mask "
                  f"keeps {facts.train_keep:.1%}; overlap with magnitude pruning {facts.magnitude_overlap:.3f} "
                  f"(a random cut: {facts.keep_fraction:.2f})")
            print(f"  undecided (step:share, window means) {curve_text(facts.undecided_curve)}; end {facts.undecided:.3f}")
            print("  group accuracy, full -> subnetwork: " + ", ".join(
                f"{n} {f:.2f} -> {s:.2f}" for n, f, s in zip(names, result.full["groups"], sub.summary["groups"])))
    if per_image:
        ours = base.steps * base.batch_size
        rate = min(per_image)
        print(f"\nthe profile's recipe: {base.steps} steps x batch {base.batch_size} = {ours:,} images per mask")
        for name, steps, batch in CSORDAS_RECIPES:
            print(f"{name}: {steps:,} steps x batch {batch} = {steps * batch / ours:.0f}x the images, "
                  f"about {steps * batch * rate / 3600:.1f} h per mask here ({rate * 1e3:.1f} ms per image)")


if __name__ == "__main__":
    main()
