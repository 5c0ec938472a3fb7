"""Normalize-and-Project: a norm layer before every nonlinearity, every weight matrix kept at its initial norm
(Lyle et al. 2024)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import InvalidInput
from ..tensors import unwrap
from ..tracing import ACTIVATIONS, NORMS, PRODUCERS
from .base import Method, register


def insert_norms(root: nn.Module) -> int:
    """In every nn.Sequential under `root`, put a norm layer between each Linear/Conv and the activation right after
    it where there is none: LayerNorm after a Linear, GroupNorm(1, C) (the layer norm of a feature map) after a
    convolution. Returns how many were put in."""
    inserted = 0
    for sequence in [m for m in root.modules() if isinstance(m, nn.Sequential)]:
        layers = list(sequence)
        rebuilt = []
        for i, layer in enumerate(layers):
            rebuilt.append(layer)
            following = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, PRODUCERS) and isinstance(following, ACTIVATIONS):
                rebuilt.append(nn.LayerNorm(layer.out_features) if isinstance(layer, nn.Linear)
                               else nn.GroupNorm(1, layer.out_channels))
                inserted += 1
        if len(rebuilt) != len(layers):
            for name in list(sequence._modules):
                del sequence._modules[name]
            for index, layer in enumerate(rebuilt):
                sequence.add_module(str(index), layer)
    return inserted


@register
@dataclasses.dataclass(eq=False)
class NormalizeProject(Method):
    """Normalize-and-Project (NaP): normalisation before every nonlinearity, and after every optimizer step each
    weight matrix (Linear and convolution weights) rescaled to the norm it had at the start, and each norm layer's
    scale and offset, taken together as one vector, rescaled to theirs.

    Lyle, Zheng, Khetarpal, van Hasselt, Pascanu, Martens & Dabney, "Normalization and effective learning rates in
    reinforcement learning", 2024 (arXiv:2407.01800): with the weights' norms fixed, the normalisation makes the
    network's function independent of their scale, so the effective learning rate no longer decays as the weights
    grow. Layers that already have a norm before their activation (the presets' BatchNorm) keep it; a LayerNorm
    (GroupNorm(1, C) after a convolution) goes in where there is none. Biases of Linear and convolution layers are
    left free.
    """

    name = "normalize_project"
    paper = "Lyle et al. 2024, arXiv:2407.01800"
    counters = ("projections", "inserted_norms")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        self.counts["inserted_norms"] = insert_norms(unwrap(model))
        return model

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        root = unwrap(model)
        self.weights: list[torch.Tensor] = [m.weight for m in root.modules() if isinstance(m, PRODUCERS)]
        self.norms: list[list[torch.Tensor]] = [[m.weight, m.bias] for m in root.modules()
                      if isinstance(m, NORMS) and getattr(m, "weight", None) is not None and m.bias is not None]
        if not self.weights:
            raise InvalidInput(f"normalize_project found no Linear or convolution layer in {type(root).__name__}")
        with torch.no_grad():
            self.weight_norms = torch.stack(torch._foreach_norm(self.weights))
            self.norm_norms = torch.stack([self._joint(pair) for pair in self.norms]) if self.norms else None

    @staticmethod
    def _joint(pair: list[torch.Tensor]) -> torch.Tensor:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(pair)))

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        scales = self.weight_norms / torch.stack(torch._foreach_norm(self.weights)).clamp_min(1e-12)
        for weight, scale in zip(self.weights, scales):
            weight.mul_(scale)
        if self.norm_norms is not None:
            for pair, target in zip(self.norms, self.norm_norms):
                torch._foreach_mul_(pair, target / self._joint(pair).clamp_min(1e-12))
        self.counts["projections"] += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "weight_norms": self.weight_norms, "norm_norms": self.norm_norms}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.weight_norms.copy_(state["weight_norms"])
        if self.norm_norms is not None:
            self.norm_norms.copy_(state["norm_norms"])
