"""Fine-tuning with the paper's recipe, atomic per-epoch checkpoints and exact resume.

One seed controls the initialisation (set before :func:`~shortcut_nb.models.build_model`)
and the data order (a fresh generator per epoch, seeded from ``seed`` and the
epoch), so a run killed after epoch k and restarted ends with the same weights
as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..artifacts import atomic_torch_save, atomic_write_json, load_checkpoint
from ..config import TrainSettings, get_device
from ..data.transforms import normalise_uint8
from ..progress import progress

LAST = "last.pt"
FINAL = "final.pt"


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _ResidentBatches:
    """Batches cut from a split's decoded uint8 pixels held on the training device (no loader, no host copy).

    The same items as a DataLoader over the split in ``order``: normalisation is the dataset's own
    (:func:`~shortcut_nb.data.transforms.normalise_uint8`), applied per batch on the device.
    """

    def __init__(self, dataset: Dataset, device: torch.device):
        decoded = getattr(dataset, "decoded", None)
        if decoded is None:
            raise ValueError("resident batches need a split loaded with decoded_dir= (load_dataset)")
        self.images = decoded.images.to(device)
        self.y = torch.as_tensor(dataset.y).to(device)
        self.normalization = getattr(dataset, "normalization", None)

    def __call__(self, order: list[int], batch_size: int):
        index = torch.as_tensor(order, device=self.images.device)
        for k in range(0, len(order), batch_size):
            rows = index[k:k + batch_size]
            yield {"image": normalise_uint8(self.images[rows], self.normalization), "y": self.y[rows]}


def _batches(train_set: Dataset, order: list[int], batch_size: int, resident: _ResidentBatches | None):
    if resident is not None:
        return resident(order, batch_size)
    return DataLoader(Subset(train_set, order), batch_size=batch_size, shuffle=False)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)


def fine_tune(
    model: nn.Module,
    train_set: Dataset,
    *,
    settings: TrainSettings,
    seed: int,
    checkpoint_dir: str | os.PathLike | None = None,
    stop_after_epochs: int | None = None,
    progress_bar: bool = True,
    device: torch.device | None = None,
    resident: bool | None = None,
    compile: bool = False,
) -> dict:
    """Train ``model`` in place on ``train_set`` (items are dicts with ``image`` and ``y``).

    Args:
        settings: the recipe (SGD, lr, weight decay, momentum, epochs, batch size).
        seed: controls the data order of every epoch.
        checkpoint_dir: where ``last.pt`` (each epoch, atomically) and ``final.pt`` go;
            an existing ``last.pt`` is resumed from, an existing ``final.pt`` is loaded.
        stop_after_epochs: stop early after this many epochs of *this call* (tests use it to
            simulate a killed run).
        device: defaults to :func:`~shortcut_nb.config.get_device`.
        resident: keep the split's decoded pixels on the device and cut batches there (default: on CUDA, when
            the split was loaded with ``decoded_dir=``); the same batches, bit for bit, as the loader's. On a CPU
            the model's arithmetic dominates: the cpu profile's models train no faster this way
            (``benchmarks/bench_train.py --cpu-loop``: 1.04x for the ResNet on an idle 2-core machine, within noise).
        compile: train through ``torch.compile(model)`` (CUDA speed; the weights are the model's own).

    Returns:
        ``{"history": [{"epoch", "loss", "train_acc", "seconds", "images_per_s"}...], "finished": bool}``.
    """
    device = device or get_device()
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # faster convolutions under bf16; no effect on token models
    optimizer = make_optimizer(model, settings)
    history: list[dict] = []
    start_epoch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None and (ckpt_dir / FINAL).is_file():
        state = load_checkpoint(ckpt_dir / FINAL)
        model.load_state_dict(state["model"])
        return {"history": state.get("history", []), "finished": True, "loaded": True, "resumed_from": settings.epochs}
    if ckpt_dir is not None and (ckpt_dir / LAST).is_file():
        state = load_checkpoint(ckpt_dir / LAST)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        history = list(state["history"])
    resumed_from = start_epoch
    n = len(train_set)
    epochs_run = 0
    if resident is None:
        resident = device.type == "cuda" and getattr(train_set, "decoded", None) is not None
    on_device = _ResidentBatches(train_set, device) if resident else None
    forward = torch.compile(model) if compile else model
    for epoch in range(start_epoch, settings.epochs):
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            return {"history": history, "finished": False, "resumed_from": resumed_from}
        model.train()
        order = _epoch_order(n, seed, epoch)
        loader = _batches(train_set, order, settings.batch_size, on_device)
        total_loss, correct, seen = 0.0, 0, 0
        tic = time.perf_counter()
        for batch in progress(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", enabled=progress_bar, leave=False,
                              total=-(-n // settings.batch_size)):
            images = batch["image"].to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            labels = torch.as_tensor(batch["y"]).to(device)
            if settings.augment:
                flip = torch.rand(images.shape[0], generator=torch.Generator().manual_seed(seed + epoch * 7919 + seen)) < 0.5
                images = torch.where(flip.to(device)[:, None, None, None], images.flip(-1), images)
            with _autocast(device, settings.amp):
                logits = forward(images)
                loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        seconds = time.perf_counter() - tic
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
                        "seconds": seconds, "images_per_s": seen / max(seconds, 1e-9)})
        epochs_run += 1
        if ckpt_dir is not None:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                               "history": history}, ckpt_dir / LAST)
    if ckpt_dir is not None:
        atomic_torch_save({"model": model.state_dict(), "history": history, "settings": asdict(settings)}, ckpt_dir / FINAL)
        atomic_write_json(ckpt_dir / "train_history.json", history)
        (ckpt_dir / LAST).unlink(missing_ok=True)
    return {"history": history, "finished": True, "resumed_from": resumed_from}


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 128, device: torch.device | None = None,
            progress_bar: bool = False) -> dict[str, np.ndarray]:
    """Predictions on a dataset: ``{"pred", "y", "a", "g", "logits"}`` as numpy arrays."""
    device = device or next(model.parameters()).device
    model.eval().to(device)
    preds, ys, gs, as_, logits_all = [], [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in progress(loader, desc="predict", enabled=progress_bar, leave=False):
        logits = model(batch["image"].to(device)).float().cpu()
        logits_all.append(logits)
        preds.append(logits.argmax(1))
        ys.append(torch.as_tensor(batch["y"]))
        gs.append(torch.as_tensor(batch["g"]))
        as_.append(torch.as_tensor(batch["a"]))
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    return {"pred": cat(preds), "y": cat(ys), "g": cat(gs), "a": cat(as_), "logits": cat(logits_all)}
