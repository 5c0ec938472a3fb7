"""Record which leaf module ran on which tensors during one forward pass (for ReDo and the metrics)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .tensors import buffers_preserved, unwrap


@dataclasses.dataclass
class Call:
    """One call of a leaf module: its qualified name, the module, its first input and its output."""

    name: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor


@torch.no_grad()
def trace(model: nn.Module, inputs: torch.Tensor) -> list[Call]:
    """Run `model(inputs)` without gradients and return the leaf-module calls in execution order.

    Buffers (BatchNorm statistics) are restored afterwards, so tracing leaves no trace in the model. Tensors are
    kept by identity: `a.output is b.input` means b consumed exactly what a produced.
    """
    model = unwrap(model)
    calls: list[Call] = []
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def hook(module, args, output, name=name):
                if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                    calls.append(Call(name, module, args[0], output))
            handles.append(module.register_forward_hook(hook))
    try:
        with buffers_preserved(model):
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU)


def outputs_index(calls: list[Call]) -> dict[int, Call]:
    """The call that first produced each output tensor, by tensor id (in-place layers keep the original)."""
    index: dict[int, Call] = {}
    for call in calls:
        index.setdefault(id(call.output), call)
    return index


def source(call: Call, by_output: dict[int, Call]) -> tuple[nn.Module | None, Call | None]:
    """(norm, producer) behind an activation: the norm layer its input came out of, if any, and the call before."""
    before = by_output.get(id(call.input))
    if before is not None and isinstance(before.module, NORMS):
        return before.module, by_output.get(id(before.input))
    return None, before


def unit_dim(call: Call, by_output: dict[int, Call]) -> int:
    """The dimension that indexes units in an activation: channels (1) after a convolution, else the last one."""
    _, producer = source(call, by_output)
    if producer is not None and isinstance(producer.module, (nn.Conv1d, nn.Conv2d)):
        return 1
    return 1 if call.output.dim() == 4 else -1
