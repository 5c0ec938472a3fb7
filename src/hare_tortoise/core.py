"""Hare & Tortoise networks (Lee et al., "Slow and Steady Wins the Race", ICML 2024, arXiv:2406.02596).

The Hare is the network trained by gradient descent. The Tortoise has the same architecture, is never trained by
gradients, and follows the Hare as an exponential moving average after every optimizer step. Periodically the
Hare is reset to the Tortoise: it restarts from consolidated knowledge instead of from random weights.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from .flat import FlatTensors
from .tensors import split_buffers, unwrap


def check_momentum(momentum: float) -> None:
    """Raise a ValueError unless 0 <= momentum < 1 (1 would freeze the tortoise)."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1) (the paper uses 0.999), got {momentum!r}")


class HareTortoise:
    """A Hare (the trained network) and its Tortoise (an EMA of it), with periodic resets of the Hare.

    ```python
    ht = HareTortoise(model, momentum=0.999, reset_every=None)
    ...; optimizer.step(); ht.step()   # tortoise <- m * tortoise + (1 - m) * hare; reset every `reset_every`
    accuracy(ht.tortoise)              # the Tortoise is the network the paper evaluates
    ```

    Differences from the paper's public code, on purpose (PAPER.md section 6): integer buffers such as
    `num_batches_tracked` are copied, never averaged or cast to float; a reset copies values, so the two networks
    never share storage.

    The averaged tensors of each network (parameters, and BN statistics with `buffers="ema"`) live in one
    contiguous buffer, so that an update is one lerp rather than a kernel per tensor: the constructor moves the
    hare's into one, in place (same Parameter objects, same values). Moving the model afterwards (`.to(...)`)
    detaches them again; the update then falls back to per-tensor ops, with the same result.

    Weights held in bfloat16 lose small EMA increments to rounding (8 mantissa bits against (1 - m) = 1e-3): keep
    float32 weights and use bf16 autocast, as the training loop of this library does.
    """

    def __init__(
        self,
        hare: nn.Module,                          # the network trained by the optimizer (DDP/compile wrappers are unwrapped)
        momentum: float = 0.999,                  # m in tortoise <- m * tortoise + (1 - m) * hare; the paper's 0.999
        reset_every: int | None = None,           # step(): reset the hare every this many updates; None: never
        buffers: Literal["ema", "copy"] = "ema",  # floating buffers (BN statistics): averaged as in the paper, or copied
    ):
        check_momentum(momentum)
        if reset_every is not None and (isinstance(reset_every, bool) or not isinstance(reset_every, int) or reset_every < 1):
            raise ValueError(f"reset_every must be an integer >= 1 (updates between resets) or None, got {reset_every!r}")
        if buffers not in ("ema", "copy"):
            raise ValueError(f"buffers must be 'ema' (average BN statistics, as the paper) or 'copy', got {buffers!r}")
        self.hare = unwrap(hare)
        if not any(True for _ in self.hare.parameters()):
            raise ValueError(f"the hare must have parameters to average; {type(self.hare).__name__} has none")
        self.momentum = momentum
        self.reset_every = reset_every
        self.buffers = buffers
        self.tortoise = copy.deepcopy(self.hare).requires_grad_(False).eval()
        self.num_updates = 0
        self._pairs = self._tensor_lists()
        tortoise, hare = self._pairs["average"]
        # one op over two buffers pairs their elements only if every tensor has the same shape and strides in both
        same_layout = all(t.shape == h.shape and t.stride() == h.stride() for t, h in zip(tortoise, hare))
        self._flat = (FlatTensors(tortoise), FlatTensors(hare)) if same_layout else None

    def _tensor_lists(self) -> dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]]:
        """(tortoise, hare) tensor lists, built once: 'average' gets the EMA, 'copy' is copied on update."""
        hare_params, tortoise_params = list(self.hare.parameters()), list(self.tortoise.parameters())
        hare_float, hare_other = split_buffers(self.hare)
        tortoise_float, tortoise_other = split_buffers(self.tortoise)
        if self.buffers == "ema":
            average = (tortoise_params + tortoise_float, hare_params + hare_float)
            copied = (tortoise_other, hare_other)
        else:
            average = (tortoise_params, hare_params)
            copied = (tortoise_float + tortoise_other, hare_float + hare_other)
        return {"average": average, "copy": copied}

    def update(self) -> None:
        """tortoise <- momentum * tortoise + (1 - momentum) * hare, one op over each buffer; call after each optimizer step."""
        # no autograd to switch off on the hot path (a few us, much of a small model's update): the buffers and the
        # copied tensors (module buffers) do not require grad; the hare's Parameters, used as such below, do
        if self._flat_intact():
            self._flat[0].buffer.lerp_(self._flat[1].buffer, 1.0 - self.momentum)
        else:
            with torch.no_grad():
                torch._foreach_lerp_(*self._pairs["average"], 1.0 - self.momentum)
        tortoise, hare = self._pairs["copy"]
        if tortoise:
            torch._foreach_copy_(tortoise, hare)
        self.num_updates += 1

    @torch.no_grad()
    def reset_hare(self) -> None:
        """hare <- tortoise, parameters and all buffers, copied in place.

        The hare keeps its Parameter objects, so an optimizer built on them keeps working, and keeps its state
        (the paper keeps the AdamW moments at these resets).
        """
        if self._flat_intact():
            self._flat[1].buffer.copy_(self._flat[0].buffer)
        else:
            torch._foreach_copy_(self._pairs["average"][1], self._pairs["average"][0])
        tortoise, hare = self._pairs["copy"]
        if hare:
            torch._foreach_copy_(hare, tortoise)

    def _flat_intact(self) -> bool:
        """Whether both networks' averaged tensors still lie in their buffers, so that one op updates them all."""
        return self._flat is not None and self._flat[0].intact() and self._flat[1].intact()

    def step(self) -> bool:
        """update(), then reset_hare() every `reset_every` updates. Returns whether the hare was reset."""
        self.update()
        if self.reset_every is not None and self.num_updates % self.reset_every == 0:
            self.reset_hare()
            return True
        return False

    def state_dict(self) -> dict:
        """The tortoise's weights and the update counter (the hare is the caller's model: save it yourself)."""
        return {"tortoise": self.tortoise.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict()` returned, values copied into the existing tortoise tensors."""
        self.tortoise.load_state_dict(state["tortoise"])
        self.num_updates = int(state["num_updates"])

    def __repr__(self) -> str:
        return (
            f"HareTortoise({type(self.hare).__name__}, momentum={self.momentum}, reset_every={self.reset_every}, "
            f"buffers={self.buffers!r}, num_updates={self.num_updates})"
        )
