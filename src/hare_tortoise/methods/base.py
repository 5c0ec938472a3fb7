"""The hook protocol every plasticity method implements, and the registry that names them.

A method is a small object whose hooks a training loop calls at fixed points; the loop knows no method by name.
Every loop of this library (the supervised `Trainer`, the RL loop) and your own one give the hooks one meaning:

- a **phase** is a task: each phase of a supervised protocol (the two halves of a warm start, each chunk of the
  continual protocol); in RL, one game (an Atari-100k run has one phase; a game sequence, one per game played);
- an **epoch** is one pass over a phase's training data; in RL, a fixed number of agent steps that the run's
  config names (`epoch_steps`);
- a **step** is one optimizer step (in RL, one update of the online network);
- `optimizer_overrides()["weight_decay"]` is decoupled weight decay (AdamW's, theta <- theta - lr * wd * theta
  before the update) in every loop, whatever the optimizer.

Before the run a loop shows the method what it will run (`check_loop(Loop(...))`): a method that would never act
there, or cannot act there, raises `MethodRefused` saying what would work, before anything is written. During the
run each method keeps counters of what it did (`counts`: resets, recycled units, perturbations, ...), which the
loops write into every metrics row as `method/<name>`.

In your own loop (every hook is optional to override, and a no-op by default):

```python
method = methods.create("hare_tortoise")
method.check_loop(Loop("my loop", phase_epochs=(100, 100), steps=20_000))  # refuses a schedule that never acts
model = method.prepare_model(model)                 # architectural methods change the model here
method.attach(model)                                # remembers initial weights, builds the tortoise, ...
method.check_model(example_inputs)                  # refuses a model it cannot act on (ReDo: nothing to trace)
for phase, data in enumerate(phases):
    optimizer = torch.optim.AdamW(model.parameters(), **{**settings, **method.optimizer_overrides()})
    method.on_phase_data(phase, lambda: iter(data), F.cross_entropy)  # DASH: shrink by the new data's gradient
    method.on_phase_start(phase, optimizer)         # resets between phases (S&P, head reset, full reset)
    for epoch in range(epochs):
        for x, y in data:
            def closure():                          # the full loss and its gradients at the current weights
                optimizer.zero_grad()
                out = model(x)
                loss = F.cross_entropy(out, y) + sum(method.loss_terms(x, out, y).values())
                loss.backward()
                return loss
            closure()
            method.after_backward(closure)          # SAM re-computes the gradient at perturbed weights
            optimizer.step()
            method.after_step(optimizer, x)         # EMA updates, step-scheduled resets, ReDo
        method.on_epoch_end(epoch, optimizer)       # epoch-scheduled resets (H&T), ReDo
    evaluate(method.eval_model())                   # the tortoise for H&T and EMA, else the model
    method.on_phase_end(phase, optimizer)
    print(method.counts)                            # e.g. {'updates': 1200, 'resets': 2}
```
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
from collections.abc import Callable, Iterable
from typing import ClassVar, Literal

import torch
from torch import nn

from ..errors import InvalidInput

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # on_phase_data: a pass over a phase's batches
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]          # (outputs, targets) -> the training loss


class MethodRefused(InvalidInput):
    """A method, or one of its settings, cannot act in the loop it was given; the message says what would work."""


@dataclasses.dataclass(frozen=True)
class Loop:
    """What a training loop is about to run, as far as a method's schedule depends on it (see the module docstring
    for what a phase, an epoch and a step are in each loop)."""

    name: str                      # how a refusal names the run, e.g. "protocol 'cold'" or "this RL run"
    phase_epochs: tuple[int, ...]  # epochs of each phase, in order
    steps: int                     # optimizer steps of the whole run
    outputs: Literal["class_logits", "q_values"] = "class_logits"  # what the model's outputs are
    owns_model: bool = False       # the loop built the model and never moves, casts or saves parts of it: methods
    #                                may lay its tensors out for speed (HareTortoise's share_storage)

    def phases_text(self) -> str:
        """'protocol 'cold' has one phase', for refusals."""
        count = len(self.phase_epochs)
        return f"{self.name} has {'one phase' if count == 1 else f'{count} phases'}"


@dataclasses.dataclass(eq=False)
class Method:
    """Warm start with no intervention (`base`); the base class of all methods, whose settings are dataclass fields."""

    name = "base"
    paper: ClassVar[str] = ""  # the paper it comes from, for listings (`describe`); its docstring cites it in full
    counters: ClassVar[tuple[str, ...]] = ()  # what `counts` counts: the method's actions, by name
    # pairs of settings of which exactly one is set (a schedule in epochs or in steps): an override of one alone
    # unsets the other
    exclusive_settings: ClassVar[tuple[tuple[str, str], ...]] = ()
    # True where the method does to a stacked group of seeds (rl/stacked.py: every parameter holds one slice per
    # seed) what it would do to each seed alone: it treats parameters and optimizer state elementwise, on a schedule
    # the seeds share, and its loss terms are sums of per-seed terms. Not inherited: each class says it itself.
    stackable: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.stackable = cls.__dict__.get("stackable", False)

    @property
    def counts(self) -> dict[str, int]:
        """How often the method acted so far, by counter (cumulative over the run, kept in `state_dict`)."""
        counts = self.__dict__.get("_counts")
        if counts is None:
            counts = self.__dict__["_counts"] = dict.fromkeys(self.counters, 0)
        return counts

    def check_loop(self, loop: Loop) -> None:
        """Raise `MethodRefused` if the method would never act, or cannot act, in `loop`; called before the run."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Return the model to train (before the optimizer exists); architectural methods change it here."""
        return model

    def optimizer_overrides(self) -> dict:
        """Keyword arguments that replace the training loop's optimizer settings (e.g. weight decay)."""
        return {}

    def attach(self, model: nn.Module) -> None:
        """Bind the method to the model it will act on, once, after `prepare_model` and before training."""
        self.model = model

    def check_model(self, inputs: torch.Tensor) -> None:
        """Raise `MethodRefused` if the method cannot act on the attached model; called once after `attach`, before
        the run, with a small batch of the loop's inputs (ReDo checks that it can trace recyclable layers)."""

    def on_phase_data(self, phase: int, batches: Batches, loss: Loss) -> None:
        """Called at the start of every phase of a fresh run, before `on_phase_start`, with the phase's training
        data: `batches()` yields (inputs, targets) over all of it, in order and without augmentation, and `loss`
        is the task loss. The RL loop has no fixed data and does not call it."""

    def on_phase_start(self, phase: int, optimizer: torch.optim.Optimizer) -> None:
        """Called at the start of every phase (task), with that phase's optimizer; phase 0 is the first."""

    def loss_terms(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra scalar loss terms for this batch, by name; the loop adds them to the task loss."""
        return {}

    def after_backward(self, closure: Callable[[], torch.Tensor]) -> None:
        """Called after the gradients exist and before the optimizer step; `closure` recomputes loss and gradients."""

    def after_step(self, optimizer: torch.optim.Optimizer, inputs: torch.Tensor) -> None:
        """Called after every optimizer step, with the batch of inputs that step trained on."""

    def on_epoch_end(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Called after the last step of every epoch; `epoch` counts from 0 within the phase."""

    def on_phase_end(self, phase: int, optimizer: torch.optim.Optimizer) -> None:
        """Called after the last epoch of a phase has been evaluated."""

    def eval_model(self) -> nn.Module:
        """The network whose accuracy the method reports (the tortoise for H&T and EMA)."""
        return self.model

    def state_dict(self) -> dict:
        """What a checkpoint must hold to resume this method exactly: tensors and plain Python values only.
        Subclasses add their own entries to `super().state_dict()`."""
        return {"counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict()` returned (after `attach`)."""
        self.counts.update({name: int(state["counts"][name]) for name in self.counters})

    def hyperparameters(self) -> dict:
        """The method's settings, by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def check_acts(method: Method, loop: Loop, every_steps: int | None, every_epochs: int | None = None,
               first_epoch: int | None = None, setting: str = "every_steps") -> None:
    """Refuse a schedule that never fires in `loop`: every `every_steps` optimizer steps, or at the end of epochs
    `first_epoch`, `first_epoch + every_epochs`, ... of some phase (default first epoch: `every_epochs - 1`)."""
    if every_steps is not None and every_steps > loop.steps:
        raise MethodRefused(f"{method.name} acts every {every_steps} optimizer steps ({setting}), but {loop.name} "
                            f"makes {loop.steps}: it would never act; set method.{setting} to at most {loop.steps}")
    if every_epochs is not None:
        first = every_epochs - 1 if first_epoch is None else first_epoch
        if all(epochs <= first for epochs in loop.phase_epochs):
            raise MethodRefused(f"{method.name} first acts after epoch {first + 1} of a phase, but no phase of "
                                f"{loop.name} has that many epochs (it has {', '.join(map(str, loop.phase_epochs))}): "
                                "it would never act; schedule it in fewer epochs or in optimizer steps")


def check_one_schedule(method: Method, first: str, second: str) -> None:
    """Raise a ValueError unless exactly one of two schedule settings of `method` is set, to an integer >= 1."""
    values = {name: getattr(method, name) for name in (first, second)}
    if sum(value is not None for value in values.values()) != 1:
        raise InvalidInput(f"set exactly one of {first} and {second}, got {values[first]!r} and {values[second]!r}")
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidInput(f"{name} must be an integer >= 1, got {value!r}")


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under its `name`."""
    if cls.name in _REGISTRY:
        raise InvalidInput(f"a method named {cls.name!r} is already registered ({_REGISTRY[cls.name].__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


PLUGIN_GROUP = "hare_tortoise.methods"  # the entry-point group of methods from other packages
_plugins_loaded = False


def load_plugins() -> None:
    """Register the methods that installed packages declare as entry points of `PLUGIN_GROUP` (each names a Method
    subclass, or a module whose import registers its methods); once per process, on first use of the registry, so
    that a sweep's child processes and a report find them too."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            loaded = entry.load()
        except Exception as error:  # a plugin's own bug or a missing dependency of it, not ours: name it
            raise InvalidInput(f"the method plugin {entry.name!r} ({entry.value}, from {PLUGIN_GROUP} entry points) "
                               f"failed to load: {type(error).__name__}: {error}") from None
        if isinstance(loaded, type) and issubclass(loaded, Method) and _REGISTRY.get(loaded.name) is not loaded:
            register(loaded)
        if entry.name not in _REGISTRY:
            raise InvalidInput(f"the method plugin entry point {entry.name!r} ({entry.value}) registered no method "
                               f"named {entry.name!r}: point it at a Method subclass whose name is {entry.name!r}")


def available() -> list[str]:
    """The names of all registered methods, sorted."""
    load_plugins()
    return sorted(_REGISTRY)


def get(name: str) -> type[Method]:
    """The method class registered as `name`."""
    load_plugins()
    if name not in _REGISTRY:
        raise InvalidInput(f"unknown method {name!r}; available methods: {', '.join(available())}")
    return _REGISTRY[name]


def create(name: str, **hyperparameters: object) -> Method:
    """A new method `name` with its defaults, some replaced by `hyperparameters` (unknown names are an error)."""
    cls = get(name)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = set(hyperparameters) - known
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"method {name!r} has no setting {', '.join(sorted(unknown))}; its settings: {allowed}")
    return cls(**hyperparameters)


def describe(name: str) -> str:
    """The first paragraph of the method's docstring, its paper and its default settings, for listings."""
    cls = get(name)
    summary = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
    paper = f" [{cls.paper}]" if cls.paper else ""
    defaults = ", ".join(f"{field.name}={field.default!r}" for field in dataclasses.fields(cls))
    return f"{summary}{paper}" + (f" ({defaults})" if defaults else "")


register(Method)
