"""A toy frozen model and toy batches for the weight-mask tests (tests/masks, tests/pipeline)."""
from __future__ import annotations

import torch
from torch import nn

from shortcut_nb.config import seed_everything
from shortcut_nb.models import SplitModel


def toy_model() -> SplitModel:
    """conv -> BN -> ReLU -> pool -> linear encoder, linear head: 4 masked weights, BN left alone."""
    seed_everything(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 6),
    )
    model = SplitModel(backbone, nn.Linear(6, 2), name="toy", kind="cnn")
    # non-trivial BN statistics so eval mode matters
    with torch.no_grad():
        model.f_enc[1].running_mean.uniform_(-0.5, 0.5)
        model.f_enc[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def toy_batches(n: int = 64, batch: int = 16, size: int = 16, *, seed: int = 0, g: str = "true") -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    a = torch.randint(0, 2, (n,), generator=gen)
    x[:, 0] += 1.5 * y[:, None, None]  # a learnable class signal
    out = []
    for i in range(0, n, batch):
        b = {"image": x[i : i + batch], "y": y[i : i + batch], "a": a[i : i + batch]}
        if g == "true":
            b["g"] = 2 * b["y"] + b["a"]
        elif g == "garbage":
            b["g"] = torch.randint(-1000, 1000, (len(b["y"]),), generator=gen)
        elif g == "poison":
            b = NoG(b)
        out.append(b)
    return out


class NoG(dict):
    """A batch whose 'g' must never be read."""

    def __getitem__(self, key):
        if key == "g":
            raise AssertionError("the training objective read the group label 'g'")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "g":
            raise AssertionError("the training objective read the group label 'g'")
        return super().get(key, default)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
