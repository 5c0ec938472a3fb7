"""Layers that plasticity methods put into networks."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InvalidInput


class CReLU(nn.Module):
    """Concatenated ReLU: [relu(x), relu(-x)] along `dim`, so the output has twice the features of the input.

    Shang et al., "Understanding and Improving Convolutional Neural Networks via Concatenated Rectified Linear
    Units", ICML 2016 (arXiv:1603.05201); used against loss of plasticity by Abbas et al. 2023 (arXiv:2303.07507).
    No unit can be dead: for every input one of each pair is active.
    """

    def __init__(self, dim: int = 1):  # the feature dimension: 1 for (N, C) and (N, C, H, W); -1 for tokens
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.cat((x, -x), dim=self.dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def norm_layer(kind: str, features: int, spatial: bool) -> nn.Module:
    """The normalisation of `features` units: 'batch' (BatchNorm), 'layer' (LayerNorm; GroupNorm(1, C) over a
    feature map), or 'none'."""
    if kind == "batch":
        return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.GroupNorm(1, features) if spatial else nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise InvalidInput(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


class Classifier(nn.Module):
    """A network split into `backbone` (inputs to features) and `head` (features to logits)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
