"""A small convolutional network for 28x28 / 32x32 images."""

from __future__ import annotations

from torch import nn

from .layers import Classifier, norm_layer


def cnn(input_shape, num_classes: int, width: int = 16, norm: str = "batch") -> Classifier:
    """conv(w)-conv(w)-pool-conv(2w)-conv(2w)-pool (3x3 convs, each with norm and ReLU) as backbone; head
    fc(8w)-norm-ReLU-fc(classes). width 16 is the Fashion-MNIST preset's conv16-16-pool-32-32-pool-fc128."""
    channels, height, breadth = input_shape
    layers: list[nn.Module] = []
    for out_channels in (width, width, None, 2 * width, 2 * width, None):
        if out_channels is None:
            layers.append(nn.MaxPool2d(2))
            height, breadth = height // 2, breadth // 2
            continue
        layers += [nn.Conv2d(channels, out_channels, 3, padding=1), norm_layer(norm, out_channels, spatial=True),
                   nn.ReLU()]
        channels = out_channels
    layers.append(nn.Flatten())
    hidden = 8 * width
    head = nn.Sequential(nn.Linear(channels * height * breadth, hidden), norm_layer(norm, hidden, spatial=False),
                         nn.ReLU(), nn.Linear(hidden, num_classes))
    return Classifier(nn.Sequential(*layers), head)
