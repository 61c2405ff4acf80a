"""A researcher's classifier: split with its trained head kept (timm, torchvision, a named head), loaded from a
checkpoint as it is, and refused with both shapes when its classifier does not fit the data's classes."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from shortcut_nb.models import SplitModel, as_split_model, load_classifier

X = torch.randn(2, 3, 64, 64)


@pytest.mark.parametrize("net", [
    timm.create_model("test_resnet", num_classes=3),
    timm.create_model("test_convnext", num_classes=3),  # pre-logits after its head norm
    torchvision.models.resnet18(num_classes=3),
    torchvision.models.mobilenet_v3_small(num_classes=3),  # classifier = Sequential(..., Linear)
], ids=["timm-resnet", "timm-convnext", "tv-resnet18", "tv-mobilenet"])
def test_split_keeps_the_trained_head_and_the_output(net):
    net.eval()
    split = as_split_model(net).eval()
    assert isinstance(split, SplitModel) and split.head.out_features == 3
    with torch.no_grad():
        assert torch.allclose(split(X), net(X), atol=1e-5)
        assert split.f_enc(X).shape == (2, split.head.in_features)
    assert split.kind == "cnn" and net(X).shape == (2, 3)  # the user's net is not changed


def test_a_named_head_and_errors():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    split = as_split_model(net, head="3")
    assert torch.allclose(split(X), net(X)) and split.head.in_features == 4
    with pytest.raises(ValueError, match="no linear classifier found in Sequential"):
        as_split_model(net)
    with pytest.raises(ValueError, match="head '0' is a Conv2d, not an nn.Linear"):
        as_split_model(net, head="0")


def test_a_timm_vit_is_a_vit():
    vit = timm.create_model("test_vit", num_classes=3, img_size=64).eval()
    split = as_split_model(vit)
    assert split.kind == "vit" and torch.allclose(split(X), vit(X), atol=1e-5)


def test_load_classifier_from_a_state_dict_a_ddp_file_and_timm_checkpoint(tmp_path):
    net = torchvision.models.resnet18(num_classes=3).eval()
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "ddp.pth")
    for file in ("plain.pth", "ddp.pth"):
        model = load_classifier("torchvision:resnet18", tmp_path / file, num_classes=3)
        assert torch.equal(model.head.weight, net.fc.weight)
        with torch.no_grad():
            assert torch.allclose(model(X), net(X), atol=1e-5)
    tnet = timm.create_model("test_resnet", num_classes=4).eval()
    torch.save({"arch": "test_resnet", "state_dict": tnet.state_dict()}, tmp_path / "timm.pth.tar")
    model = load_classifier(tmp_path / "timm.pth.tar")  # the file names its arch; classes from its classifier
    with torch.no_grad():
        assert model.head.out_features == 4 and torch.allclose(model(X), tnet(X), atol=1e-5)


def test_a_classifier_of_other_classes_is_an_error_naming_the_file_and_both_shapes(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "five.pth")
    with pytest.raises(ValueError, match=r"five.pth: 'fc.weight' has shape \(5, 512\) in the checkpoint but "
                                         r"\(3, 512\) in the model \(the classifier"):
        load_classifier("torchvision:resnet18", tmp_path / "five.pth", num_classes=3)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth: the checkpoint does not fit this architecture"):
        load_classifier("torchvision:resnet18", tmp_path / "other.pth", num_classes=3)
    with pytest.raises(ValueError, match="does not name its architecture"):
        load_classifier(tmp_path / "five.pth")
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet19'"):
        load_classifier("torchvision:resnet19", tmp_path / "five.pth", num_classes=5)
