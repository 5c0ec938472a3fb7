"""Architectural methods: CReLU activations and LayerNorm in place of BatchNorm (PAPER.md section 4).

They act once, in `prepare_model`, before the optimizer and the other methods see the model. They rewrite
modules in place, so they work on any model built from standard layers, ours or a user's.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from torch import nn

from ..nn import CReLU
from ..tracing import NORMS, PRODUCERS
from .base import Method, register


def _halved(layer: nn.Module) -> nn.Module:
    """A freshly initialised copy of a Linear/Conv/norm layer with half the output features (channels)."""
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features // 2, bias=layer.bias is not None)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return type(layer)(layer.in_channels, layer.out_channels // 2, layer.kernel_size, layer.stride, layer.padding,
                           layer.dilation, layer.groups, layer.bias is not None, layer.padding_mode)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return type(layer)(layer.num_features // 2, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    if isinstance(layer, nn.LayerNorm):
        return nn.LayerNorm(layer.normalized_shape[0] // 2, layer.eps, layer.elementwise_affine)
    return nn.GroupNorm(layer.num_groups, layer.num_channels // 2, layer.eps, layer.affine)


def _width(layer: nn.Module) -> int:
    return getattr(layer, "out_features", None) or getattr(layer, "out_channels", None)


@register
@dataclasses.dataclass(eq=False)
class CReLUMethod(Method):
    """CReLU: ReLUs replaced by concatenated ReLUs, the layer before each one halved to keep the output size.

    Abbas et al., "Loss of Plasticity in Continual Deep Reinforcement Learning", CoLLAs 2023 (arXiv:2303.07507).
    The paper's code uses it in the head only (`scope="head"`, needs a `head` submodule); `scope="all"` rewrites
    every `nn.Sequential` of the model. Within a Sequential, each `Linear/Conv [, norm], ReLU` run becomes
    `Linear/Conv(out/2) [, norm(out/2)], CReLU`: the next layer sees the same number of features. ReLUs outside
    such runs (e.g. after a residual sum) are left as they are.
    """

    name = "crelu"
    scope: Literal["head", "all"] = "head"  # where to replace ReLUs

    def __post_init__(self):
        if self.scope not in ("head", "all"):
            raise ValueError(f"scope must be 'head' or 'all', got {self.scope!r}")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.scope == "head" and not isinstance(getattr(model, "head", None), nn.Module):
            raise ValueError(f"crelu with scope='head' needs a `head` submodule; {type(model).__name__} has none "
                             "(use scope='all', or name the classifier `head`)")
        root = model.head if self.scope == "head" else model
        replaced = sum(self._rewrite(module) for module in root.modules() if isinstance(module, nn.Sequential))
        if replaced == 0:
            raise ValueError(f"crelu found no `Linear/Conv [, norm], ReLU` run inside an nn.Sequential of {type(root).__name__}")
        return model

    @staticmethod
    def _rewrite(sequence: nn.Sequential) -> int:
        """Rewrite the runs of one Sequential in place; returns how many ReLUs became CReLUs."""
        replaced = 0
        for i, module in enumerate(list(sequence)):
            if not isinstance(module, nn.ReLU):
                continue
            norm = i >= 2 and isinstance(sequence[i - 1], NORMS)
            producer_index = i - 2 if norm else i - 1
            if producer_index < 0 or not isinstance(sequence[producer_index], PRODUCERS):
                continue
            producer = sequence[producer_index]
            if _width(producer) % 2:
                raise ValueError(f"crelu halves the layer before each ReLU; {producer} has an odd width")
            sequence[producer_index] = _halved(producer)
            if norm:
                sequence[i - 1] = _halved(sequence[i - 1])
            sequence[i] = CReLU(dim=1 if isinstance(producer, (nn.Conv1d, nn.Conv2d)) else -1)
            replaced += 1
        return replaced


@register
@dataclasses.dataclass(eq=False)
class LayerNormMethod(Method):
    """LayerNorm in place of BatchNorm: no batch statistics to go stale when the data changes.

    Ba, Kiros & Hinton, "Layer Normalization", 2016 (arXiv:1607.06450); named among trainability methods by the
    paper and by Lyle et al. 2023 (arXiv:2303.01486). BatchNorm1d(C) becomes LayerNorm(C); BatchNorm2d(C) becomes
    GroupNorm(1, C), the layer norm of a feature map over (C, H, W) with a per-channel affine.
    """

    name = "layernorm"

    def prepare_model(self, model: nn.Module) -> nn.Module:
        swapped = 0
        for parent in list(model.modules()):
            for child_name, child in parent.named_children():
                if isinstance(child, nn.BatchNorm2d):
                    setattr(parent, child_name, nn.GroupNorm(1, child.num_features, eps=child.eps))
                elif isinstance(child, nn.BatchNorm1d):
                    setattr(parent, child_name, nn.LayerNorm(child.num_features, eps=child.eps))
                else:
                    continue
                swapped += 1
        if swapped == 0:
            raise ValueError(f"layernorm found no BatchNorm layer in {type(model).__name__} to replace")
        return model
