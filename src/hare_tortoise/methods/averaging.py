"""Methods built on a weight average of the trained network: EMA, self-distillation, Hare & Tortoise."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..core import HareTortoise, check_momentum
from ..errors import InvalidInput
from .base import Loop, Method, check_acts, check_one_schedule, register


@register
@dataclasses.dataclass(eq=False)
class EMA(Method):
    """EMA: a Tortoise without resets, tortoise <- m * tortoise + (1 - m) * net after every step; reports the EMA.

    The averaging half of Hare & Tortoise alone (Lee et al., ICML 2024, arXiv:2406.02596); weight averaging after
    Polyak & Juditsky 1992. The trained network never sees the average.
    """

    name = "ema"
    paper = "Lee et al., ICML 2024, arXiv:2406.02596 (its averaging half)"
    counters: ClassVar[tuple[str, ...]] = ("updates",)
    stackable = True
    momentum: float = 0.999  # m

    def __post_init__(self) -> None:
        check_momentum(self.momentum)

    share_storage = False     # set by `check_loop` for loops that own their model

    def check_loop(self, loop: Loop) -> None:
        self.share_storage = loop.owns_model

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.pair = HareTortoise(model, momentum=self.momentum, reset_every=self.steps_between_resets(),
                                 share_storage=self.share_storage)

    def steps_between_resets(self) -> int | None:
        """The pair's own reset interval in steps: EMA never resets the trained network."""
        return None

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        self.pair.update()
        self.counts["updates"] += 1

    def eval_model(self) -> nn.Module:
        return self.pair.tortoise

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pair": self.pair.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pair.load_state_dict(state["pair"])


@register
@dataclasses.dataclass(eq=False)
class SelfDistill(EMA):
    """Self-distillation from the EMA: loss += weight * T^2 * KL(softmax(tortoise(x)/T) || softmax(net(x)/T)).

    The teacher is the EMA network (no resets), run in eval mode without gradients; Hinton et al. 2015
    (arXiv:1503.02531) for the T^2 scale, which is 1 at the paper's T = 1. Reports the trained (student)
    network; the EMA teacher is only a teacher. The loss is zero while both networks agree.

    In RL the outputs are Q-values, not class logits, and a softmax over them means nothing: there the term is a
    regression of the online Q-values onto the teacher's, loss += weight * mean((Q(x) - Q_teacher(x))^2) over the
    batch and the actions (our form; the paper names self-distillation for classification only).
    """

    name = "self_distill"
    paper = "Hinton et al. 2015, arXiv:1503.02531; a baseline of Lee et al., ICML 2024"
    weight: float = 1.0       # weight of the distillation term
    temperature: float = 1.0  # T (classification only)
    outputs = "class_logits"  # what the model outputs, as the loop says in `check_loop`

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0 or not self.weight > 0:
            raise InvalidInput(f"weight and temperature must be > 0, got {self.weight!r} and {self.temperature!r}")

    def check_loop(self, loop: Loop) -> None:
        super().check_loop(loop)
        self.outputs = loop.outputs

    def loss_terms(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            teacher = self.pair.tortoise(inputs)
        if self.outputs == "q_values":
            return {"self_distill": self.weight * F.mse_loss(outputs.float(), teacher.float())}
        t = self.temperature
        kl = F.kl_div(F.log_softmax(outputs.float() / t, dim=-1), F.log_softmax(teacher.float() / t, dim=-1),
                      reduction="batchmean", log_target=True)
        return {"self_distill": self.weight * t * t * kl}

    def eval_model(self) -> nn.Module:
        return self.model


@register
@dataclasses.dataclass(eq=False)
class HareTortoiseMethod(EMA):
    """Hare & Tortoise: the EMA Tortoise is reported, and the Hare is reset to the Tortoise periodically.

    Lee et al., "Slow and Steady Wins the Race: Maintaining Plasticity with Hare and Tortoise Networks",
    ICML 2024 (arXiv:2406.02596): m = 0.999, a reset every 10 epochs, the AdamW moments kept at resets, the
    Tortoise never reset. Epoch counts restart with every phase. `first_reset="after_first_epoch"` resets after
    epoch indices 0, k, 2k, ... of each phase, as the paper's public code does; "after_k_epochs" resets after
    epochs k-1, 2k-1, .... Set `reset_every_steps` instead to count optimizer steps (across phases).
    """

    name = "hare_tortoise"
    paper = "Lee et al., ICML 2024, arXiv:2406.02596"
    counters = ("updates", "resets")
    stackable = True
    exclusive_settings = (("reset_every_epochs", "reset_every_steps"),)  # setting one alone unsets the other
    reset_every_epochs: int | None = 10   # k; None when resetting by steps
    reset_every_steps: int | None = None  # reset after every this many optimizer steps instead of by epochs
    first_reset: Literal["after_first_epoch", "after_k_epochs"] = "after_first_epoch"  # see above

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_schedule(self, "reset_every_epochs", "reset_every_steps")
        if self.first_reset not in ("after_first_epoch", "after_k_epochs"):
            raise InvalidInput(f"first_reset must be 'after_first_epoch' or 'after_k_epochs', got {self.first_reset!r}")

    def check_loop(self, loop: Loop) -> None:
        super().check_loop(loop)
        first = 0 if self.first_reset == "after_first_epoch" else None
        check_acts(self, loop, self.reset_every_steps, self.reset_every_epochs, first, setting="reset_every_steps")

    def steps_between_resets(self) -> int | None:
        return self.reset_every_steps

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        self.counts["resets"] += self.pair.step()  # resets by itself only when counting steps
        self.counts["updates"] += 1

    def on_epoch_end(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if self.reset_every_epochs is None:
            return
        offset = 0 if self.first_reset == "after_first_epoch" else 1
        if (epoch + offset) % self.reset_every_epochs == 0:
            self.pair.reset_hare()
            self.counts["resets"] += 1
