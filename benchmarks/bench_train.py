"""Training throughput: the project's fine-tuning loop against a plain PyTorch loop, in one run, ratios printed.

The plain loop is what one writes first: a torchvision-style ``Dataset`` that opens and decodes each JPEG with PIL
and resizes it on every step, a ``DataLoader``, fp32. The project's loop (:func:`shortcut_nb.pipeline.train.
fine_tune`) reads the split decoded once (:mod:`shortcut_nb.data.decoded`) and, on CUDA, keeps it on the device
and trains in bf16 with channels_last. Same model, same images (a real-format folder of JPEGs of varied sizes),
same batch size, on whatever device is present.

    python benchmarks/bench_train.py            # ResNet-18 and ViT-B/16 at 224 px
    python benchmarks/bench_train.py --quick    # fewer images and steps
    python benchmarks/bench_train.py --cpu-loop # the cpu profile's models: fine_tune's batches, resident vs loader
On a CPU it also times the data side alone: decoded-split batches/s against PIL decode + resize batches/s.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from shortcut_nb.config import TrainSettings, get_device, seed_everything
from shortcut_nb.data import WaterbirdsLikeSettings, generate_waterbirds_like, load_dataset
from shortcut_nb.data.folder import read_metadata
from shortcut_nb.models import build_model
from shortcut_nb.pipeline.train import fine_tune

MEAN = torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)


class PlainJpegDataset(Dataset):
    """The first loader anyone writes: open, decode and resize every image on every access."""

    def __init__(self, root: Path, size: int):
        df, _ = read_metadata(root)
        df = df[df["split"] == 0]
        self.paths = [root / f for f in df["img_filename"]]
        self.y = df["y"].to_numpy()
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - MEAN) / STD, int(self.y[i])


def plain_loop(model: torch.nn.Module, dataset: Dataset, *, batch_size: int, steps: int, device: torch.device) -> float:
    """Images per second of an fp32 SGD loop over a DataLoader (after one warm-up step)."""
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    seen, tic, step = 0, None, 0
    while step <= steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if tic is None:
                tic = time.perf_counter()  # the first step warms up
            else:
                seen += len(y)
            step += 1
            if step > steps:
                break
    return seen / (time.perf_counter() - tic)


def project_loop(model: torch.nn.Module, split, *, batch_size: int, device: torch.device) -> float:
    """Images per second of :func:`fine_tune` over one epoch of the decoded split (after a one-epoch warm-up)."""
    settings = TrainSettings(epochs=1, lr=1e-3, batch_size=batch_size)
    fine_tune(model, split, settings=settings, seed=0, progress_bar=False, device=device)  # warm-up
    result = fine_tune(model, split, settings=settings, seed=1, progress_bar=False, device=device)
    return result["history"][-1]["images_per_s"]


def data_side(root: Path, split, *, size: int, batch_size: int, batches: int) -> tuple[float, float]:
    """Batches per second: PIL decode + resize per item, against items from the decoded split."""
    plain = DataLoader(PlainJpegDataset(root, size), batch_size=batch_size, shuffle=True)
    fast = DataLoader(split, batch_size=batch_size, shuffle=True)
    rates = []
    for loader in (plain, fast):
        tic, n = time.perf_counter(), 0
        while n < batches:
            for _ in loader:
                n += 1
                if n >= batches:
                    break
        rates.append(batches / (time.perf_counter() - tic))
    return rates[0], rates[1]


def cpu_loop(*, n_train: int = 2000, epochs: int = 1) -> None:
    """The cpu profile's fine-tuning (64 px, batch 32, its two models) on the synthetic benchmark: one epoch of
    :func:`fine_tune` cutting batches from the decoded split (``resident=True``) against the same batches through
    a DataLoader (the CPU default); the weights must come out equal."""
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_waterbirds_like(Path(tmp) / "wb", WaterbirdsLikeSettings(image_size=64, n_train=n_train,
                                                                                  n_val=8, n_test=8, seed=0))
        split = load_dataset(root, split="train", image_size=64, decoded_dir=Path(tmp) / "decoded")
        settings = TrainSettings(epochs=epochs, lr=1e-2, batch_size=32)
        for name in ("resnet_mini", "vit_mini"):
            seconds, weights = {}, {}
            for resident in (False, True):
                seed_everything(0)
                model = build_model(name)
                tic = time.perf_counter()
                fine_tune(model, split, settings=settings, seed=0, progress_bar=False, device=torch.device("cpu"),
                          resident=resident)
                seconds[resident], weights[resident] = time.perf_counter() - tic, model.state_dict()
            same = all(torch.equal(weights[False][k], weights[True][k]) for k in weights[False])
            print(f"{name}: {len(split)} images x {epochs} epoch(s), {torch.get_num_threads()} threads: loader "
                  f"{seconds[False]:.1f} s, resident {seconds[True]:.1f} s: ratio {seconds[False] / seconds[True]:.2f}x "
                  f"(weights {'equal' if same else 'DIFFER'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and steps")
    parser.add_argument("--models", default="resnet18,vit_base_patch16_224")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cpu-loop", action="store_true", help="only the cpu profile's loop on a CPU")
    args = parser.parse_args()
    if args.cpu_loop:
        cpu_loop()
        return
    device = get_device()
    n_train = 64 if args.quick else 256
    batch = 16 if args.quick else 32
    steps = 2 if args.quick else 6
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_waterbirds_like(Path(tmp) / "wb", WaterbirdsLikeSettings(
            image_size=args.size, n_train=n_train, n_val=8, n_test=8, seed=0, file_format="jpeg", size_jitter=0.3))
        tic = time.perf_counter()
        split = load_dataset(root, split="train", image_size=args.size, decoded_dir=Path(tmp) / "decoded")
        print(f"device {device}; {len(split)} JPEGs of varied sizes at {args.size} px, batch {batch}; "
              f"decoding the split once took {time.perf_counter() - tic:.1f} s")
        if device.type == "cpu":
            slow, fast = data_side(root, split, size=args.size, batch_size=batch, batches=4 if args.quick else 8)
            print(f"data side: PIL decode+resize {slow:.2f} batches/s, decoded split {fast:.2f} batches/s: "
                  f"ratio {fast / slow:.1f}x (target >= 10x)")
        for name in args.models.split(","):
            seed_everything(0)
            plain = plain_loop(build_model(name), PlainJpegDataset(root, args.size), batch_size=batch, steps=steps,
                               device=device)
            seed_everything(0)
            ours = project_loop(build_model(name), split, batch_size=batch, device=device)
            print(f"{name}: plain loop {plain:.1f} images/s, project loop {ours:.1f} images/s: "
                  f"ratio {ours / plain:.2f}x" + (" (target >= 3x on a GPU)" if device.type == "cuda" else
                                                  " (CPU: the model's arithmetic dominates both)"))


if __name__ == "__main__":
    main()
