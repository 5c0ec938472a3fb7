"""Several seeds' networks as one: each parameter holds one slice per seed, and one forward, backward and optimizer
step serves every seed (the stacked-seeds mode of the RL agents).

On this machine a MinAtar DQN update is a few milliseconds, much of it per-operation cost of small tensors; a
stacked group pays it once for all its seeds. Each seed's slice computes what that seed's own network would
(`torch.func.vmap` of the network over its stacked parameters), to float tolerance, and an optimizer or a method
that treats every parameter elementwise (RMSprop, Adam, the Tortoise's EMA, a reset of the Hare to it) does to each
slice what it would do to the seed's own parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..errors import InvalidInput


class StackedNetwork(nn.Module):
    """The networks `networks` (one architecture, one per seed) as one module whose parameter `name` is
    `torch.stack([net.name for net in networks])`; it maps inputs (seeds, batch, ...) to (seeds, batch, ...)."""

    def __init__(self, networks: Sequence[nn.Module]):
        super().__init__()
        if len(networks) < 2:
            raise InvalidInput(f"a stacked network needs two or more networks, got {len(networks)}")
        first = networks[0]
        if any(True for _ in first.buffers()):
            raise InvalidInput(f"{type(first).__name__} has buffers (e.g. BatchNorm statistics), which a stacked "
                               "group cannot share: use a network without buffers, or run the seeds one by one")
        self.seeds = len(networks)
        parameters = [dict(net.named_parameters()) for net in networks]
        self.inner = _replaced(first, {name: torch.stack([own[name].detach() for own in parameters])
                                       for name in parameters[0]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.seeds:
            raise InvalidInput(f"a stacked network of {self.seeds} seeds takes inputs (seeds, batch, ...), got a first "
                               f"dimension of {x.shape[0]}")
        params = dict(self.inner.named_parameters())
        return vmap(lambda p, inputs: functional_call(self.inner, p, (inputs,)))(params, x)

    def seed_network(self, k: int) -> nn.Module:
        """Seed k's network as an ordinary module: a copy of the architecture holding slice k of every parameter."""
        return _replaced(self.inner, {name: param.detach()[k].clone() for name, param in self.inner.named_parameters()})


def _replaced(model: nn.Module, values: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` whose parameter `name` is a new parameter holding `values[name]` (any shape)."""
    model = copy.deepcopy(model)
    for name, value in values.items():
        module_name, _, leaf = name.rpartition(".")
        module = model.get_submodule(module_name)
        delattr(module, leaf)
        module.register_parameter(leaf, nn.Parameter(value))
    return model


def q_values(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`network`'s outputs for inputs (seeds, batch, ...): a stacked network's own, or an ordinary network's (one
    seed) on the batch."""
    if isinstance(network, StackedNetwork):
        return network(x)
    return network(x.flatten(0, 1)).unflatten(0, x.shape[:2])
