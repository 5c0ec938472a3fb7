"""One contiguous buffer behind a list of tensors (weights, or their gradients), so that an update of all of them
is one kernel.

On the CPU a foreach op still dispatches one kernel per tensor (about 3 us each here), which on a small network
costs more than the arithmetic: the MNIST-1D MLP's 14 averaged tensors take 37-51 us per EMA update, one lerp over a
buffer of their 79,882 values 18-21 us (benchmarks/README.md). `HareTortoise` keeps each network's averaged tensors
in such a buffer, and the Trainer keeps the gradients in one (`FlatGradients`), so that zeroing them, their global
norm and the clipping are one kernel each.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import torch

from .errors import InvalidInput
from .tensors import global_norm


def _dense(tensor: torch.Tensor) -> bool:
    """Whether the tensor's elements fill a gap-free, non-overlapping block of memory, in any dimension order
    (contiguous, channels_last, ...): then a buffer slice of its size can hold it with the same strides."""
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(tensor.shape, tensor.stride()) if s != 1), key=lambda d: d[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _can_share(tensors: list[torch.Tensor]) -> bool:
    """Whether `tensors` (at least one) could lie in one buffer: one dtype, one device, each dense."""
    return bool(tensors) and all(t.dtype == tensors[0].dtype and t.device == tensors[0].device and _dense(t)
                                 for t in tensors)


def _shared_buffer(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The 1-D tensor over the storage that `tensors` already fill back to back, in order, or None."""
    if not _can_share(tensors):
        return None
    first = tensors[0]
    offset = first.storage_offset()
    for tensor in tensors:
        if (tensor.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
                or tensor.storage_offset() != offset):
            return None
        offset += tensor.numel()
    return torch.empty(0, dtype=first.dtype, device=first.device).set_(
        first.untyped_storage(), first.storage_offset(), (offset - first.storage_offset(),), (1,))


@torch.no_grad()
def _new_buffer(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """Copy `tensors` into one new buffer, back to back, and point each at its slice, with its strides (through
    `.data`, so a Parameter stays the same object: optimizers and hooks holding it keep working). None, with
    nothing moved, if they cannot share a buffer (none, mixed dtypes or devices, or a strided view)."""
    if not _can_share(tensors):
        return None
    buffer = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype, device=tensors[0].device)
    offset = 0
    for tensor in tensors:
        view = buffer.as_strided(tensor.shape, tensor.stride(), offset)
        view.copy_(tensor)
        tensor.data = view
        offset += tensor.numel()
    return buffer


_FLOAT32 = struct.Struct("f")
_PYTHON_ROUNDED = (torch.float32, torch.float64)  # the dtypes clip_coefficient rounds as


def _as_float32(x: float) -> float:
    """`x` rounded to the nearest float32 (IEEE round-half-even), as a float32 operation rounds its result."""
    return _FLOAT32.unpack(_FLOAT32.pack(x))[0]


def clip_coefficient(norm: float, max_norm: float, dtype: torch.dtype) -> float:
    """min(1, max_norm / (norm + 1e-6)) in Python floats, rounded after each operation to `dtype`
    (float32 or float64) as torch rounds the same expression on a 0-d tensor of that dtype (where `max_norm / t` is
    `t.reciprocal() * max_norm`): the same bits as `clip_grad_norm_`'s coefficient. For float32 each double result
    rounded once to float32 is the correctly rounded float32 result (53 >= 2 * 24 + 2 bits), so no double rounding."""
    if dtype not in _PYTHON_ROUNDED:
        raise InvalidInput(f"clip_coefficient rounds as float32 or float64 does, not as {dtype}")
    to = _as_float32 if dtype == torch.float32 else float
    return min(to(to(1.0 / to(norm + to(1e-6))) * to(max_norm)), 1.0)


def _coefficient(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """clip_grad_norm_'s min(1, max_norm / (norm + 1e-6)), as a 0-d tensor on the norm's device."""
    return torch.clamp(max_norm / (norm + 1e-6), max=1.0)


class FlatTensors:
    """`tensors` as views into one 1-D buffer (`.buffer`), so that one op on the buffer updates them all.

    Tensors that already fill one storage back to back (another `FlatTensors` over the same list) keep it;
    otherwise they are moved into a new one, values unchanged. Anything that later re-points a tensor elsewhere
    (`module.to(...)` onto another device or memory format, `load_state_dict(assign=True)`, `p.data = ...`) detaches
    it from the buffer: `intact()` then turns false and the caller goes back to per-tensor ops.
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = list(tensors)
        shared = _shared_buffer(self.tensors)
        self.buffer = shared if shared is not None else _new_buffer(self.tensors)
        self._addresses = list(map(torch.Tensor.data_ptr, self.tensors))

    def intact(self) -> bool:
        """Whether every tensor still lies where the buffer put it (one address per tensor: about 0.2 us each)."""
        return self.buffer is not None and list(map(torch.Tensor.data_ptr, self.tensors)) == self._addresses


class FlatGradients:
    """The gradients of `parameters` as views into one buffer (`.buffer`), which autograd adds into in place.

    `zero()` before each backward pass zeroes the buffer (and points any `.grad` that was set to None or replaced
    back at its view); `clip(max_norm)` then scales every gradient by min(1, max_norm / (norm + 1e-6)), the norm
    taken over the whole buffer: the rule of `torch.nn.utils.clip_grad_norm_` (Lee et al. clip at 0.5), in one norm
    and one multiply instead of a kernel per tensor. Unlike `zero_grad(set_to_none=True)` a parameter that the loss
    does not reach gets a zero gradient rather than none, so AdamW still decays it (torch's default before 2.0).
    Parameters that cannot share a buffer (mixed dtypes or devices) fall back to per-tensor gradients.
    """

    def __init__(self, parameters: Iterable[torch.Tensor]):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.buffer = None
        self.views: list[torch.Tensor] = []
        if _can_share(self.parameters):
            first = self.parameters[0]
            self.buffer = torch.zeros(sum(p.numel() for p in self.parameters), dtype=first.dtype, device=first.device)
            offset = 0
            for parameter in self.parameters:
                self.views.append(self.buffer.as_strided(parameter.shape, parameter.stride(), offset))
                offset += parameter.numel()

    def zero(self) -> None:
        """Every gradient zero, in the buffer; without one, every gradient None."""
        if self.buffer is None:
            for parameter in self.parameters:
                parameter.grad = None
            return
        self.buffer.zero_()
        for parameter, view in zip(self.parameters, self.views):
            if parameter.grad is not view:
                parameter.grad = view

    def _in_buffer(self) -> torch.Tensor | None:
        """The buffer, if every gradient is still its view (a user may have replaced one)."""
        if self.buffer is not None and all(p.grad is v for p, v in zip(self.parameters, self.views)):
            return self.buffer
        return None

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.parameters if p.grad is not None]

    @staticmethod
    def _buffer_norm(buffer: torch.Tensor) -> torch.Tensor:
        # a dot product, not vector_norm: on 2 CPU threads vector_norm makes the op after it ~100 us slower here
        return torch.dot(buffer, buffer).sqrt()

    def norm(self) -> torch.Tensor:
        """The global L2 norm of the gradients, as a 0-d tensor."""
        buffer = self._in_buffer()
        return self._buffer_norm(buffer) if buffer is not None else global_norm(self._grads())

    def clip(self, max_norm: float) -> None:
        """Scale all gradients so that their global norm is at most `max_norm` (clip_grad_norm_'s rule)."""
        # the buffer never requires grad (autograd only adds into it): no no_grad to enter, 1.4 us a step
        if (buffer := self._in_buffer()) is not None:
            if buffer.device.type == "cpu" and buffer.dtype in _PYTHON_ROUNDED:
                # on the CPU reading the norm costs no device sync, and the coefficient's four 0-d tensor ops cost
                # 50-100 us inside a training step (benchmarks/README.md): the same bits in Python floats (the
                # square root stays torch's, whose float32 result is not always the correctly rounded one)
                norm = self._buffer_norm(buffer).item()
                coefficient = clip_coefficient(norm, max_norm, buffer.dtype)
                if coefficient != 1.0:  # x * 1.0 is x: nothing to scale
                    buffer.mul_(coefficient)
            else:  # an accelerator would wait for .item(): the coefficient stays on the device
                buffer.mul_(_coefficient(self._buffer_norm(buffer), max_norm))
        elif grads := self._grads():
            with torch.no_grad():  # gradients of a create_graph backward require grad
                torch._foreach_mul_(grads, _coefficient(global_norm(grads), max_norm))
