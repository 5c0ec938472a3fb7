"""The models: layer-for-layer parameter counts of the paper's networks, the backbone/head split, options."""

import pytest
import torch
from torch import nn

from hare_tortoise.nn import CReLU, build, models


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_resnet18_matches_the_cifar_resnet18():
    model = build("resnet18", (3, 32, 32), 10)
    # the standard CIFAR ResNet-18 has 11,173,962 parameters with its 512 -> 10 linear layer (5,130)
    assert count(model.backbone) == 11_173_962 - 5_130
    assert count(model.head) == (512 * 512 + 512) + (512 * 10 + 10)


def test_vgg16_bn_for_tiny_imagenet():
    model = build("vgg16", (3, 64, 64), 200)
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512)] + [(512, 512)] * 5
    expected = sum(9 * i * o + o + 2 * o for i, o in convs)  # conv weights and bias, BatchNorm affine
    assert count(model.backbone) == expected == 14_723_136
    assert count(model.head) == (2048 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 200 + 200)


def test_vit_tiny_for_cifar100():
    model = build("vit_tiny", (3, 32, 32), 100)
    dim, mlp, tokens = 192, 768, 64 + 1
    block = 2 * dim + dim * 3 * dim + (dim * dim + dim) + 2 * dim + (dim * mlp + mlp) + (mlp * dim + dim)
    expected = (48 * dim + dim) + dim + tokens * dim + 12 * block + 2 * dim
    assert count(model.backbone) == expected
    assert count(model.head) == dim * 100 + 100
    assert sum(isinstance(m, nn.GELU) for m in model.modules()) == 12
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.1 for m in model.modules()) == 1 + 12 * 3


@pytest.mark.parametrize("name, shape", [("mlp", (40,)), ("cnn", (1, 28, 28)), ("resnet18", (3, 32, 32)),
                                         ("vgg16", (3, 32, 32)), ("vit_tiny", (3, 32, 32))])
def test_every_model_splits_into_backbone_and_head(name, shape):
    torch.manual_seed(0)
    model = build(name, shape, 7, width=16 if name != "vit_tiny" else 24).eval()
    x = torch.randn(2, *shape)
    features = model.backbone(x)
    assert features.dim() == 2 and torch.equal(model.head(features), model(x))
    assert model(x).shape == (2, 7)


@pytest.mark.parametrize("norm, kind", [("layer", (nn.LayerNorm, nn.GroupNorm)), ("none", (nn.Identity,))])
def test_norm_options(norm, kind):
    model = build("cnn", (1, 28, 28), 10, norm=norm)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, kind) for m in model.modules())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_crelu_option_keeps_output_and_replaces_relus():
    model = build("mlp", (40,), 10, activation="crelu")
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, CReLU) for m in model.modules()) == 2
    assert model(torch.randn(3, 40)).shape == (3, 10)


def test_vit_reset_parameters_redraws_tokens_and_positions():
    model = build("vit_tiny", (3, 32, 32), 10, width=24)
    cls, positions = model.backbone.cls.clone(), model.backbone.positions.clone()
    model.reset_parameters()
    assert not torch.equal(cls, model.backbone.cls) and not torch.equal(positions, model.backbone.positions)


def test_bad_model_options():
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        build("resnet50", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="norm must be 'batch', 'layer' or 'none'"):
        build("mlp", (40,), 10, norm="group")


def test_the_mlp_depth_is_a_setting_and_other_models_refuse_one():
    deep = models.build("mlp", (40,), 10, 16, "batch", depth=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in deep.backbone) == 3
    assert sum(isinstance(m, torch.nn.Linear) for m in models.build("mlp", (40,), 10).backbone) == 2
    with pytest.raises(ValueError, match="model 'cnn' has no depth setting"):
        models.build("cnn", (1, 28, 28), 10, depth=3)
