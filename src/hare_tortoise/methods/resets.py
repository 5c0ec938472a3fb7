"""Interventions on the weights: Shrink & Perturb (two variants), head reset, full reset (the paper's baselines,
docs/METHODS.md), and the RL reset of Nikishin et al.

Each acts once at every phase boundary, i.e. at the start of every phase after the first, after the previous
phase's final evaluation (never after the last phase: the trained network is what gets reported); or, with
`every_steps`, after every that many optimizer steps, the form RL agents use (Nikishin et al. 2022; BBF). A loop of
one phase (cold start, Atari-100k) has no boundary: there the method is refused unless `every_steps` is set.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from ..errors import InvalidInput
from ..tensors import reinitialize, snapshot, unwrap
from .base import Loop, Method, MethodRefused, check_acts, register


@dataclasses.dataclass(eq=False)
class BetweenPhases(Method):
    """A method that intervenes on the weights at every phase boundary (phases 1, 2, ...), or every N steps."""

    every_steps: int | None = None  # intervene after every this many optimizer steps instead of between phases

    def __post_init__(self) -> None:
        if self.every_steps is not None and (isinstance(self.every_steps, bool) or not isinstance(self.every_steps, int)
                                             or self.every_steps < 1):
            raise InvalidInput(f"every_steps must be an integer >= 1 or None, got {self.every_steps!r}")

    def check_loop(self, loop: Loop) -> None:
        if self.every_steps is None and len(loop.phase_epochs) < 2:
            raise MethodRefused(f"{self.name} acts between phases; {loop.phases_text()}: set method.every_steps=N "
                                f"(N <= {loop.steps}) to act every N optimizer steps")
        check_acts(self, loop, self.every_steps)

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.steps = 0

    def on_phase_start(self, phase: int, optimizer: torch.optim.Optimizer) -> None:
        if phase > 0 and self.every_steps is None:
            self.intervene(optimizer)

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        self.steps += 1
        if self.every_steps is not None and self.steps % self.every_steps == 0:
            self.intervene(optimizer)

    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        """Act on the weights once; subclasses count what they did."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps = int(state["steps"])


class FromInitialWeights(BetweenPhases):
    """Remembers the network's initial weights (at `attach`) and checkpoints them."""

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.initial = snapshot(model)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for name, tensor in state["initial"].items():
            self.initial[name].copy_(tensor)


def forget_optimizer_state(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> None:
    """Drop the optimizer's state (AdamW moments and step) of `params`: it starts afresh for them."""
    for param in params:
        optimizer.state.pop(param, None)


@register
@dataclasses.dataclass(eq=False)
class ShrinkPerturb(FromInitialWeights):
    """Shrink & Perturb toward the initial weights: theta <- (1 - alpha) * theta + alpha * theta_init.

    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv:1910.08475), in the form the
    paper uses: theta_init are the network's own original initial weights, alpha = 0.8. Parameters only; buffers
    (BatchNorm statistics) re-adapt during training. The optimizer state is kept. `toward="fresh"` interpolates
    toward a freshly drawn initialisation instead, as BBF does every 20k steps with alpha = 0.5 (Schwarzer et al.
    2023, arXiv:2305.19452).
    """

    name = "shrink_perturb"
    paper = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475"
    counters = ("perturbations",)
    alpha: float = 0.8  # weight of the initial weights in the interpolation
    toward: Literal["initial", "fresh"] = "initial"  # shrink toward the initial weights or a fresh draw

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.alpha <= 1.0:
            raise InvalidInput(f"alpha must be in (0, 1] (the paper uses 0.8), got {self.alpha!r}")
        if self.toward not in ("initial", "fresh"):
            raise InvalidInput(f"toward must be 'initial' or 'fresh', got {self.toward!r}")

    @torch.no_grad()
    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        names, params = zip(*unwrap(self.model).named_parameters())
        if self.toward == "initial":
            targets = [self.initial[n] for n in names]
        else:
            fresh = copy.deepcopy(unwrap(self.model))
            reinitialize(fresh)
            targets = [p.detach() for p in fresh.parameters()]
        torch._foreach_lerp_(list(params), targets, self.alpha)
        self.counts["perturbations"] += 1


@register
@dataclasses.dataclass(eq=False)
class ShrinkPerturbNoise(BetweenPhases):
    """Shrink & Perturb with Gaussian noise: theta <- shrink * theta + N(0, noise_std^2), elementwise.

    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv:1910.08475), original form.
    The defaults are ours (the paper uses the form toward the initial weights); sweep both settings.
    """

    name = "shrink_perturb_noise"
    paper = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475"
    counters = ("perturbations",)
    shrink: float = 0.4       # factor applied to the weights
    noise_std: float = 0.01   # standard deviation of the added noise

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.shrink <= 1.0:
            raise InvalidInput(f"shrink must be in [0, 1], got {self.shrink!r}")
        if not self.noise_std >= 0.0:
            raise InvalidInput(f"noise_std must be >= 0, got {self.noise_std!r}")

    @torch.no_grad()
    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        for param in unwrap(self.model).parameters():
            param.mul_(self.shrink).add_(torch.randn_like(param), alpha=self.noise_std)
        self.counts["perturbations"] += 1


@register
@dataclasses.dataclass(eq=False)
class HeadReset(FromInitialWeights):
    """Head reset: the head's parameters and buffers go back exactly to their initial values.

    Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv:2205.07802). The head is
    the submodule named `head`; its optimizer state is dropped, so it starts afresh as at initialisation.
    `fresh=True` draws new weights instead of restoring the initial ones.
    """

    name = "head_reset"
    paper = "Nikishin et al., ICML 2022, arXiv:2205.07802"
    counters = ("resets",)
    head: str = "head"  # name of the head submodule (as in `model.get_submodule`)
    fresh: bool = False  # a new random initialisation instead of the initial weights

    def attach(self, model: nn.Module) -> None:
        try:
            unwrap(model).get_submodule(self.head)
        except AttributeError:
            raise InvalidInput(f"head_reset needs a submodule named {self.head!r} in {type(unwrap(model)).__name__}; "
                             "pass head=<name of your classifier submodule>") from None
        super().attach(model)

    @torch.no_grad()
    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        head = unwrap(self.model).get_submodule(self.head)
        if self.fresh:
            reinitialize(head)
        else:
            prefix = f"{self.head}."
            head.load_state_dict({k[len(prefix):]: v for k, v in self.initial.items() if k.startswith(prefix)})
        forget_optimizer_state(optimizer, head.parameters())
        self.counts["resets"] += 1


@register
@dataclasses.dataclass(eq=False)
class Reset(HeadReset):
    """Reset (RL): the head re-initialised with fresh weights every `every_steps` updates, optimizer state dropped.

    Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv:2205.07802); every 20,000
    updates as SPR with resets (D'Oro et al. 2023; docs/RL.md).
    """

    name = "reset"
    paper = "Nikishin et al., ICML 2022, arXiv:2205.07802"
    every_steps: int | None = 20_000
    fresh: bool = True


@register
@dataclasses.dataclass(eq=False)
class FullReset(BetweenPhases):
    """Full reset: the whole network re-initialised with fresh random weights, i.e. a cold start every phase.

    The reference point of the warm-starting literature (Ash & Adams 2020). Uses the model's own
    `reset_parameters()` if it has one, else each layer's; the optimizer state is dropped.
    """

    name = "full_reset"
    paper = "Ash & Adams, NeurIPS 2020 (the cold-start reference)"
    counters = ("resets",)

    def intervene(self, optimizer: torch.optim.Optimizer) -> None:
        reinitialize(self.model)
        forget_optimizer_state(optimizer, unwrap(self.model).parameters())
        self.counts["resets"] += 1
