"""Stand-in pretraining: what ImageNet weights do for the paper's models, on generated images.

No ImageNet weights can be downloaded on the machines this project is built
on. Fine-tuning from scratch shortcuts totally (the minority groups go to ~0),
while the paper's ImageNet-pretrained models land in between. This module
pretrains a backbone on an *uncorrelated* multi-class task — which of
:data:`~shortcut_nb.data.render.SHAPES` is drawn, on textures of every family,
shape independent of background — so it starts with generic shape and texture
features. The result is a plain backbone state dict, loaded through the same
``weights_file`` path as real pretrained weights (``build_model(...,
weights_file=...)``); ``pretrained=True`` uses real timm weights where they
are available.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import atomic_torch_save, atomic_write_json, load_checkpoint, stable_key
from ..config import get_device, seed_everything
from ..data import render
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..models import arch_version, build_model
from ..progress import progress
from ..locks import artifact_lock


@dataclass(frozen=True)
class PretrainSettings:
    """Stand-in pretraining knobs. ``epochs`` is the strength knob (more epochs, stronger core features).

    ``teacher``: another stand-in pretraining (a CNN) whose predictions the backbone also learns from, as DeiT
    was distilled from a convnet: the loss is ``(1 - w) CE + w T² KL(teacher_T ‖ student_T)`` with soft targets
    at temperature ``T`` (``distill_weight`` w, ``distill_temperature`` T). A ViT learns shapes from a few
    thousand images far more slowly than a CNN; the teacher lends it the CNN's inductive bias.
    """

    arch: str = "resnet_mini"
    image_size: int = 64
    n_images: int = 10000
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    held_out: float = 0.1
    teacher: "PretrainSettings | None" = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ValueError(f"distill_weight must be in [0, 1] and distill_temperature > 0, got "
                             f"{self.distill_weight}, {self.distill_temperature}")
        t = self.teacher
        if t is None:
            return
        if t.image_size != self.image_size:
            raise ValueError(f"a teacher must be pretrained at the same image_size ({t.image_size} != {self.image_size})")
        # The student's held-out images must be ones the teacher never trained on: the same draw with the same
        # split, or another seed's draw. Draws of one seed at other sizes share images (measured: 583 of 6,000).
        if t.seed == self.seed and (t.n_images, t.held_out) != (self.n_images, self.held_out):
            raise ValueError("a teacher must be pretrained on the same images and held-out split (n_images, held_out) "
                             "or on another seed's images, which the student's held-out ones are not among")


# Knobs added after pretrainings were first keyed: at these values they stay out of the key (cached weights reused).
_KEYED_ONLY_WHEN_SET = {"teacher": None, "distill_weight": 0.5, "distill_temperature": 2.0}


def key_fields(settings: PretrainSettings) -> dict:
    """The settings as their keys see them (as ``dataclasses.asdict`` did before the teacher knobs existed): the
    knobs of :data:`_KEYED_ONLY_WHEN_SET` left out at those values, so earlier keys (and the run keys that hold
    a pretraining) are unchanged."""
    fields = {k: v for k, v in asdict(settings).items() if _KEYED_ONLY_WHEN_SET.get(k, object()) != v}
    if settings.teacher is not None:
        fields["teacher"] = key_fields(settings.teacher)
    return fields


def generate_pretraining_images(n: int, size: int, seed: int, *, plain_share: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8, (n, 3, size, size)) of random shapes on random textures, and shape labels.

    A ``plain_share`` of the images has a flat, contrasting background: from scratch, a small network learns
    shapes on busy textures very slowly (measured here: chance after 200 steps), and the easy images give it the
    shape features first; the textured rest teaches texture features, independent of the shape.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(len(render.SHAPES), size=n)
    for i in range(n):
        color = render.hsv(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.25, 1.0))
        if rng.random() < plain_share:
            background = np.broadcast_to(render.hsv(rng.random(), rng.uniform(0, 0.6), 1.25 - float(color.max())), (size, size, 3))
        else:
            kind = render.TEXTURES[int(rng.integers(len(render.TEXTURES)))]
            background = render.texture(kind, size, rng, render.random_palette(rng))
        mask = render.shape_mask(render.SHAPES[labels[i]], size, cx=size * rng.uniform(0.3, 0.7), cy=size * rng.uniform(0.3, 0.7),
                                 radius=size * rng.uniform(0.18, 0.32), rotation=rng.uniform(0, 2 * np.pi))
        images[i] = render.to_uint8(render.composite(background, color, mask, rng))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _normalise(batch_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=batch_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch_uint8.device).view(1, 3, 1, 1)
    return (batch_uint8.float() / 255.0 - mean) / std


def pretrained_weights_path(settings: PretrainSettings, root: str | Path) -> Path:
    key = stable_key({"__type__": "PretrainSettings", **key_fields(settings)},
                     {"arch_version": arch_version(settings.arch), "task_version": 2})
    return Path(root) / "pretrained" / f"{settings.arch}-{settings.image_size}px-{key}.pth"


def head_path(path: Path) -> Path:
    """The shape classifier of a stand-in pretraining (a teacher's predictions come from it)."""
    return path.with_name(path.stem + ".head.pth")


def ensure_pretrained(settings: PretrainSettings, *, root: str | Path, progress_bar: bool = True,
                      with_head: bool = False) -> Path:
    """The stand-in pretrained backbone for these settings: built once, then read from ``root/pretrained``.

    ``with_head``: its shape classifier must be there too (a teacher). A backbone cached before heads were kept
    is never rewritten (runs were fine-tuned from it): a head is fitted on it, frozen (:func:`_fit_head`).
    """
    path = pretrained_weights_path(settings, root)

    def ready() -> bool:
        return path.is_file() and (not with_head or head_path(path).is_file())

    if ready():
        return path
    with artifact_lock(path):  # a second process waits here, then finds the weights the first wrote
        if not path.is_file():
            _pretrain(settings, path, root=Path(root), progress_bar=progress_bar)
        elif not ready():
            _fit_head(settings, path)
    return path


def _fit_head(settings: PretrainSettings, path: Path, *, epochs: int = 30) -> None:
    """A shape head for a cached backbone, fitted with the backbone frozen (full-batch Adam on its features)."""
    seed_everything(settings.seed)
    images, labels = generate_pretraining_images(settings.n_images, settings.image_size, settings.seed)
    n_val = int(len(labels) * settings.held_out)
    model = build_model(settings.arch, num_classes=len(render.SHAPES), image_size=settings.image_size,
                        weights_file=path).eval()
    with torch.no_grad():
        z = torch.cat([model.f_enc(_normalise(images[i:i + 256])) for i in range(0, len(labels), 256)])
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-2)
    for _ in range(epochs * 10):
        loss = F.cross_entropy(model.head(z[n_val:]), labels[n_val:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    atomic_torch_save(model.head.state_dict(), head_path(path))


def _teacher(settings: PretrainSettings, root: Path, device: torch.device) -> torch.nn.Module | None:
    if settings.teacher is None:
        return None
    path = ensure_pretrained(settings.teacher, root=root, progress_bar=False, with_head=True)
    t = settings.teacher
    model = build_model(t.arch, num_classes=len(render.SHAPES), image_size=t.image_size, weights_file=path)
    model.head.load_state_dict(load_checkpoint(head_path(path)))
    return model.to(device).eval().requires_grad_(False)


def _teacher_table(teacher: torch.nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The teacher's logits for every training image as the loop sees it, unflipped and flipped: (N, 2, classes).

    The teacher is frozen and the only augmentation is the flip, so its predictions are made once, not per step
    (the cpu ViT's 40 distilled epochs: 1,297 s with the teacher in the loop, 752 s with this table).
    """
    rows = []
    with torch.no_grad():
        for i in range(0, len(images), 256):
            x = _normalise(images[i:i + 256].to(device))
            rows.append(torch.stack([teacher(x), teacher(x.flip(-1))], dim=1).cpu())
    return torch.cat(rows) if rows else torch.empty(0, 2, len(render.SHAPES))


def _distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: T² KL(softmax(teacher / T) ‖ softmax(student / T)), batch mean."""
    return F.kl_div(F.log_softmax(logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True) * temperature ** 2


def partial_path(path: Path) -> Path:
    """The per-epoch checkpoint of a pretraining in progress (a requeued job resumes from it)."""
    return path.with_name(path.name + ".partial.pt")


def _pretrain(settings: PretrainSettings, path: Path, *, root: Path, progress_bar: bool) -> None:
    device = get_device()
    teacher = _teacher(settings, root, device)  # before seeding: the student's start does not depend on it
    seed_everything(settings.seed)
    images, labels = generate_pretraining_images(settings.n_images, settings.image_size, settings.seed)
    n_val = int(len(labels) * settings.held_out)
    model = build_model(settings.arch, num_classes=len(render.SHAPES), image_size=settings.image_size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = (len(labels) - n_val) // settings.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=max(steps_per_epoch * settings.epochs, 1))
    generator = torch.Generator().manual_seed(settings.seed)
    train_x, train_y = images[n_val:], labels[n_val:]
    table = _teacher_table(teacher, train_x, device) if teacher is not None else None
    start, seconds = 0, 0.0
    partial = partial_path(path)
    if partial.is_file():  # a job killed or requeued mid-run: continue from its last finished epoch, exactly
        state = load_checkpoint(partial)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start, seconds = int(state["epoch"]), float(state["seconds"])
    tic = time.perf_counter()
    for epoch in progress(range(start, settings.epochs), desc=f"stand-in pretraining {settings.arch}",
                          enabled=progress_bar):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            x = _normalise(train_x[idx].to(device))
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flip.to(device)[:, None, None, None], x.flip(-1), x)
            logits = model(x)
            loss = F.cross_entropy(logits, train_y[idx].to(device))
            if table is not None:
                teacher_logits = table[idx, flip.long()].to(device)
                w = settings.distill_weight
                loss = (1 - w) * loss + w * _distill_loss(logits, teacher_logits, settings.distill_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        atomic_torch_save({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                           "seconds": seconds + time.perf_counter() - tic}, partial)
    model.eval()
    with torch.no_grad():
        val_pred = torch.cat([model(_normalise(images[i:min(i + 256, n_val)].to(device))).argmax(1).cpu() for i in range(0, n_val, 256)])
    held_out_acc = float((val_pred == labels[:n_val]).float().mean()) if n_val else float("nan")
    atomic_torch_save(model.head.state_dict(), head_path(path))
    atomic_torch_save(model.f_enc.state_dict(), path)  # last: the backbone's file says the run is complete
    atomic_write_json(path.with_suffix(".json"), {"settings": asdict(settings), "held_out_shape_accuracy": held_out_acc,
                                                  "seconds": seconds + time.perf_counter() - tic,
                                                  "resumed_at_epoch": start, "classes": list(render.SHAPES)})
    partial.unlink(missing_ok=True)
