"""VGG-16 with BatchNorm (Simonyan & Zisserman, ICLR 2015, arXiv:1409.1556), the paper's Tiny-ImageNet model."""

from __future__ import annotations

from torch import nn

from .layers import Classifier, norm_layer

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(input_shape, num_classes: int, width: int = 64, norm: str = "batch", hidden: int = 1024) -> Classifier:
    """The 13 conv layers of VGG-16 (each 3x3 conv, norm, ReLU; 5 max-pools) as backbone, channel counts scaled by
    width/64; head of 2 hidden layers of `hidden` (1024 in the paper) with ReLU, then the classifier."""
    channels, size = input_shape[0], input_shape[1]
    layers: list[nn.Module] = []
    for item in VGG16:
        if isinstance(item, str):  # "M"
            layers.append(nn.MaxPool2d(2))
            size //= 2
            continue
        out_channels = item * width // 64
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1), norm_layer(norm, out_channels, spatial=True),
                   nn.ReLU()]
        channels = out_channels
    layers.append(nn.Flatten())
    head = nn.Sequential(nn.Linear(channels * size * size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
    return Classifier(nn.Sequential(*layers), head)
