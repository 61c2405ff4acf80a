"""All-neuron s-scores: shortcut_nb.sscore fast paths vs pytorch-grad-cam looped per neuron.

Run: ``python benchmarks/bench_sscore.py [--quick]``.

For each case the fast path computes s-scores of every penultimate neuron on N
images. The reference is what one writes with pytorch-grad-cam: one ``GradCAM``
call per neuron (``ClassifierOutputTarget(i)`` on a module mapping x to z), then
binarise and score in numpy. The loop is timed on a few neurons and extrapolated
to all of them (its cost per neuron is constant); where noted, the fast path is
timed on a subset of the images and extrapolated linearly (its cost is linear in
images). Ratios come from one run, so machine load affects both sides alike.
The loop's s-scores are compared with the fast path's for the timed neurons.

Models have random weights with random BatchNorm statistics (timm zero-initialises
the last BN of each residual block, which would make mid-block maps trivial).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from shortcut_nb import sscore
from shortcut_nb.config import seed_everything
from shortcut_nb.models import build_model
from shortcut_nb.sscore import gradients
from shortcut_nb.sscore.reference import reference_unit_cams

ALPHA = 0.5


def _randomise_norms(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@dataclass
class Case:
    name: str
    model: str
    size: int
    layer: Callable[[nn.Module], nn.Module]
    target: float  # required speed-up
    fast_images: int | None = None  # time the fast path on this many images and extrapolate


def _reference_loop(model: nn.Module, layer: nn.Module, images: torch.Tensor, masks: np.ndarray,
                    neurons: list[int]) -> tuple[float, np.ndarray]:
    """Seconds per neuron, and per-sample s-scores (len(neurons), N), of the pytorch-grad-cam loop."""
    sscore.reference_cams(model, images[:1], neurons[:1], target_layer=layer)  # warm-up (imports, first call)
    start = time.perf_counter()
    maps = sscore.reference_cams(model, images, neurons, target_layer=layer)  # pytorch-grad-cam, a call per neuron
    per_neuron = (time.perf_counter() - start) / len(neurons)
    b = maps >= np.float32(ALPHA)  # (N, K, H, W)
    n_b = b.sum((2, 3))
    per_sample = np.where(n_b > 0, (b & masks[:, None]).sum((2, 3)) / np.maximum(n_b, 1), 0.0)
    return per_neuron, per_sample.T


def run_case(case: Case, n_images: int, n_ref: int) -> dict[str, object]:
    seed_everything(0)
    model = _randomise_norms(build_model(case.model, image_size=case.size if "mini" in case.model else None))
    layer = case.layer(model)
    images = torch.randn(n_images, 3, case.size, case.size)
    masks = torch.rand(n_images, case.size, case.size) > 0.3
    d = model.num_features
    sscore.s_scores(model, images[:2], masks[:2], alpha=ALPHA, target_layer=layer, neurons=[0, 1])  # warm-up
    method = gradients._raw_cams(model, layer, images[:1], None, method="auto", chunk_size=None)[1]

    fast_n = min(case.fast_images or n_images, n_images)
    start = time.perf_counter()
    fast = sscore.s_scores(model, images[:fast_n], masks[:fast_n], alpha=ALPHA, target_layer=layer)
    fast_s = (time.perf_counter() - start) * n_images / fast_n

    neurons = list(range(0, d, max(1, d // n_ref)))[:n_ref]
    per_neuron, ref_per_sample = _reference_loop(model, layer, images, masks.numpy(), neurons)
    ref_scores = ref_per_sample[:, :fast_n].mean(1)  # on the images the fast path saw
    ref_s = per_neuron * d
    return {
        "case": case.name, "method": method, "work": f"{d} x {n_images}", "fast_s": fast_s,
        "fast_note": "" if fast_n == n_images else f" (timed on {fast_n} images)",
        "ref_neuron_s": per_neuron, "ref_s": ref_s, "ratio": ref_s / fast_s, "target": case.target,
        "agree": float(np.abs(fast[neurons].numpy() - ref_scores).max()),
    }


def run_unit_case(name: str, model_name: str, size: int, layer_of: Callable[[nn.Module], nn.Module], n_images: int,
                  n_ref: int, target: float) -> dict[str, object]:
    """All units of a layer (issue 17): sscore.unit_s_scores against pytorch-grad-cam looped per unit."""
    seed_everything(0)
    model = _randomise_norms(build_model(model_name, image_size=size if "mini" in model_name else None))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    layer = layer_of(model)
    images = torch.randn(n_images, 3, size, size, device=device)
    masks = torch.rand(n_images, size, size, device=device) > 0.3
    sscore.unit_s_scores(model, images[:2], masks[:2], layer=layer, alpha=ALPHA)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fast = sscore.unit_s_scores(model, images, masks, layer=layer, alpha=ALPHA)
    if device.type == "cuda":
        torch.cuda.synchronize()
    fast_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    k_all = fast.numel()
    units = list(range(0, k_all, max(1, k_all // n_ref)))[:n_ref]
    reference_unit_cams(model, images[:1], units[:1], layer=layer)  # warm-up
    start = time.perf_counter()
    maps = reference_unit_cams(model, images, units, layer=layer)  # pytorch-grad-cam, one call per unit
    per_unit = (time.perf_counter() - start) / len(units)
    ours_maps = sscore.unit_cams(model, images, layer=layer, units=units).cpu().numpy()
    b = maps >= np.float32(ALPHA)
    m = masks.cpu().numpy()[:, None]
    n_b = b.sum((2, 3))
    ref_scores = np.where(n_b > 0, (b & m).sum((2, 3)) / np.maximum(n_b, 1), 0.0).mean(0)
    return {"case": name, "method": "analytic", "work": f"{k_all} x {n_images}", "fast_s": fast_s,
            "fast_note": f" [{device.type}, peak {peak:.1f} GiB, max|Δcam| {np.abs(ours_maps - maps).max():.1e}]",
            "ref_neuron_s": per_unit, "ref_s": per_unit * k_all, "ratio": per_unit * k_all / fast_s, "target": target,
            "agree": float(np.abs(fast[units].numpy() - ref_scores).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 images, 1 reference neuron (about a minute)")
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    args = parser.parse_args()
    n_images, n_ref = (10, 1) if args.quick else (50, 2)
    cases = [
        Case("resnet18 64px pooled layer4[-1]", "resnet18", 64, lambda m: m.default_target_layer(), 50),
        Case("resnet18 64px layer3", "resnet18", 64, lambda m: m.f_enc.layer3, 20),
        Case("resnet18 224px pooled layer4[-1]", "resnet18", 224, lambda m: m.default_target_layer(), 200),
        Case("resnet18 224px layer3", "resnet18", 224, lambda m: m.f_enc.layer3, 20,
             fast_images=2 if args.quick else 10),
        Case("resnet_mini 64px pooled layer4[-1]", "resnet_mini", 64, lambda m: m.default_target_layer(), 50),
        # the 768 penultimate neurons (class token after the last block) at the last block's norm1
        Case("vit_b16 224px penultimate (norm1)", "vit_base_patch16_224", 224, lambda m: m.default_target_layer(), 20,
             fast_images=2 if args.quick else 10),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n_images} images, alpha={ALPHA}, "
          f"reference loop timed on {n_ref} neuron(s) and extrapolated")
    header = (f"{'case':40s} {'path':11s} {'neurons x images':>16s} {'fast (s)':>9s} {'ref/neuron (s)':>14s} "
              f"{'ref all (s)':>11s} {'ratio':>7s} {'target':>7s}  max|Δs|")
    print(header)
    print("-" * len(header))
    total = time.perf_counter()
    failed = []
    unit_cases = [
        ("units: resnet18 224px layer3 (all ch.)", "resnet18", 224, lambda m: m.f_enc.layer3, 20),
        ("units: vit_b16 224px blocks[-1].norm1", "vit_base_patch16_224", 224, lambda m: m.f_enc.blocks[-1].norm1,
         20),
    ]
    if args.only:
        cases = [c for c in cases if args.only in c.name]
        unit_cases = [u for u in unit_cases if args.only in u[0]]
    runs = [lambda c=c: run_case(c, n_images, n_ref) for c in cases]
    runs += [lambda u=u: run_unit_case(*u[:4], n_images, n_ref, u[4]) for u in unit_cases]
    for run in runs:
        r = run()
        ok = r["ratio"] >= r["target"]
        if not ok:
            failed.append(str(r["case"]))
        print(f"{r['case']:40s} {r['method']:11s} {r['work']:>16s} {r['fast_s']:9.2f} {r['ref_neuron_s']:14.2f} "
              f"{r['ref_s']:11.0f} {r['ratio']:6.0f}x {'>=' + str(int(r['target'])) + 'x':>7s}  {r['agree']:.1e}"
              f"{'' if ok else '  BELOW TARGET'}{r['fast_note']}", flush=True)
    print(f"benchmark wall time {time.perf_counter() - total:.0f} s; "
          + ("all targets met" if not failed else f"below target: {', '.join(failed)}"))


if __name__ == "__main__":
    main()
