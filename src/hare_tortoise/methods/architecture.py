"""Architectural methods: CReLU activations and LayerNorm in place of BatchNorm (baselines of the paper,
docs/METHODS.md).

They act once, in `prepare_model`, before the optimizer and the other methods see the model. They rewrite
modules in place, so they work on any model built from standard layers, ours or a user's.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from torch import nn

from ..errors import InvalidInput
from ..nn.surgery import use_crelu
from .base import Method, register


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
    paper = "Abbas et al., CoLLAs 2023, arXiv:2303.07507"
    counters = ("replaced_activations",)
    scope: Literal["head", "all"] = "head"  # where to replace ReLUs

    def __post_init__(self) -> None:
        if self.scope not in ("head", "all"):
            raise InvalidInput(f"scope must be 'head' or 'all', got {self.scope!r}")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.scope == "head" and not isinstance(getattr(model, "head", None), nn.Module):
            raise InvalidInput(f"crelu with scope='head' needs a `head` submodule; {type(model).__name__} has none "
                             "(use scope='all', or name the classifier `head`)")
        root = model.get_submodule("head") if self.scope == "head" else model
        self.counts["replaced_activations"] = use_crelu(root)
        if self.counts["replaced_activations"] == 0:
            raise InvalidInput("crelu found no `Linear/Conv [, norm], ReLU` run inside an nn.Sequential of "
                               f"{type(root).__name__}")
        return model


@register
@dataclasses.dataclass(eq=False)
class LayerNormMethod(Method):
    """LayerNorm in place of BatchNorm: no batch statistics to go stale when the data changes.

    Ba, Kiros & Hinton, "Layer Normalization", 2016 (arXiv:1607.06450); named among trainability methods by the
    paper and by Lyle et al. 2023 (arXiv:2303.01486). BatchNorm1d(C) becomes LayerNorm(C); BatchNorm2d(C) becomes
    GroupNorm(1, C), the layer norm of a feature map over (C, H, W) with a per-channel affine.
    """

    name = "layernorm"
    paper = "Ba, Kiros & Hinton 2016, arXiv:1607.06450"
    counters = ("replaced_norms",)

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
        self.counts["replaced_norms"] = swapped
        if swapped == 0:
            raise InvalidInput(f"layernorm found no BatchNorm layer in {type(model).__name__} to replace")
        return model
