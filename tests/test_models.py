"""The model factory: the f_enc/head split, local weights files, clear errors without network."""
from __future__ import annotations

import pytest
import timm
import torch

from shortcut_nb.models import PAPER_MODELS, build_model, load_classifier


@pytest.mark.parametrize("name,size,d", [("resnet_mini", 32, 256), ("vit_mini", 32, 128), ("deit_mini", 32, 128), ("resnet18", 64, 512),
                                          ("mobilenetv3_small_050", 64, 1024)])
def test_split_matches_forward(name, size, d):
    model = build_model(name, image_size=size).eval()
    x = torch.randn(3, 3, size, size)
    z = model.f_enc(x)
    assert z.shape == (3, d)
    assert torch.allclose(model(x), model.head(z), atol=1e-6)
    assert model.head.out_features == 2
    assert model.default_target_layer() is not None


def test_resnet_mini_last_map_is_image_over_8():
    model = build_model("resnet_mini", image_size=64)
    assert model.f_enc.forward_features(torch.randn(1, 3, 64, 64)).shape[-2:] == (8, 8)


def test_weights_file_round_trip(tmp_path):
    source = build_model("resnet_mini", image_size=16).eval()
    torch.save(source.state_dict(), tmp_path / "model.pth")
    torch.manual_seed(123)
    target = build_model("resnet_mini", image_size=16, weights_file=tmp_path / "model.pth").eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(source(x), target(x))


def test_timm_backbone_file_drops_its_classifier_only_when_asked(tmp_path):
    """A file as timm saves ImageNet weights (1000-class fc) loads into the encoder with backbone_only=True; without
    it the classifier of another shape is an error naming the file and both shapes, never dropped silently."""
    imagenet = timm.create_model("resnet18", pretrained=False, num_classes=1000).eval()
    torch.save(imagenet.state_dict(), tmp_path / "resnet18_imagenet.pth")
    with pytest.raises(ValueError, match=r"resnet18_imagenet.pth: its classifier has shape \(1000, 512\).*\(2, 512\)"):
        build_model("resnet18", weights_file=tmp_path / "resnet18_imagenet.pth")
    model = build_model("resnet18", weights_file=tmp_path / "resnet18_imagenet.pth", backbone_only=True).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model.f_enc(x), imagenet.forward_head(imagenet.forward_features(x), pre_logits=True), atol=1e-5)
    assert model.head.out_features == 2


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("resnet_mini", weights_file=tmp_path / "missing.pth")
    torch.save({"not": "tensors"}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="state dict"):
        build_model("resnet_mini", weights_file=tmp_path / "bad.pth")
    torch.save(build_model("vit_mini").state_dict(), tmp_path / "vit.pth")
    with pytest.raises(ValueError, match="do not fit 'resnet_mini'"):
        build_model("resnet_mini", weights_file=tmp_path / "vit.pth")


def test_a_torch_file_named_safetensors_is_named_as_not_safetensors(tmp_path):
    """A torch.save file under a .safetensors name: the file named and what it is not (was a bare SafetensorError)."""
    path = tmp_path / "model.safetensors"
    torch.save(build_model("resnet_mini").state_dict(), path)
    with pytest.raises(ValueError, match=f"{path}: not a safetensors file .*named .pt or .pth"):
        build_model("resnet_mini", weights_file=path)
    with pytest.raises(ValueError, match=f"{path}: not a safetensors file"):
        load_classifier("resnet_mini", path)


def test_pickled_code_in_a_weights_file_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"weight": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        build_model("resnet_mini", weights_file=tmp_path / "evil.pth")


def test_pretrained_without_network_says_what_to_do(monkeypatch):
    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"(?s)could not load ImageNet weights for 'resnet18'.*weights_file="):
        build_model("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="no public pretrained weights"):
        build_model("resnet_mini", pretrained=True)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        build_model("resnet19")
    assert set(PAPER_MODELS) <= set(timm.list_models())


def test_timm_file_with_a_fitting_classifier_keeps_it(tmp_path):
    """A trained timm classifier of the data's classes: its fc becomes the head (not a random one)."""
    trained = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    torch.save(trained.state_dict(), tmp_path / "trained.pth")
    model = build_model("resnet18", weights_file=tmp_path / "trained.pth").eval()
    assert torch.equal(model.head.weight, trained.fc.weight) and torch.equal(model.head.bias, trained.fc.bias)
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model(x), trained(x), atol=1e-5)
