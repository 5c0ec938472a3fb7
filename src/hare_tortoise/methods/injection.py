"""Plasticity Injection: a fresh head is added beside the frozen old one, the output unchanged (Nikishin et al.,
NeurIPS 2023)."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from ..errors import InvalidInput
from ..tensors import reinitialize, unwrap
from .base import Loop, Method, MethodRefused, check_acts, check_one_schedule, register
from .resets import forget_optimizer_state


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` whose parameters are buffers (no optimizer, no gradient, no weight decay reaches them)
    and whose BatchNorm layers keep their running statistics (momentum 0) while still normalising a training batch
    with its own statistics, as the module does."""
    frozen = copy.deepcopy(module)
    for layer in frozen.modules():
        for name, param in list(layer.named_parameters(recurse=False)):
            delattr(layer, name)
            layer.register_buffer(name, param.detach())
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.momentum = 0.0
    return frozen


class InjectedHead(nn.Module):
    """The head `live`, and after an injection h_old(x) + (live(x) - h_fresh(x)), with h_old (the head as it was)
    and h_fresh (the fresh head as it was drawn) frozen. Both frozen heads exist from the start, so the model's
    tensors do not change layout when the injection happens (checkpoints and optimizers keep working)."""

    injected: torch.Tensor  # a bool buffer: saved with the model, so a resumed run knows

    def __init__(self, head: nn.Module):
        super().__init__()
        self.live = head
        self.old = frozen_copy(head)
        self.fresh = frozen_copy(head)
        self.register_buffer("injected", torch.zeros((), dtype=torch.bool))
        self._injected = False  # a Python copy of the buffer: no device sync per forward
        self.register_load_state_dict_post_hook(lambda module, keys: module._sync())

    def _sync(self) -> None:
        self._injected = bool(self.injected)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self._injected:
            return self.live(features)
        # (live - fresh) first: it is exactly 0 at the injection, so the output is exactly the old head's there
        return self.old(features) + (self.live(features) - self.fresh(features))

    @torch.no_grad()
    def inject(self) -> None:
        """Freeze the live head as `old`, draw fresh weights for it, and freeze a copy of those as `fresh`."""
        self.old.load_state_dict(self.live.state_dict())
        reinitialize(self.live)
        self.fresh.load_state_dict(self.live.state_dict())
        self.injected.fill_(True)
        self._sync()


@register
@dataclasses.dataclass(eq=False)
class PlasticityInjection(Method):
    """Plasticity Injection: once, freeze the head h and add a fresh head h' minus a frozen copy h'_0 of it, so
    that the output h(x) + h'(x) - h'_0(x) is unchanged at that moment while the gradient flows into fresh weights.

    Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto, "Deep Reinforcement Learning with Plasticity
    Injection", NeurIPS 2023 (arXiv:2305.15555). The head is the submodule named `head`. The injection happens at
    the start of phase `at_phase` (default the second: a warm start's full data, a continual run's second chunk),
    or after `at_step` optimizer steps (RL runs have one phase). The fresh head's optimizer state starts afresh.
    Unlike the authors' one-off setting, a frozen head with BatchNorm normalises a training batch with its own
    statistics and keeps its running ones.
    """

    name = "plasticity_injection"
    paper = "Nikishin et al., NeurIPS 2023, arXiv:2305.15555"
    counters = ("injections",)
    exclusive_settings = (("at_phase", "at_step"),)  # setting one alone unsets the other
    at_phase: int | None = 1   # inject at the start of this phase (0 is the first)
    at_step: int | None = None  # or after this many optimizer steps
    head: str = "head"          # name of the head submodule (as in `model.get_submodule`)

    def __post_init__(self) -> None:
        check_one_schedule(self, "at_phase", "at_step")

    def check_loop(self, loop: Loop) -> None:
        if self.at_phase is not None and self.at_phase >= len(loop.phase_epochs):
            raise MethodRefused(f"plasticity_injection injects at the start of phase {self.at_phase}, but "
                                f"{loop.phases_text()}: set method.at_phase below {len(loop.phase_epochs)}, or "
                                f"method.at_step=N (N <= {loop.steps}) to inject after N optimizer steps")
        check_acts(self, loop, self.at_step, setting="at_step")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        root = unwrap(model)
        try:
            head = root.get_submodule(self.head)
        except AttributeError:
            raise InvalidInput(f"plasticity_injection needs a submodule named {self.head!r} in "
                               f"{type(root).__name__}; pass head=<name of your classifier submodule>") from None
        parent, _, leaf = self.head.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, leaf, InjectedHead(head))
        return model

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.steps = 0
        head = unwrap(model).get_submodule(self.head)
        if not isinstance(head, InjectedHead):
            raise InvalidInput("plasticity_injection acts on the model its prepare_model returned: call "
                               "model = method.prepare_model(model) before attach")
        self.injected_head = head

    def on_phase_start(self, phase: int, optimizer: torch.optim.Optimizer) -> None:
        if phase == self.at_phase:
            self.inject(optimizer)

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        self.steps += 1
        if self.steps == self.at_step:
            self.inject(optimizer)

    def inject(self, optimizer: torch.optim.Optimizer) -> None:
        """Inject now: freeze the head, add the fresh one (see the class docstring)."""
        self.injected_head.inject()
        forget_optimizer_state(optimizer, self.injected_head.live.parameters())
        self.counts["injections"] += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps = int(state["steps"])
