"""Multi-layer perceptron."""

from __future__ import annotations

from torch import nn

from .layers import Classifier, norm_layer


def mlp(input_shape, num_classes: int, width: int = 256, depth: int = 2, norm: str = "batch") -> Classifier:
    """Flatten, then `depth` x (Linear(width), norm, ReLU) as backbone; a Linear head. The MNIST-1D preset's
    MLP 40-256-256-10 with BatchNorm is the default."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = 1
    for size in input_shape:
        features *= size
    for _ in range(depth):
        layers += [nn.Linear(features, width), norm_layer(norm, width, spatial=False), nn.ReLU()]
        features = width
    return Classifier(nn.Sequential(*layers), nn.Linear(width, num_classes))
