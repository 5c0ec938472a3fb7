"""Tensor-level helpers shared by the core and the methods: unwrapping, grouping and snapshotting state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The real module behind DistributedDataParallel / DataParallel and `torch.compile` wrappers.

    Wrappers hold the module under `.module` (DDP, DataParallel) or `._orig_mod` (compile); they can nest.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
            model = model._orig_mod
        else:
            return model


def split_buffers(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The model's buffers as (floating-point, other) lists, each in `named_buffers()` order.

    Floating buffers (BatchNorm running statistics) can be averaged; integer ones (`num_batches_tracked`)
    can only be copied.
    """
    floating: list[torch.Tensor] = []
    other: list[torch.Tensor] = []
    for buffer in model.buffers():
        (floating if buffer.is_floating_point() else other).append(buffer)
    return floating, other


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer, keyed by state-dict name (own storage, not a view)."""
    return {name: tensor.detach().clone() for name, tensor in unwrap(model).state_dict().items()}


@torch.no_grad()
def reinitialize(model: nn.Module) -> None:
    """Draw fresh initial weights for `model`, as its constructor would.

    A model that defines its own `reset_parameters()` (a custom initialisation scheme) is asked first; otherwise
    every submodule with `reset_parameters()` (Linear, Conv, norms; BatchNorm also resets its running statistics)
    re-initialises itself.
    """
    model = unwrap(model)
    own = getattr(model, "reset_parameters", None)
    if callable(own):
        own()
        return
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if module is not model and callable(reset):
            reset()


def global_norm(tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """sqrt(sum of squared entries) over a list of tensors, as one 0-d tensor (0 for an empty list)."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


@contextlib.contextmanager
def buffers_preserved(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (BatchNorm statistics) on exit, so that forward passes inside leave no trace."""
    buffers = list(unwrap(model).buffers())
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        if buffers:
            torch._foreach_copy_(buffers, saved)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside, its own mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
