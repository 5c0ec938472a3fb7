"""Hare & Tortoise networks (Lee et al., "Slow and Steady Wins the Race", ICML 2024, arXiv:2406.02596).

The Hare is the network trained by gradient descent. The Tortoise has the same architecture, is never trained by
gradients, and follows the Hare as an exponential moving average after every optimizer step. Periodically the
Hare is reset to the Tortoise: it restarts from consolidated knowledge instead of from random weights.
"""

from __future__ import annotations

import contextlib
import copy
import operator
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .errors import InvalidInput
from .flat import FlatTensors
from .tensors import unwrap


def check_momentum(momentum: float) -> None:
    """Raise a ValueError unless 0 <= momentum < 1 (1 would freeze the tortoise)."""
    if not 0.0 <= momentum < 1.0:
        raise InvalidInput(f"momentum must be in [0, 1) (the paper uses 0.999), got {momentum!r}")


class HareTortoise(nn.Module):
    """A Hare (the trained network) and its Tortoise (an EMA of it), with periodic resets of the Hare.

    ```python
    ht = HareTortoise(model, momentum=0.999, reset_every=None)
    ...; optimizer.step(); ht.step()   # tortoise <- m * tortoise + (1 - m) * hare; reset every `reset_every`
    accuracy(ht.tortoise)              # the Tortoise is the network the paper evaluates (also `ht(x)`)
    ```

    A well-behaved module: the Tortoise is its submodule, so `ht.to(device)`, `ht.double()` and a parent module
    that holds `ht` move, cast and save it (`state_dict()` holds the Tortoise and the update counter). The Hare
    stays the caller's model, an ordinary one: it is not a submodule (the caller saves and moves it), and the
    constructor leaves its tensors where they are. After the user moves or casts either network, the next update
    checks that the two still match and gives the closed-form result, or raises a ValueError that says what to
    move. (Replacing a submodule of the Hare after construction is not seen: build a new HareTortoise then.)

    Differences from the paper's public code, on purpose (docs/METHODS.md): integer buffers such as
    `num_batches_tracked` are copied, never averaged or cast to float; a reset copies values, so the two networks
    never share storage.

    `share_storage=True` is for a loop that owns the model and will not move, cast or save parts of it (this
    library's trainers): the constructor then moves the averaged tensors of each network into one contiguous
    buffer, in place (same Parameter objects, same values), so that an update is one lerp instead of a kernel per
    tensor (benchmarks/README.md). If they are moved anyway, updates fall back to per-tensor ops, same result.

    Weights held in bfloat16 lose small EMA increments to rounding (8 mantissa bits against (1 - m) = 1e-3): keep
    float32 weights and use bf16 autocast, as the training loop of this library does.
    """

    hare: nn.Module      # the caller's model (set past nn.Module's registration: not a submodule)
    tortoise: nn.Module

    def __init__(
        self,
        hare: nn.Module,                          # the network trained by the optimizer (DDP/compile wrappers
        #                                           are unwrapped)
        momentum: float = 0.999,                  # m in tortoise <- m * tortoise + (1 - m) * hare; the paper's 0.999
        reset_every: int | None = None,           # step(): reset the hare every this many updates; None: never
        buffers: Literal["ema", "copy"] = "ema",  # floating buffers (BN statistics): averaged as in the paper,
        #                                           or copied
        share_storage: bool = False,              # lay each network's averaged tensors in one buffer (see above)
    ):
        super().__init__()
        check_momentum(momentum)
        if reset_every is not None and (isinstance(reset_every, bool) or not isinstance(reset_every, int)
                                        or reset_every < 1):
            raise InvalidInput(f"reset_every must be an integer >= 1 (updates between resets) or None, "
                               f"got {reset_every!r}")
        if buffers not in ("ema", "copy"):
            raise InvalidInput(f"buffers must be 'ema' (average BN statistics, as the paper) or 'copy', "
                               f"got {buffers!r}")
        hare = unwrap(hare)
        if not any(True for _ in hare.parameters()):
            raise InvalidInput(f"the hare must have parameters to average; {type(hare).__name__} has none")
        for name, param in hare.named_parameters():
            if not param.is_floating_point():
                raise InvalidInput(f"the hare's parameter {name} is {param.dtype}: an average of integers is no "
                                   "integer, so HareTortoise needs floating-point parameters (keep integers in "
                                   "buffers)")
        object.__setattr__(self, "hare", hare)  # not a submodule: the caller's model stays the caller's
        self.momentum = momentum
        self.reset_every = reset_every
        self.buffer_mode = buffers  # not `self.buffers`: that is nn.Module's method of the same name
        self.tortoise = copy.deepcopy(hare).requires_grad_(False).eval()
        self.num_updates = 0
        self._collect()
        tortoise, hare_tensors = self._pairs["average"]
        # one op over two buffers pairs their elements only if every tensor has the same shape and strides in both
        same_layout = all(t.shape == h.shape and t.stride() == h.stride() for t, h in zip(tortoise, hare_tensors))
        flat = (FlatTensors(tortoise), FlatTensors(hare_tensors)) if share_storage and same_layout else None
        # mixed dtypes or devices cannot share a buffer: per-tensor updates then
        self._flat: tuple[FlatTensors, FlatTensors] | None = None
        self._flat_buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        if flat is not None:
            self._collect()  # views of the buffers: views of the storage the tensors left would keep it alive
            if flat[0].buffer is not None and flat[1].buffer is not None:
                self._flat, self._flat_buffers = flat, (flat[0].buffer, flat[1].buffer)
        self._addresses = self._current_addresses()

    def _collect(self) -> None:
        """(tortoise, hare) tensor lists: 'average' gets the EMA, 'copy' is copied on update; and where each lives."""
        pairs: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {"average": ([], []), "copy": ([], [])}
        for (_, t), (_, h) in zip(_named_tensors(self.tortoise), _named_tensors(self.hare)):
            averaged = isinstance(h, nn.Parameter) or (h.is_floating_point() and self.buffer_mode == "ema")
            kind = "average" if averaged else "copy"
            pairs[kind][0].append(t)
            pairs[kind][1].append(h)
        self._pairs = pairs
        # detached views of the same storage: the update needs no autograd context (a few us, much of a small
        # model's update); a later move or cast re-points the tensors, which `_check_layout` sees and collects again
        self._views = {kind: ([t.detach() for t in ts], [h.detach() for h in hs]) for kind, (ts, hs) in pairs.items()}
        slots = [slot for network in (self.tortoise, self.hare) for slot in _tables(network)]
        self._tables, self._keys = [table for table, _ in slots], [key for _, key in slots]

    def _current_addresses(self) -> list[int]:
        """Where each tensor of both networks is now, read through the modules' own tables: a cast or move either
        re-points a tensor (a new address) or puts a new one in the table (`.to("meta")`,
        `load_state_dict(assign=True)`)."""
        return list(map(torch.Tensor.data_ptr, map(operator.getitem, self._tables, self._keys)))

    def _check_layout(self) -> None:
        """Follow a move or cast of either network since the last update (any tensor at a new address): collect the
        tensors again and check that they still pair up, or raise a ValueError that names the first that does not."""
        if self._current_addresses() == self._addresses:
            return
        tortoise, hare = list(_named_tensors(self.tortoise)), list(_named_tensors(self.hare))
        if [n for n, _ in tortoise] != [n for n, _ in hare]:
            raise InvalidInput("the hare's parameters and buffers are no longer those of the tortoise (a submodule was "
                             "replaced or added after HareTortoise was built): build a new HareTortoise")
        for (name, t), (_, h) in zip(tortoise, hare):
            if (t.shape, t.dtype, t.device) != (h.shape, h.dtype, h.device):
                raise InvalidInput(
                    f"the hare's {name} is now {h.dtype} of shape {tuple(h.shape)} on {h.device}, the tortoise's "
                    f"{t.dtype} of shape {tuple(t.shape)} on {t.device}: move or cast the HareTortoise with the model "
                    "(ht.to(...), or hold it in the same parent module), or build it after moving the model")
        self._collect()
        if self._flat is not None and not (self._flat[0].intact() and self._flat[1].intact()):
            self._flat = self._flat_buffers = None  # the tensors left their buffers: per-tensor ops from now on
        self._addresses = self._current_addresses()

    def update(self) -> None:
        """tortoise <- momentum * tortoise + (1 - momentum) * hare; call after each optimizer step."""
        self._check_layout()
        if self._flat_buffers is not None:
            tortoise_buffer, hare_buffer = self._flat_buffers
            tortoise_buffer.lerp_(hare_buffer, 1.0 - self.momentum)
        else:
            torch._foreach_lerp_(*self._views["average"], 1.0 - self.momentum)
        tortoise, hare = self._views["copy"]
        if tortoise:
            torch._foreach_copy_(tortoise, hare)
        self.num_updates += 1

    def reset_hare(self) -> None:
        """hare <- tortoise, parameters and all buffers, copied in place.

        The hare keeps its Parameter objects, so an optimizer built on them keeps working, and keeps its state
        (the paper keeps the AdamW moments at these resets).
        """
        self._check_layout()
        if self._flat_buffers is not None:
            tortoise_buffer, hare_buffer = self._flat_buffers
            hare_buffer.copy_(tortoise_buffer)
        else:
            torch._foreach_copy_(self._views["average"][1], self._views["average"][0])
        tortoise, hare = self._views["copy"]
        if hare:
            torch._foreach_copy_(hare, tortoise)

    @contextlib.contextmanager
    def tortoise_in_hare(self) -> Iterator[nn.Module]:
        """Inside, the Hare's tensors hold the Tortoise's values, so that code that only knows the Hare (a trainer's
        validation loop) evaluates the Tortoise; on exit the Hare's own values come back bit for bit."""
        self._check_layout()
        hare = self._views["average"][1] + self._views["copy"][1]
        saved = [tensor.clone() for tensor in hare]
        torch._foreach_copy_(hare, self._views["average"][0] + self._views["copy"][0])
        try:
            yield self.hare
        finally:
            torch._foreach_copy_(hare, saved)

    def step(self) -> bool:
        """update(), then reset_hare() every `reset_every` updates. Returns whether the hare was reset."""
        self.update()
        if self.reset_every is not None and self.num_updates % self.reset_every == 0:
            self.reset_hare()
            return True
        return False

    def attach(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Call `step()` after every `optimizer.step()` from now on, through the optimizer's step post-hook, so that
        a training loop (or a trainer that owns the optimizer) needs no line of its own. Returns the hook's handle:
        `handle.remove()` detaches. Attach once: a second hook would update twice per step."""
        def after_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            self.step()

        return optimizer.register_step_post_hook(after_step)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The Tortoise's output: the network the paper evaluates."""
        return self.tortoise(*args, **kwargs)

    def train(self, mode: bool = True) -> HareTortoise:
        """The Tortoise stays in eval mode (its BN statistics come from the Hare, never from its own forwards), so a
        parent module's `.train()` leaves it alone."""
        self.training = mode
        return self

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        """All or nothing, whether the state is loaded into this module or into a parent that holds it: keys and
        shapes under this module's prefix are checked before any tensor is copied (torch's own loading would copy
        the tensors that fit, then raise), because torch loads a module before its submodules (the Tortoise)."""
        own = self.state_dict()
        given = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
        missing, unexpected = sorted(own.keys() - given.keys()), sorted(given.keys() - own.keys())
        mismatched = [f"{k} {tuple(given[k].shape)} (here {tuple(own[k].shape)})"
                      for k in own.keys() & given.keys()
                      if torch.is_tensor(own[k]) and torch.is_tensor(given[k]) and own[k].shape != given[k].shape]
        problems = ([f"missing {', '.join(missing)}"] if strict and missing else []) + \
                   ([f"unexpected {', '.join(unexpected)}"] if strict and unexpected else []) + \
                   ([f"other shapes: {', '.join(sorted(mismatched))}"] if mismatched else [])
        if problems:
            raise InvalidInput(f"this state is not of this HareTortoise's network ({'; '.join(problems)}); nothing "
                               "was loaded into it")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def get_extra_state(self) -> dict:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])

    def extra_repr(self) -> str:
        return (f"hare={type(self.hare).__name__}, momentum={self.momentum}, reset_every={self.reset_every}, "
                f"buffers={self.buffer_mode!r}, num_updates={self.num_updates}")


def _named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every parameter and buffer, as `state_dict` names them (parameters first)."""
    yield from model.named_parameters()
    yield from model.named_buffers()


def _tables(model: nn.Module) -> list[tuple[dict, str]]:
    """(the module's own table, key) of every tensor, in `_named_tensors` order: where a cast or move puts the new
    one."""
    slots, seen = [], set()
    for table in ("_parameters", "_buffers"):
        for module in model.modules():
            for key, tensor in getattr(module, table).items():
                if tensor is not None and id(tensor) not in seen:
                    seen.add(id(tensor))
                    slots.append((getattr(module, table), key))
    return slots
