"""Several seeds' networks as one: each parameter holds one slice per seed, and one forward, backward and optimizer
step serves every seed (the stacked-seeds mode of the RL agents).

A stacked group pays the per-operation cost of the optimizer, of the Tortoise's update and of the loss once for all
its seeds. Each seed's slice computes what that seed's own network would, bit for bit, and an optimizer or a
method that treats every parameter elementwise (RMSprop, Adam, the Tortoise's EMA, a reset of the Hare to it) does
to each slice what it would do to the seed's own parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInput


class StackedNetwork(nn.Module):
    """The networks `networks` (one architecture, one per seed) as one module whose parameter `name` is
    `torch.stack([net.name for net in networks])`; it maps inputs (seeds, batch, ...) to (seeds, batch, ...).

    Its linear and convolutional layers apply seed k's slice to the k-th part of the batch; every other module must
    act on each sample alone (activations, flattening, padding, a dueling head's mean over actions), and a module
    with parameters of another kind is refused."""

    def __init__(self, networks: Sequence[nn.Module]):
        super().__init__()
        if len(networks) < 2:
            raise InvalidInput(f"a stacked network needs two or more networks, got {len(networks)}")
        first = networks[0]
        if any(True for _ in first.buffers()):
            raise InvalidInput(f"{type(first).__name__} has buffers (e.g. BatchNorm statistics), which a stacked "
                               "group cannot share: use a network without buffers, or run the seeds one by one")
        self.seeds = len(networks)
        self._template = [copy.deepcopy(first)]  # in a list: not a submodule, so not in the state_dict
        self.inner = copy.deepcopy(first)
        parameters = [dict(net.named_parameters()) for net in networks]
        for name, module in list(self.inner.named_modules()):
            if not any(True for _ in module.parameters(recurse=False)):
                continue
            if type(module) not in SEED_LAYERS:
                raise InvalidInput(f"{type(module).__name__} ({name or 'the network'}) has parameters of its own, and "
                                   f"a stacked network stacks only {', '.join(t.__name__ for t in SEED_LAYERS)} "
                                   "layers: run the seeds one by one")
            stacked = {leaf: torch.stack([own[f"{name}.{leaf}" if name else leaf].detach() for own in parameters])
                       for leaf, _ in module.named_parameters(recurse=False)}
            self.inner.set_submodule(name, SeedLayer(module, stacked, self.seeds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.seeds:
            raise InvalidInput(f"a stacked network of {self.seeds} seeds takes inputs (seeds, batch, ...), got a first "
                               f"dimension of {x.shape[0]}")
        return self.inner(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def seed_network(self, k: int) -> nn.Module:
        """Seed k's network as an ordinary module: a copy of the architecture holding slice k of every parameter."""
        network = copy.deepcopy(self._template[0])
        with torch.no_grad():
            for mine, stacked in zip(network.parameters(), self.inner.parameters(), strict=True):
                mine.copy_(stacked[k])
        return network


class SeedLayer(nn.Module):
    """A linear or 2-D convolutional layer of a stacked network: seed k's slice of `weight` and `bias` maps the k-th
    part of the batch, with the layer's own stride, padding, dilation and groups."""

    def __init__(self, layer: nn.Module, stacked: dict[str, torch.Tensor], seeds: int):
        super().__init__()
        self.function: Callable[..., torch.Tensor] = F.linear
        self.options: tuple = ()
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                raise InvalidInput("a stacked network's convolutions take zero padding given in pixels, not "
                                   f"padding={layer.padding!r} with padding_mode={layer.padding_mode!r}")
            self.function, self.options = F.conv2d, (layer.stride, layer.padding, layer.dilation, layer.groups)
        self.seeds = seeds
        self.weight = nn.Parameter(stacked["weight"])
        self.bias = nn.Parameter(stacked["bias"]) if "bias" in stacked else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.unflatten(0, (self.seeds, -1))
        return torch.cat([self.function(parts[k], self.weight[k], None if self.bias is None else self.bias[k],
                                        *self.options) for k in range(self.seeds)])


SEED_LAYERS = (nn.Linear, nn.Conv2d)  # the layers a stack can hold


def q_values(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`network`'s outputs for inputs (seeds, batch, ...): a stacked network's own, or an ordinary network's (one
    seed) on the batch."""
    if isinstance(network, StackedNetwork):
        return network(x)
    return network(x.flatten(0, 1)).unflatten(0, x.shape[:2])
