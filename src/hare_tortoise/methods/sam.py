"""Sharpness-aware minimization as a method hook (a trainability method the paper names; docs/METHODS.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..errors import InvalidInput
from ..tensors import buffers_preserved, global_norm, unwrap
from .base import Method, register


@register
@dataclasses.dataclass(eq=False)
class SAM(Method):
    """SAM: the optimizer steps with the gradient taken at theta + rho * g / ||g||, the worst nearby weights.

    Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021
    (arXiv:2010.01412). The paper names it with rho in 0.05-0.1. Costs a second forward and backward pass.
    Weights and buffers (BatchNorm statistics) are restored exactly after the perturbed pass, so the
    statistics see each batch once.
    """

    name = "sam"
    paper = "Foret et al., ICLR 2021, arXiv:2010.01412"
    counters = ("perturbed_steps",)
    rho: float = 0.05  # radius of the weight perturbation

    def __post_init__(self) -> None:
        if not self.rho > 0:
            raise InvalidInput(f"rho must be > 0 (the paper uses 0.05-0.1), got {self.rho!r}")

    @torch.no_grad()
    def after_backward(self, closure: Callable[[], torch.Tensor]) -> None:
        params: list[torch.Tensor] = [p for p in unwrap(self.model).parameters() if p.grad is not None]
        grads = [p.grad for p in params if p.grad is not None]
        saved = [p.clone() for p in params]  # restored by copy: adding and subtracting is not exact in floats
        torch._foreach_add_(params, list(torch._foreach_mul(grads, self.rho / (global_norm(grads) + 1e-12))))
        with torch.enable_grad(), buffers_preserved(self.model):
            closure()
        torch._foreach_copy_(params, saved)
        self.counts["perturbed_steps"] += 1
