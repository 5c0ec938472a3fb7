"""Regularizers that aim at trainability: L2, L2-Init and the spectral penalty (baselines of the paper,
docs/METHODS.md)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import InvalidInput
from ..tensors import unwrap
from .base import Method, register


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise InvalidInput(f"{name} must be > 0, got {value!r}")


@register
@dataclasses.dataclass(eq=False)
class L2(Method):
    """L2: decoupled weight decay set to `weight_decay` (AdamW's; Loshchilov & Hutter 2019, arXiv:1711.05101).

    Decoupled in every loop: the RL agents' Adam and RMSprop apply it as AdamW does (`hare_tortoise.optim`), never as
    an L2 term in the gradient.

    The paper sweeps 1, 0.1, 0.01, 1e-3, 1e-4; 0.1 is its setting with augmentation and our default.
    """

    name = "l2"
    paper = "Loshchilov & Hutter, ICLR 2019, arXiv:1711.05101"
    stackable = True
    weight_decay: float = 0.1  # replaces the optimizer's weight decay

    def __post_init__(self) -> None:
        _positive("weight_decay", self.weight_decay)

    def optimizer_overrides(self) -> dict:
        return {"weight_decay": self.weight_decay}


@register
@dataclasses.dataclass(eq=False)
class L2Init(Method):
    """L2-Init (regenerative regularization): loss += strength * sum over ALL parameters of ||theta - theta_0||^2.

    Kumar, Marklund & Van Roy, "Maintaining Plasticity in Continual Learning via Regenerative Regularization",
    2023 (arXiv:2308.11958). theta_0 are the weights at `attach`. The paper's public code penalises only the last
    parameter tensor with an unsquared norm; this covers every parameter, squared. The paper sweeps 1 ... 1e-4.
    """

    name = "l2_init"
    paper = "Kumar et al. 2023, arXiv:2308.11958"
    stackable = True  # the penalty sums over all parameters: each seed's gradient is its own
    strength: float = 1e-3  # lambda

    def __post_init__(self) -> None:
        _positive("strength", self.strength)

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.params: list[torch.Tensor] = list(unwrap(model).parameters())
        self.initial = [p.detach().clone() for p in self.params]

    def loss_terms(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        # One fused subtraction and norm over all tensors: the penalty is sum ||theta - theta_0||^2.
        differences = torch._foreach_sub(self.params, self.initial)
        squared = torch.stack(torch._foreach_norm(differences)).square().sum()
        return {"l2_init": self.strength * squared}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "initial": [t.clone() for t in self.initial]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        torch._foreach_copy_(self.initial, list(state["initial"]))


@register
@dataclasses.dataclass(eq=False)
class Spectral(Method):
    """Spectral penalty (spectral decoupling): loss += strength * mean(logits^2).

    Pezeshki et al., "Gradient Starvation: A Learning Proclivity in Neural Networks", NeurIPS 2021
    (arXiv:2011.09468). The paper sweeps 1 ... 1e-5.
    """

    name = "spectral"
    paper = "Pezeshki et al., NeurIPS 2021, arXiv:2011.09468"
    strength: float = 1e-3  # lambda

    def __post_init__(self) -> None:
        _positive("strength", self.strength)

    def loss_terms(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"spectral": self.strength * outputs.float().square().mean()}
