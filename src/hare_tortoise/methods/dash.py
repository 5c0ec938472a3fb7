"""DASH: shrink the weights that point away from the new data's descent direction (Shin et al., NeurIPS 2024)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import InvalidInput
from ..tensors import buffers_preserved, unwrap
from .base import Batches, Loop, Loss, Method, MethodRefused, register

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


@register
@dataclasses.dataclass(eq=False)
class DASH(Method):
    """Direction-Aware SHrinking: before training on each new chunk of data (every phase after the first), shrink
    each weight vector by how little it agrees with the descent direction on that chunk.

    Shin, Lee, Cho & Yun, "DASH: Warm-Starting Neural Network Training in Stationary Settings without Loss of
    Plasticity", NeurIPS 2024 (their `utils/train_utils.py`). The negative gradient of the loss on the phase's data
    is averaged over its batches, in order, as g <- (1 - alpha) g + alpha (-grad); then each Linear row (a unit's
    incoming weights) and each convolution's kernel per (output, input) channel pair is multiplied by
    clamp(cos(w, g), lambda, 1), and each bias vector by the clamped cosine of the whole vector. Weights aligned
    with the descent direction keep their size; the others shrink, down to a factor lambda. Norm layers are left
    as they are; the gradients are taken with BatchNorm's statistics restored afterwards and leave `.grad` alone.
    Defaults are the authors': alpha 0.3, lambda 0.3. The authors batch the chunk differently (their batch size
    is the iterations per chunk); here the batches are the run's training batches.
    """

    name = "dash"
    paper = "Shin et al., NeurIPS 2024"
    counters = ("shrinks",)
    alpha: float = 0.3        # weight of each new batch's negative gradient in the running average
    shrink_floor: float = 0.3  # lambda: the smallest factor a weight vector is multiplied by

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise InvalidInput(f"alpha must be in (0, 1] (the authors use 0.3), got {self.alpha!r}")
        if not 0 <= self.shrink_floor <= 1:
            raise InvalidInput(f"shrink_floor must be in [0, 1] (the authors' lambda, 0.3), got {self.shrink_floor!r}")

    def check_loop(self, loop: Loop) -> None:
        if len(loop.phase_epochs) < 2:
            raise MethodRefused(f"dash shrinks before each new chunk of data; {loop.phases_text()}, so it would never "
                                "act: use a protocol of several phases (warm_start, continual, a task sequence)")
        if loop.outputs == "q_values":
            raise MethodRefused(f"dash shrinks by the gradient over the next chunk's data, and {loop.name} has no "
                                "fixed data per phase (an agent's experience comes as it plays): use it in a "
                                "supervised protocol")

    def descent_directions(self, batches: Batches, loss: Loss) -> dict[torch.Tensor, torch.Tensor]:
        """The running average of the negative gradient over `batches`, per weight and bias of the Linear and
        convolution layers."""
        model = unwrap(self.model)
        params = [p for m in model.modules() if isinstance(m, _LAYERS) for p in (m.weight, m.bias) if p is not None]
        average = {p: torch.zeros_like(p) for p in params}
        was_training = model.training
        model.train()  # as the authors take them: batch statistics in BatchNorm (restored afterwards)
        try:
            with buffers_preserved(model), torch.enable_grad():
                for inputs, targets in batches():
                    grads = torch.autograd.grad(loss(self.model(inputs), targets), params, allow_unused=True)
                    for param, grad in zip(params, grads):
                        if grad is not None:
                            average[param].mul_(1 - self.alpha).add_(grad.detach(), alpha=-self.alpha)
        finally:
            model.train(was_training)
        return average

    @torch.no_grad()
    def on_phase_data(self, phase: int, batches: Batches, loss: Loss) -> None:
        if phase == 0:
            return
        directions = self.descent_directions(batches, loss)
        for module in unwrap(self.model).modules():
            if not isinstance(module, _LAYERS):
                continue
            weight = module.weight
            rows = (weight.shape[0], -1) if isinstance(module, nn.Linear) else (*weight.shape[:2], -1)
            cosine = torch.cosine_similarity(weight.reshape(rows), directions[weight].reshape(rows), dim=-1)
            scale = cosine.clamp(self.shrink_floor, 1)
            weight.mul_(scale.reshape(*scale.shape, *[1] * (weight.dim() - scale.dim())))
            if module.bias is not None:
                cosine = torch.cosine_similarity(module.bias, directions[module.bias], dim=0)
                module.bias.mul_(cosine.clamp(self.shrink_floor, 1))
        self.counts["shrinks"] += 1
