"""Continual Backprop: replace the least useful mature units, a few at every step (Dohare et al., Nature 2024)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import InvalidInput
from ..tensors import evaluating
from ..tracing import Producer, outputs_index, trace, unit_dim
from .base import Loop, Method, MethodRefused, register
from .redo import Unit, find_units, recycle


@dataclasses.dataclass
class _Layer:
    """One layer of units and its running statistics, per unit."""

    unit: Unit
    dim: int                      # the dimension of the activation that indexes units
    utility: torch.Tensor         # running contribution utility (not bias-corrected)
    mean_activation: torch.Tensor  # running mean activation (not bias-corrected), moved into the next bias on reset
    ages: torch.Tensor            # steps since the unit was (re)made
    owed: float = 0.0             # replacements accumulated and not yet made (replacement_rate x eligible per step)
    seen: tuple[torch.Tensor, torch.Tensor] | None = None  # the last training forward's mean |h| and mean h


def _outgoing(consumer: Producer, units: int) -> torch.Tensor:
    """The consumer's weights grouped by unit, (outputs, units, entries per unit): a Linear's columns (a flattened
    (C, H, W) map gives each channel a block) or a convolution's input channel and its kernel positions."""
    weight = consumer.weight
    return weight.reshape(weight.shape[0], units, -1)


@register
@dataclasses.dataclass(eq=False)
class ContinualBackprop(Method):
    """Continual Backprop (CBP): after every optimizer step, replace a few mature, low-utility hidden units.

    Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton, "Loss of plasticity in deep continual learning",
    Nature 632, 2024 (their generate-and-test, `lop/algos/gnt.py`). Per unit a running utility
    u <- d u + (1 - d) mean|h| x mean|w_out| (the "contribution" utility: the unit's mean absolute activation on the
    step's batch times the mean magnitude of its outgoing weights), bias-corrected by 1 - d^age as in Adam. Each step
    a layer owes replacement_rate x (its units older than maturity_threshold steps) replacements; whenever that
    reaches one, the eligible units of lowest corrected utility are replaced: fresh incoming weights from the layer's
    own initialiser, the norm entry between reset (scale 1, shift 0, running statistics 0 / 1), outgoing weights
    zero, and the optimizer moments of all of those zero; the unit's mean contribution (running mean activation,
    corrected, times its outgoing weights) moves into the next layer's bias so that the output barely changes, and
    its utility, mean and age start again from 0. Linear and convolutional layers, with or without a norm layer
    before the activation (units found as ReDo finds them). Authors' settings: permuted MNIST replacement_rate 1e-4
    (1e-5, 1e-6), maturity 100; incremental CIFAR-100 1e-5, maturity 1000. torch's Adam counts one step per tensor,
    not per entry, so a replaced unit's moments restart at zero under the tensor's bias correction.
    """

    name = "cbp"
    paper = "Dohare et al., Nature 632, 2024"
    counters = ("recycled_units",)
    replacement_rate: float = 1e-4  # replacements owed per eligible unit and step
    maturity_threshold: int = 100   # steps a unit must have lived before it can be replaced
    decay_rate: float = 0.99        # of the running utility and mean activation

    def __post_init__(self) -> None:
        if not 0 < self.replacement_rate < 1:
            raise InvalidInput(f"replacement_rate must be in (0, 1) (the authors use 1e-4 to 1e-6), got "
                               f"{self.replacement_rate!r}")
        if not (isinstance(self.maturity_threshold, int) and self.maturity_threshold >= 0):
            raise InvalidInput(f"maturity_threshold must be an integer >= 0, got {self.maturity_threshold!r}")
        if not 0 <= self.decay_rate < 1:
            raise InvalidInput(f"decay_rate must be in [0, 1) (the authors use 0.99), got {self.decay_rate!r}")

    def check_loop(self, loop: Loop) -> None:
        if loop.steps <= self.maturity_threshold:
            raise MethodRefused(f"cbp replaces units older than maturity_threshold={self.maturity_threshold} steps, "
                                f"but {loop.name} makes {loop.steps}: it would never act; set "
                                f"method.maturity_threshold below {loop.steps}")

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        self.layers: list[_Layer] | None = None  # found at the first step, from its batch
        self._pending: list[dict] | None = None  # a checkpoint's layers, restored once they are found
        self._handles: list[RemovableHandle] = []

    def check_model(self, inputs: torch.Tensor) -> None:
        """Find the layers of units on `inputs` (the library's loops call this before the run; in a loop of your
        own the first step's batch does it, and that step's statistics are not counted)."""
        self._find_layers(inputs)
        if not self.layers:
            raise MethodRefused(f"cbp found no hidden units in {type(self.model).__name__}: it needs Linear/Conv -> "
                                "[norm] -> activation -> Linear/Conv, each module called once")

    def _find_layers(self, inputs: torch.Tensor) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        with evaluating(self.model):  # in eval mode: no dropout draw moves the random stream
            calls = trace(self.model, inputs)
        units, _ = find_units(calls)
        by_output = outputs_index(calls)
        layers = self.layers = []
        for unit in units:
            dim = unit_dim(unit.activation, by_output)
            count = unit.activation.output.shape[dim]
            device = unit.producer.weight.device
            layer = _Layer(unit, dim, torch.zeros(count, device=device), torch.zeros(count, device=device),
                           torch.zeros(count, device=device))
            layers.append(layer)
            # the activation's input comes out of the norm (or the producer): recompute h there, out of place
            activation = copy.copy(unit.activation.module)
            if hasattr(activation, "inplace"):
                activation.inplace = False  # type: ignore[assignment]  # nn.Module's annotation of attributes
            self._handles.append((unit.norm or unit.producer).register_forward_hook(self._recorder(layer, activation)))
        if self._pending is not None:
            self._restore(layers, self._pending)

    def _restore(self, layers: list[_Layer], states: list[dict]) -> None:
        for layer, state in zip(layers, states):
            layer.utility.copy_(state["utility"])
            layer.mean_activation.copy_(state["mean_activation"])
            layer.ages.copy_(state["ages"])
            layer.owed = float(state["owed"])
        self._pending = None

    @staticmethod
    def _recorder(layer: _Layer, activation: nn.Module) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if module.training and torch.is_grad_enabled():  # training forwards only, not evaluation or acting
                with torch.no_grad():
                    h = activation(output.detach())
                    dims = [d for d in range(h.dim()) if d != layer.dim % h.dim()]
                    layer.seen = (h.abs().mean(dims), h.mean(dims))
        return record

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        if self.layers is None:
            self._find_layers(inputs)
            return  # this step's forward ran before the hooks
        decay = self.decay_rate
        for layer in self.layers:
            if layer.seen is None:
                continue
            magnitude, mean = layer.seen
            units = len(layer.ages)
            outgoing = torch.cat([_outgoing(c, units).abs().transpose(0, 1).reshape(units, -1)
                                  for c in layer.unit.consumers], dim=1).mean(1)
            layer.ages += 1
            layer.utility.mul_(decay).add_((1 - decay) * magnitude * outgoing)
            layer.mean_activation.mul_(decay).add_((1 - decay) * mean)
            eligible = (layer.ages > self.maturity_threshold).nonzero().flatten()
            layer.owed += self.replacement_rate * len(eligible)
            count = int(layer.owed)
            if count == 0:
                continue
            layer.owed -= count
            correction = 1 - decay ** layer.ages[eligible]
            lowest = torch.topk(-(layer.utility[eligible] / correction), min(count, len(eligible))).indices
            self.replace(layer, eligible[lowest], optimizer)

    def replace(self, layer: _Layer, chosen: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Replace the units `chosen` (indices) of `layer` now (see the class docstring)."""
        units = len(layer.ages)
        contribution = layer.mean_activation[chosen] / (1 - self.decay_rate ** layer.ages[chosen])
        for consumer in layer.unit.consumers:
            if consumer.bias is not None:  # before recycle zeroes the outgoing weights
                consumer.bias += _outgoing(consumer, units)[:, chosen].sum(2) @ contribution
        mask = torch.zeros(units, dtype=torch.bool, device=chosen.device)
        mask[chosen] = True
        recycle(layer.unit, mask, optimizer)
        for tensor in (layer.utility, layer.mean_activation, layer.ages):
            tensor[chosen] = 0
        self.counts["recycled_units"] += len(chosen)

    def state_dict(self) -> dict:
        if self.layers is None:
            return {**super().state_dict(), "layers": self._pending or []}
        return {**super().state_dict(), "layers": [
            {"utility": layer.utility.clone(), "mean_activation": layer.mean_activation.clone(),
             "ages": layer.ages.clone(), "owed": layer.owed} for layer in self.layers]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.layers is None:
            self._pending = state["layers"] or None  # restored once the layers are found
        else:
            self._restore(self.layers, state["layers"])
