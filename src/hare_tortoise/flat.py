"""One contiguous buffer behind a list of tensors, so that an update of all of them is one kernel.

On the CPU a foreach op still dispatches one kernel per tensor (about 3 us each here), which on a small network
costs more than the arithmetic: the MNIST-1D MLP's 14 averaged tensors take 37-51 us per EMA update, one lerp over a
buffer of their 79,882 values 18-21 us (benchmarks/README.md). `HareTortoise` keeps each network's averaged tensors
in such a buffer.
"""

from __future__ import annotations

import torch


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
        first.untyped_storage(), first.storage_offset(), (offset - first.storage_offset(),))


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
