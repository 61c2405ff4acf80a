"""ImageNet weights without a network: a local timm/Hugging Face cache is used; none fails in seconds."""
from __future__ import annotations

import socket
import time

import pytest
import torch
from safetensors.torch import save_file

import shortcut_nb.models as models
from shortcut_nb.models import build_model, cached_timm_weights


def _fake_hub_cache(root, repo: str, state: dict) -> None:
    """A Hugging Face hub cache holding ``repo``'s model.safetensors, laid out as huggingface_hub writes it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123456789abcdef")
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def test_a_cached_copy_is_loaded_without_the_network(tmp_path, monkeypatch):
    reference = build_model("resnet18")
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.01)
    backbone = {f"{k}": v for k, v in reference.f_enc.state_dict().items()}
    backbone["fc.weight"] = torch.zeros(1000, 512)
    backbone["fc.bias"] = torch.zeros(1000)
    _fake_hub_cache(tmp_path, "timm/resnet18.a1_in1k", backbone)
    monkeypatch.setattr(models.huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_hub_unreachable", lambda: pytest.fail("the network was consulted"))
    assert cached_timm_weights("resnet18") is not None
    model = build_model("resnet18", pretrained=True)
    for (name, mine), theirs in zip(model.f_enc.state_dict().items(), reference.f_enc.state_dict().values()):
        assert torch.equal(mine, theirs), name


@pytest.mark.parametrize("offline", ["env", "dns"])
def test_no_network_and_no_cache_fails_in_seconds_with_where_to_put_weights(tmp_path, monkeypatch, offline):
    monkeypatch.setattr(models.huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(models.torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    if offline == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

        def no_dns(*args, **kwargs):
            raise OSError("Name or service not known")

        monkeypatch.setattr(models.socket, "getaddrinfo", no_dns)
    called = []
    monkeypatch.setattr(models.timm, "create_model", lambda *a, **k: called.append(k) or pytest.fail("hub tried"))
    tic = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"weights_file=.*\n?|HF_HUB_CACHE") as err:
        build_model("resnet18", pretrained=True)
    assert time.perf_counter() - tic < 5
    assert "weights_file=" in str(err.value) and "HF_HUB_CACHE" in str(err.value)
    assert not called


def test_a_hub_that_resolves_but_never_answers_is_given_up_within_5_s(tmp_path, monkeypatch):
    """A socket that accepts and never answers stands for a hub endpoint behind a dead proxy or firewall."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setattr(models.huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(models.torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(models.huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tic = time.perf_counter()
    try:
        with pytest.raises(RuntimeError, match="could not load ImageNet weights") as err:
            build_model("resnet18", pretrained=True)
    finally:
        silent.close()
    assert time.perf_counter() - tic <= 5
    assert f"the hub at {endpoint} did not answer within" in str(err.value) and "weights_file=" in str(err.value)
