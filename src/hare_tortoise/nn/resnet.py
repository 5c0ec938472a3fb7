"""ResNet-18 with the CIFAR stem (He et al., CVPR 2016, arXiv:1512.03385), as the paper's CIFAR-10 model."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Classifier, norm_layer


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with norms, added to a (projected where the shape changes) shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = norm_layer(norm, out_channels, spatial=True)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = norm_layer(norm, out_channels, spatial=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          norm_layer(norm, out_channels, spatial=True))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.relu1(self.norm1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def resnet18(input_shape, num_classes: int, width: int = 64, norm: str = "batch") -> Classifier:
    """CIFAR stem (3x3 conv, stride 1, no max-pool), 4 stages of 2 BasicBlocks (w, 2w, 4w, 8w channels), global
    average pool; head Linear(8w, 8w)-ReLU-Linear(8w, classes), as the paper's CIFAR-10 model (docs/METHODS.md)."""
    layers = [nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False), norm_layer(norm, width, spatial=True), nn.ReLU()]
    channels = width
    for stage, out_channels in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for block in range(2):
            layers.append(BasicBlock(channels, out_channels, 2 if stage > 0 and block == 0 else 1, norm))
            channels = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, num_classes))
    return Classifier(nn.Sequential(*layers), head)
