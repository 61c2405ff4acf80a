"""Time the 2-D projections of notebook 02 on a profile's training features, in one run.

Prints seconds per projection and speed-ups (reference time / time) against scikit-learn's t-SNE (the default, the reference):
openTSNE (if installed; ``pip install openTSNE``) at the same iteration schedule, and UMAP. UMAP's
first call in a process compiles numba code, so it is timed twice (cold, then warm).

    python benchmarks/bench_projections.py --profile cpu --dataset waterbirds --arch cnn

Features come from the feature cache (models trained on first use, as in notebook 02).
"""
from __future__ import annotations

import argparse
import importlib.util
import time

from shortcut_nb.embeddings import project
from shortcut_nb.pipeline.context import Context
from shortcut_nb.sections.latent_space.study import LatentSource


def timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", choices=["waterbirds", "isic"], default="waterbirds")
    parser.add_argument("--arch", choices=["cnn", "vit"], default="cnn")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ctx = Context.build(args.profile, progress=False)
    source = LatentSource.from_context(ctx, datasets=[args.dataset], archs=[args.arch], seed=args.seed)
    z = source.features(args.dataset, args.arch, args.split)["z"]
    print(f"{args.profile} {args.dataset} {args.arch} {args.split}: features {tuple(z.shape)}")
    reference = timed(lambda: project(z, method="tsne", seed=args.seed))
    print(f"t-SNE scikit-learn (reference)   {reference:7.1f} s   speed-up 1.00x")
    if importlib.util.find_spec("openTSNE") is not None:
        t = timed(lambda: project(z, method="tsne", seed=args.seed, tsne_backend="opentsne"))
        print(f"t-SNE openTSNE                   {t:7.1f} s   speed-up {reference / t:.2f}x")
    else:
        print("t-SNE openTSNE                   not installed (pip install openTSNE)")
    cold = timed(lambda: project(z, method="umap", seed=args.seed))
    warm = timed(lambda: project(z, method="umap", seed=args.seed))
    print(f"UMAP (first call, numba compile) {cold:7.1f} s   speed-up {reference / cold:.2f}x")
    print(f"UMAP (warm)                      {warm:7.1f} s   speed-up {reference / warm:.2f}x")


if __name__ == "__main__":
    main()
