"""ReDo: recycle dormant units (Sokar et al., "The Dormant Neuron Phenomenon in Deep RL", ICML 2023)."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import torch
from torch import nn

from ..errors import InvalidInput
from ..metrics import unit_scores
from ..tracing import ACTIVATIONS, PRODUCERS, Call, Producer, outputs_index, source, trace, unit_dim
from .base import Loop, Method, MethodRefused, check_acts, check_one_schedule, register

_PASSTHROUGH = (nn.Dropout, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity)


@dataclasses.dataclass
class Unit:
    """A layer of units: producer -> [norm] -> activation -> consumers, found by following tensors."""

    producer: Producer
    norm: nn.Module | None
    activation: Call
    consumers: list[Producer]


def find_units(calls: list[Call]) -> tuple[list[Unit], list[str]]:
    """The recyclable layers of a traced forward pass, and the names of activations that are not recyclable.

    An activation is recyclable when its input is the output of a Linear/Conv (optionally through a norm layer),
    so its incoming weights are known, and its output reaches Linear/Conv layers through pooling, flattening or
    dropout only, so its outgoing weights are known. Modules called more than once are ambiguous and skipped.
    """
    counts: dict[int, int] = {}
    for call in calls:
        counts[id(call.module)] = counts.get(id(call.module), 0) + 1
    by_output = outputs_index(calls)
    units, skipped = [], []
    for position, call in enumerate(calls):
        if not isinstance(call.module, ACTIVATIONS):
            continue
        norm, producer = source(call, by_output)
        reached, consumers = {id(call.output)}, []
        for later in calls[position + 1:]:
            if id(later.input) in reached:
                if isinstance(later.module, _PASSTHROUGH):
                    reached.add(id(later.output))
                elif isinstance(later.module, PRODUCERS):
                    consumers.append(later.module)
        modules = [call.module, norm] + ([producer.module] if producer else []) + consumers
        if (producer is None or not isinstance(producer.module, PRODUCERS) or not consumers
                or any(m is not None and counts[id(m)] > 1 for m in modules)):
            skipped.append(call.name)
            continue
        units.append(Unit(producer.module, norm, call, consumers))
    return units, skipped


def _zero_moments(optimizer: torch.optim.Optimizer | None, param: torch.Tensor, index: torch.Tensor | tuple) -> None:
    """Zero the optimizer's per-element state (Adam moments, SGD momentum) of `param` at `index`."""
    if optimizer is None:
        return
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[index] = 0


@torch.no_grad()
def recycle(unit: Unit, dormant: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    """Re-initialise the incoming weights of the `dormant` units, zero their outgoing weights and their moments."""
    producer, units = unit.producer, dormant.numel()
    fresh = copy.deepcopy(producer)
    fresh.reset_parameters()  # the layer's own initialiser, drawn anew
    for name in ("weight", "bias"):
        param = getattr(producer, name)
        if param is not None:
            param[dormant] = getattr(fresh, name)[dormant]
            _zero_moments(optimizer, param, dormant)
    norm = unit.norm
    if norm is not None:
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            tensor = getattr(norm, name, None)
            if tensor is not None and tensor.shape == (units,):
                tensor[dormant] = value
                if isinstance(tensor, nn.Parameter):
                    _zero_moments(optimizer, tensor, dormant)
    for consumer in unit.consumers:
        weight = consumer.weight
        fan_in = weight.shape[1]
        if fan_in % units:
            raise InvalidInput(f"ReDo cannot map {units} units onto {consumer} (fan-in {fan_in})")
        # Input features of a flattened (C, H, W) map are channel-major: unit c owns a block of fan_in / C.
        columns = dormant.repeat_interleave(fan_in // units)
        index = (slice(None), columns)
        weight[index] = 0
        _zero_moments(optimizer, weight, index)


@register
@dataclasses.dataclass(eq=False)
class ReDo(Method):
    """ReDo: units whose score mean|h_i| / mean_j mean|h_j| is <= tau are recycled.

    Sokar, Agarwal, Castro & Evci, ICML 2023 (arXiv:2302.12902). A recycled unit gets freshly initialised incoming
    weights (and a reset norm entry), zeroed outgoing weights, and zeroed optimizer moments for all of those,
    keyed by parameter. Scores come from the last training batch. The paper uses tau in 0.0 / 0.025 / 0.1.
    Unlike the paper's public code (which writes into masked copies and changes nothing), this really resets.
    """

    name = "redo"
    paper = "Sokar et al., ICML 2023, arXiv:2302.12902"
    counters = ("scans", "recycled_units")
    exclusive_settings = (("every_epochs", "every_steps"),)  # setting one alone unsets the other
    tau: float = 0.1                 # dormancy threshold on the normalised score
    every_epochs: int | None = 1     # recycle at the end of every this many epochs
    every_steps: int | None = None   # or after every this many optimizer steps

    def __post_init__(self) -> None:
        if not self.tau >= 0:
            raise InvalidInput(f"tau must be >= 0 (the paper uses 0.0, 0.025, 0.1), got {self.tau!r}")
        check_one_schedule(self, "every_epochs", "every_steps")

    def check_loop(self, loop: Loop) -> None:
        check_acts(self, loop, self.every_steps, self.every_epochs)

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.steps = 0
        self.last_inputs: torch.Tensor | None = None
        self.recycled: dict[str, int] = {}  # units recycled at the last application, by activation name
        self._warned = False

    def check_model(self, inputs: torch.Tensor) -> None:
        units, skipped = find_units(trace(self.model, inputs))
        if not units:
            seen = ("it saw these activations, but not the Linear/Conv layers before and after each: "
                    f"{', '.join(skipped)}" if skipped
                    else "it saw no activation module (nn.ReLU, ...) and no functional activation (F.relu, "
                    "torch.relu, x.relu(), ...)")
            raise MethodRefused(f"ReDo found nothing to recycle in {type(self.model).__name__}: {seen}. ReDo needs "
                                "Linear/Conv -> [norm] -> activation -> Linear/Conv, each module called once")

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        self.steps += 1
        self.last_inputs = inputs
        if self.every_steps is not None and self.steps % self.every_steps == 0:
            self.apply(inputs, optimizer)

    def on_epoch_end(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if self.every_epochs is not None and (epoch + 1) % self.every_epochs == 0 and self.last_inputs is not None:
            self.apply(self.last_inputs, optimizer)

    def apply(self, inputs: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
        """Score the units on `inputs` and recycle the dormant ones now; returns how many, per layer."""
        calls = trace(self.model, inputs)
        units, skipped = find_units(calls)
        by_output = outputs_index(calls)
        if skipped and not self._warned:
            warnings.warn(f"ReDo leaves these activations alone (incoming or outgoing weights not identifiable): "
                          f"{', '.join(skipped)}", stacklevel=2)
            self._warned = True
        self.recycled = {}
        for unit in units:
            dormant = unit_scores(unit.activation.output, unit_dim(unit.activation, by_output)) <= self.tau
            self.recycled[unit.activation.name] = int(dormant.sum())
            if dormant.any():
                recycle(unit, dormant, optimizer)
        self.counts["scans"] += 1
        self.counts["recycled_units"] += sum(self.recycled.values())
        return self.recycled

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps = int(state["steps"])
