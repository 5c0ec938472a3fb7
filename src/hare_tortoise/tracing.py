"""Record which leaf module, or functional activation, ran on which tensors during one forward pass (for ReDo and
the metrics).

Models written as `x = F.relu(self.fc1(x))` have no activation module to hook: a torch-function mode sees those
calls (`F.relu`, `torch.relu`, `x.relu()`, ... and the reshapes between layers, `x.flatten(1)`, `x.view(...)`) and
records each as a call of a stand-in module of the same kind, named after the layer whose output it took.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .tensors import buffers_preserved, unwrap


@dataclasses.dataclass
class Call:
    """One call of a leaf module: its qualified name, the module, its first input and its output."""

    name: str
    module: nn.Module
    input: torch.Tensor
    output: torch.Tensor


# functions that stand for a module of this kind when a model calls them outside any leaf module
FUNCTIONAL: dict[object, type[nn.Module]] = {
    **dict.fromkeys((F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_), nn.ReLU),
    F.leaky_relu: nn.LeakyReLU,
    F.gelu: nn.GELU, F.silu: nn.SiLU, F.elu: nn.ELU,
    **dict.fromkeys((torch.flatten, torch.Tensor.flatten, torch.Tensor.view, torch.Tensor.reshape, torch.reshape),
                    nn.Flatten),
    F.dropout: nn.Dropout,
}


class _FunctionalCalls(TorchFunctionMode):
    """Records the FUNCTIONAL calls made outside leaf modules (inside one, the module's own call is recorded)."""

    def __init__(self, calls: list[Call], names: dict[int, str]):
        super().__init__()
        self.calls, self.names, self.inside_leaf = calls, names, 0

    def __torch_function__(self, func: Callable, types: object, args: tuple = (), kwargs: dict | None = None) -> Any:
        output = func(*args, **(kwargs or {}))
        kind = FUNCTIONAL.get(func)
        if (kind is not None and not self.inside_leaf and args and isinstance(args[0], torch.Tensor)
                and isinstance(output, torch.Tensor)):
            source = self.names.get(id(args[0]), "input")
            name = f"{source}.{getattr(func, '__name__', kind.__name__.lower())}"
            self.calls.append(Call(name, kind(), args[0], output))
            self.names.setdefault(id(output), name)
        return output


@torch.no_grad()
def trace(model: nn.Module, inputs: torch.Tensor) -> list[Call]:
    """Run `model(inputs)` without gradients and return the leaf-module calls, and the functional activations and
    reshapes called outside leaf modules, in execution order.

    Buffers (BatchNorm statistics) are restored afterwards, so tracing leaves no trace in the model. Tensors are
    kept by identity: `a.output is b.input` means b consumed exactly what a produced.
    """
    model = unwrap(model)
    calls: list[Call] = []
    names: dict[int, str] = {}  # output tensor id -> the name of the call that made it
    mode = _FunctionalCalls(calls, names)
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def enter(module: nn.Module, args: tuple) -> None:
                mode.inside_leaf += 1

            def leave(module: nn.Module, args: tuple, output: object, name: str = name) -> None:
                mode.inside_leaf -= 1
                if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                    calls.append(Call(name, module, args[0], output))
                    names.setdefault(id(output), name)
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        with buffers_preserved(model), mode:
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
Producer = nn.Linear | nn.Conv1d | nn.Conv2d  # a layer of PRODUCERS, for annotations
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
