"""Rewrite ReLUs of a built network into CReLUs without changing what the next layer receives."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import InvalidInput
from ..tracing import NORMS, PRODUCERS
from .layers import CReLU


def _halved(layer: nn.Module) -> nn.Module:
    """A freshly initialised copy of a Linear/Conv/norm layer with half the output features (channels)."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features // 2, bias=layer.bias is not None)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        # by name: torch's annotations give the sizes one length per class, the layer's attributes any length
        shape: dict[str, Any] = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding,
                                 "dilation": layer.dilation}
        return type(layer)(layer.in_channels, layer.out_channels // 2, **shape, groups=layer.groups,
                           bias=layer.bias is not None, padding_mode=layer.padding_mode)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return type(layer)(layer.num_features // 2, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    if isinstance(layer, nn.LayerNorm):
        return nn.LayerNorm(layer.normalized_shape[0] // 2, layer.eps, layer.elementwise_affine)
    if isinstance(layer, nn.GroupNorm):
        return nn.GroupNorm(layer.num_groups, layer.num_channels // 2, layer.eps, layer.affine)
    raise InvalidInput(f"crelu cannot halve {type(layer).__name__}: only Linear, Conv and norm layers")


def _width(layer: nn.Module) -> int:
    """Output features of a Linear, output channels of a Conv."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return layer.out_channels
    raise InvalidInput(f"crelu halves Linear and Conv layers, not {type(layer).__name__}")


def use_crelu(root: nn.Module) -> int:
    """In every nn.Sequential under `root`, turn each `Linear/Conv [, norm], ReLU` run into
    `Linear/Conv(out/2) [, norm(out/2)], CReLU`, so the next layer sees as many features as before.

    ReLUs outside such runs (after a residual sum, say) stay. Returns how many ReLUs became CReLUs.
    """
    replaced = 0
    for sequence in [m for m in root.modules() if isinstance(m, nn.Sequential)]:
        for i, module in enumerate(list(sequence)):
            if not isinstance(module, nn.ReLU):
                continue
            norm = i >= 2 and isinstance(sequence[i - 1], NORMS)
            producer_index = i - 2 if norm else i - 1
            if producer_index < 0 or not isinstance(sequence[producer_index], PRODUCERS):
                continue
            producer = sequence[producer_index]
            if _width(producer) % 2:
                raise InvalidInput(f"crelu halves the layer before each ReLU; {producer} has an odd width")
            sequence[producer_index] = _halved(producer)
            if norm:
                sequence[i - 1] = _halved(sequence[i - 1])
            sequence[i] = CReLU(dim=1 if isinstance(producer, (nn.Conv1d, nn.Conv2d)) else -1)
            replaced += 1
    return replaced
