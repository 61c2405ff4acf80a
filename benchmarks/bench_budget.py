"""Can a profile's ``run_all`` fit a time budget on this machine? The arithmetic of every run it trains, against
this machine's measured rates, in one run; the ratio to the budget printed.

The runs are the sweep's plan (:func:`shortcut_nb.report.sweep.planned_specs`, what the six notebooks ask for):
each stand-in pretraining, fine-tuning and mask with the images it goes through
(:func:`shortcut_nb.pipeline.sweep.remaining_work`). One training image of an architecture costs its forward and
backward FLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode`` at the run's image size; a mask step is
counted as a training step of its frozen model (a forward, and a backward through the masked weights). A distilled
pretraining's teacher costs nothing per step (its logits are a table made once, :mod:`shortcut_nb.pipeline.pretrain`).

Two rates, both measured here at the current thread count: a float32 2048² matrix product (the dense ceiling no
training step can beat) and each architecture's own training step (batch 32, SGD). Minutes = FLOPs / rate. The
notebooks' evaluation (features, s-scores, counterfactual pairs, projections) is not counted, so both minute figures
are lower bounds of a fresh clone's ``bash ci/run_all.sh``.

    python benchmarks/bench_budget.py                          # cpu profile, a fresh runs root, 45-minute budget
    python benchmarks/bench_budget.py --runs-root runs         # only what is still to train under runs/
    python benchmarks/bench_budget.py --profile smoke --budget-min 10
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from shortcut_nb.config import PROFILES
from shortcut_nb.models import build_model
from shortcut_nb.pipeline.context import Context
from shortcut_nb.pipeline.sweep import PlannedRun, plan_runs, remaining_work
from shortcut_nb.report.sweep import planned_specs

BATCH = 32


def arch_and_size(run: PlannedRun) -> tuple[str, int]:
    """The architecture a run trains (a mask: its frozen model's) and its image size."""
    if run.kind == "pretrain":
        return run.spec.arch, run.spec.image_size
    spec = run.spec.spec if run.kind == "mask" else run.spec
    return spec.model, spec.data.image_size


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def train_cost(arch: str, size: int, *, steps: int) -> tuple[float, float]:
    """(GFLOP per training image, measured GFLOP/s of a training step) of ``arch`` at ``size`` px, batch 32."""
    torch.manual_seed(0)
    model = build_model(arch, image_size=size).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(BATCH, 3, size, size), torch.randint(0, 2, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        _step(model, opt, x, y)  # counts one step and warms up
    gflop = counter.get_total_flops() / BATCH / 1e9
    tic = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x, y)
    seconds = (time.perf_counter() - tic) / steps
    return gflop, gflop * BATCH / seconds


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a float32 n×n matrix product: the machine's dense ceiling at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - tic) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--runs-root", default=None, help="count only what is still to train there (default: a fresh, "
                                                          "empty root: a fresh clone)")
    parser.add_argument("--budget-min", type=float, default=45.0, help="the time budget of run_all, in minutes")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per architecture")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as fresh:
        root = args.runs_root or fresh
        ctx = Context.build(args.profile, root=root, progress=False)
        planned = plan_runs(planned_specs(ctx), root=root)
    images: dict[tuple[str, str, int], int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for run in planned:
        work = remaining_work(run)[1]
        if work:
            images[(run.kind, *arch_and_size(run))] += work
            count[run.kind] += 1

    peak = matmul_rate()
    costs = {(arch, size): train_cost(arch, size, steps=args.steps) for _, arch, size in images}
    print(f"profile {args.profile}, seeds {list(ctx.seeds())}, {torch.get_num_threads()} threads; "
          f"float32 matmul {peak:.1f} GFLOP/s")
    for (arch, size), (gflop, rate) in costs.items():
        print(f"  {arch} @ {size} px: {gflop:.3f} GFLOP per training image, its step {rate:.1f} GFLOP/s "
              f"({rate / peak:.0%} of the matmul)")
    print(f"\n{'kind':9s} {'arch':22s} {'images':>10s} {'TFLOP':>8s} {'min @ matmul':>13s} {'min @ step':>11s}")
    total_flop = total_at_step = 0.0
    for (kind, arch, size), n in images.items():
        gflop, rate = costs[(arch, size)]
        flop = n * gflop * 1e9
        total_flop += flop
        total_at_step += flop / (rate * 1e9)
        print(f"{kind:9s} {f'{arch} @ {size}':22s} {n:10,d} {flop / 1e12:8.1f} {flop / (peak * 1e9) / 60:13.1f} "
              f"{flop / (rate * 1e9) / 60:11.1f}")
    at_peak, at_step = total_flop / (peak * 1e9) / 60, total_at_step / 60
    runs = ", ".join(f"{n} {kind}" for kind, n in count.items()) or "nothing"
    print(f"{'total':9s} {runs:22s} {'':10s} {total_flop / 1e12:8.1f} {at_peak:13.1f} {at_step:11.1f}")
    print(f"\nTraining alone, evaluation not counted: at least {at_peak:.0f} min at the matmul ceiling, about "
          f"{at_step:.0f} min at the measured steps. Budget {args.budget_min:g} min: ratio budget / training = "
          f"{args.budget_min / at_step:.2f}" + ("" if at_step <= args.budget_min else
                                               f" (this machine would need to be {at_step / args.budget_min:.1f}x "
                                               "faster per step, before any evaluation)"))


if __name__ == "__main__":
    main()
