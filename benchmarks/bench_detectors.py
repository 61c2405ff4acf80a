"""What notebooks 03 and 06's detector section ("Does the s-score find the neurons that use the shortcut?") adds to a
``cpu`` run: its steps timed on the cpu profile's models and sizes, for a few numbers of counterfactual pairs.

Per dataset and model (resnet_mini / vit_mini at 64 px, untrained: the cost does not depend on the weights), with the
cpu profile's 400 validation images and 50 s-score samples:

* ``pairs``: drawing and rendering ``n`` pairs, attribute and core flipped (once per dataset, shared by every seed);
* ``own seed``: :func:`~shortcut_nb.counterfactuals.evaluate_detectors` of the notebook's own model (three forward
  passes of ``n`` images, the s-score scorers as given, bootstrap intervals, and both randomisations, which rescore the
  s-score: the CNN's hard, soft and IoU variants, the ViT's hard score);
* ``other seed``: the same without randomisation (each further seed of the profile: two at cpu);
* ``pruning`` (the CNN): Table 4's refit without each detector's top-k neurons (six refits on 400 × 256 features).

The estimate per dataset is ``pairs + own + (seeds - 1) · other (+ pruning)``, the cpu profile's three seeds.

    python benchmarks/bench_detectors.py                 # n = 50, 200, 300
    python benchmarks/bench_detectors.py --pairs 200     # the cpu profile's
    python benchmarks/bench_detectors.py --threads 1 --clock cpu   # a single core's work, robust to other load

Each step is run ``--repeat`` times (default 2) and its fastest time kept.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_nb.config import profile_settings, seed_everything
from shortcut_nb.counterfactuals import evaluate_detectors, pairs, sscore_key, top_neurons
from shortcut_nb.data import (ISICLikeSettings, WaterbirdsLikeSettings, generate_isic_like, generate_waterbirds_like,
                              load_dataset)
from shortcut_nb.data.samples import draw_masked_samples
from shortcut_nb.lastlayer.table4 import prune_and_refit
from shortcut_nb.models import build_model
from shortcut_nb.sscore import score_neurons, unit_s_scores


REPEAT = 1


#: "wall" (seconds on the clock) or "cpu" (this process's CPU seconds, all threads: what a core would spend on it
#: alone, and far less disturbed than the clock by other work on a shared machine)
CLOCK = "wall"


def _timed(fn):
    """``fn()`` and its time on :data:`CLOCK`, the fastest of :data:`REPEAT` runs (other work only slows a run)."""
    clock = time.perf_counter if CLOCK == "wall" else time.process_time
    best, out = float("inf"), None
    for _ in range(REPEAT):
        tic = clock()
        out = fn()
        best = min(best, clock() - tic)
    return out, best


def _features(n: int, d: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(4), n // 4)
    return {"z": rng.normal(size=(len(g), d)).astype(np.float32), "y": (g // 2).astype(np.int64),
            "g": g.astype(np.int64)}


def _scorers(arch: str, samples, alpha: float) -> dict:
    if arch == "vit_mini":
        return {sscore_key(): lambda m: score_neurons(m, samples, alpha=alpha)}
    return {sscore_key(v): (lambda m, v=v: unit_s_scores(m, samples.images, samples.masks,
                                                          layer=m.default_target_layer(), alpha=alpha, variant=v))
            for v in ("hard", "soft", "iou")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[50, 200, 300])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs per step; the fastest is kept")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: seconds on the clock; cpu: CPU seconds of this process (with --threads 1, a "
                             "single core's work, robust to other load on the machine)")
    args = parser.parse_args(argv)
    global REPEAT, CLOCK
    REPEAT, CLOCK = args.repeat, args.clock
    torch.set_num_threads(args.threads)
    cpu = profile_settings("cpu")
    size, seeds = cpu.image_size, len(cpu.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            "isic": generate_isic_like(Path(tmp) / "isic", ISICLikeSettings(
                image_size=size, n_train=300, n_val=cpu.n_val, n_test=40, seed=0)),
            "waterbirds": generate_waterbirds_like(Path(tmp) / "wb", WaterbirdsLikeSettings(
                image_size=size, n_train=300, n_val=cpu.n_val, n_test=40, seed=0)),
        }
        total: dict[tuple[str, int], float] = {}
        for name, folder in folders.items():
            val = load_dataset(folder, split="val", image_size=size)
            samples = draw_masked_samples(load_dataset(folder, split="train", image_size=size), cpu.sscore_samples, 0)
            for n in args.pairs:
                (attribute, core), t_pairs = _timed(lambda: (pairs(val, n, 0), pairs(val, n, 0, flip="core")))
                for arch in ("resnet_mini", "vit_mini"):
                    seed_everything(0)
                    model = build_model(arch, image_size=size).eval()
                    scorers = _scorers(arch, samples, 0.5)
                    given = {k: f(model) for k, f in scorers.items()}  # the notebook has them from its study
                    own, t_own = _timed(lambda: evaluate_detectors(model, attribute, core, scorers, scores=given))
                    _, t_other = _timed(lambda: evaluate_detectors(model, attribute, core, scorers, scores=given,
                                                                   randomise=()))
                    t_prune = 0.0
                    if arch == "resnet_mini":
                        d = model.head.in_features
                        test, refit = _features(2 * cpu.n_val, d, 1), _features(cpu.n_val, d, 2)
                        k = int((own.truth.spurious_share > 0.5).sum())
                        picks = [own.truth.spurious_share, *own.scores.values()]

                        def prune():
                            memo: dict = {}
                            for s in picks:
                                chosen = np.zeros(d)
                                chosen[top_neurons(s, k)] = 1.0
                                prune_and_refit(model.head, chosen, tau=0.5, test=test, val=refit, memo=memo)

                        _, t_prune = _timed(prune)
                    estimate = t_pairs + t_own + (seeds - 1) * t_other + t_prune
                    total[(arch, n)] = total.get((arch, n), 0.0) + estimate
                    print(f"{name:10s} {arch:11s} n={n:3d}: pairs {t_pairs:5.1f} s, own seed {t_own:5.1f} s, "
                          f"other seed {t_other:5.1f} s, pruning {t_prune:4.1f} s -> {estimate:5.1f} s per dataset "
                          f"at {seeds} seeds ({CLOCK} clock)", flush=True)
        for (arch, n), seconds in sorted(total.items()):
            notebook = "03" if arch == "resnet_mini" else "06"
            print(f"notebook {notebook} ({arch}), n = {n}: about {seconds:.0f} s for both datasets")


if __name__ == "__main__":
    main()
