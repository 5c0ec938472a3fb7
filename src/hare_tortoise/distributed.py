"""Devices and data parallelism under torchrun: which device a run asks for, which process this is, and the few
collective operations the training loop needs.

Every rank holds the whole (tensor-resident) dataset and draws the same batches and augmentations; each trains on
its slice of every batch, DistributedDataParallel averages the gradients, so all ranks take identical optimizer
steps and the Tortoise, updated from identical weights, stays identical too (`agree` checks it bit for bit).
Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import dataclasses
import gc
import os

import torch
import torch.distributed as dist

from .errors import InvalidInput


def resolve_device(name: str) -> torch.device:
    """The device of a config's `device` setting: auto (cuda if available), cpu, cuda, cuda:N."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device={name} was asked for, but no CUDA device is available; use device=cpu or auto")
    return device


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the `size` processes of one run (size 1: no distribution)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> World:
        """The world torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK); joins its process group, NCCL for CUDA
        and gloo for CPU. Without torchrun, a world of one."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process, by local rank."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.size > 1 else device

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a batch (every size-th sample): equal slices when size divides the batch."""
        return batch[self.rank::self.size] if self.size > 1 else batch

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over ranks (in place), e.g. per-rank loss sums and correct counts."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def share_buffers(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics, which each rank updates from its own
        slice), as DDP does before each forward, so that the Tortoise averages identical weights everywhere."""
        if self.size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def agree(self, tensors: list[torch.Tensor]) -> bool:
        """Whether every rank holds bit-identical `tensors` (compared as raw bytes, so -0.0 != 0.0 and NaNs
        compare by pattern)."""
        if self.size == 1:
            return True
        flat = torch.cat([t.detach().reshape(-1).contiguous().view(torch.uint8) for t in tensors])
        gathered = [torch.empty_like(flat) for _ in range(self.size)]
        dist.all_gather(gathered, flat)
        return all(torch.equal(gathered[0], other) for other in gathered[1:])

    def close(self) -> None:
        """Leave the process group. Drop every DistributedDataParallel wrapper first: its reducer holds the group,
        and a group freed after this, by the reducer, joins gloo's threads while holding the GIL, which hangs (or,
        at exit, aborts) when one of them needs the GIL (pytorch/pytorch#56297; that order hung 3 runs in 35 of
        tests/test_core.py here)."""
        if self.size > 1 and dist.is_initialized():
            gc.collect()  # wrappers the caller dropped but a reference cycle still holds
            dist.destroy_process_group()
