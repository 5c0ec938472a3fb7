"""Interventions between phases: Shrink & Perturb (two variants), head reset and full reset (PAPER.md section 4).

Each acts once at every phase boundary, i.e. at the start of every phase after the first, after the previous
phase's final evaluation. Never after the last phase: the trained network is what gets reported.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..tensors import reinitialize, snapshot, unwrap
from .base import Method, register


class BetweenPhases(Method):
    """A method that intervenes on the weights at every phase boundary (phases 1, 2, ...)."""

    def on_phase_start(self, phase: int, optimizer: torch.optim.Optimizer) -> None:
        if phase > 0:
            self.intervene(optimizer)

    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        raise NotImplementedError


class FromInitialWeights(BetweenPhases):
    """Remembers the network's initial weights (at `attach`) and checkpoints them."""

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.initial = snapshot(model)

    def state_dict(self) -> dict:
        return {"initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        for name, tensor in state["initial"].items():
            self.initial[name].copy_(tensor)


def forget_optimizer_state(optimizer: torch.optim.Optimizer, params) -> None:
    """Drop the optimizer's state (AdamW moments and step) of `params`: it starts afresh for them."""
    for param in params:
        optimizer.state.pop(param, None)


@register
@dataclasses.dataclass(eq=False)
class ShrinkPerturb(FromInitialWeights):
    """Shrink & Perturb toward the initial weights: theta <- (1 - alpha) * theta + alpha * theta_init.

    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv:1910.08475), in the form the
    paper uses: theta_init are the network's own original initial weights, alpha = 0.8. Parameters only; buffers
    (BatchNorm statistics) re-adapt during training. The optimizer state is kept.
    """

    name = "shrink_perturb"
    alpha: float = 0.8  # weight of the initial weights in the interpolation

    def __post_init__(self):
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1] (the paper uses 0.8), got {self.alpha!r}")

    @torch.no_grad()
    def intervene(self, optimizer) -> None:
        names, params = zip(*unwrap(self.model).named_parameters())
        torch._foreach_lerp_(list(params), [self.initial[n] for n in names], self.alpha)


@register
@dataclasses.dataclass(eq=False)
class ShrinkPerturbNoise(BetweenPhases):
    """Shrink & Perturb with Gaussian noise: theta <- shrink * theta + N(0, noise_std^2), elementwise.

    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv:1910.08475), original form.
    The defaults are ours (the paper uses the form toward the initial weights); sweep both settings.
    """

    name = "shrink_perturb_noise"
    shrink: float = 0.4       # factor applied to the weights
    noise_std: float = 0.01   # standard deviation of the added noise

    def __post_init__(self):
        if not 0.0 <= self.shrink <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], got {self.shrink!r}")
        if not self.noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")

    @torch.no_grad()
    def intervene(self, optimizer) -> None:
        for param in unwrap(self.model).parameters():
            param.mul_(self.shrink).add_(torch.randn_like(param), alpha=self.noise_std)


@register
@dataclasses.dataclass(eq=False)
class HeadReset(FromInitialWeights):
    """Head reset: the head's parameters and buffers go back exactly to their initial values.

    Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv:2205.07802). The head is
    the submodule named `head`; its optimizer state is dropped, so it starts afresh as at initialisation.
    """

    name = "head_reset"
    head: str = "head"  # name of the head submodule (as in `model.get_submodule`)

    def attach(self, model: nn.Module) -> None:
        try:
            unwrap(model).get_submodule(self.head)
        except AttributeError:
            raise ValueError(f"head_reset needs a submodule named {self.head!r} in {type(unwrap(model)).__name__}; "
                             "pass head=<name of your classifier submodule>") from None
        super().attach(model)

    @torch.no_grad()
    def intervene(self, optimizer) -> None:
        head = unwrap(self.model).get_submodule(self.head)
        prefix = f"{self.head}."
        head.load_state_dict({k[len(prefix):]: v for k, v in self.initial.items() if k.startswith(prefix)})
        forget_optimizer_state(optimizer, head.parameters())


@register
@dataclasses.dataclass(eq=False)
class FullReset(BetweenPhases):
    """Full reset: the whole network re-initialised with fresh random weights, i.e. a cold start every phase.

    The reference point of the warm-starting literature (Ash & Adams 2020). Uses the model's own
    `reset_parameters()` if it has one, else each layer's; the optimizer state is dropped.
    """

    name = "full_reset"

    def intervene(self, optimizer) -> None:
        reinitialize(self.model)
        forget_optimizer_state(optimizer, unwrap(self.model).parameters())
