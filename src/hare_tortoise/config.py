"""The typed, validated configuration of one run, and `key=value` overrides parsed against it."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import types
import typing

from . import data, methods, sinks
from .data import streams
from .errors import InvalidInput
from .nn import models


class ConfigError(InvalidInput):
    """A configuration value that is unknown, of the wrong type or out of range; the message says what is allowed."""


class JsonConfig:
    """JSON round trip for config dataclasses (tuples come back as tuples), and the checks every config shares."""

    if typing.TYPE_CHECKING:  # what the config dataclasses that mix this in define (not fields of their own)
        __dataclass_fields__: typing.ClassVar[dict[str, dataclasses.Field]]
        seed: int
        log: tuple[str, ...]

    def settings_classes(self) -> dict[str, tuple[str, type]]:
        """Settings groups set as PREFIX.NAME=VALUE: prefix -> (attribute, dataclass of the settings)."""
        raise NotImplementedError

    def check_common(self) -> None:
        """Refuse a seed torch cannot take and any number that is not finite, including the settings groups'."""
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for attr, _ in self.settings_classes().values():
            prefix = attr.removesuffix("_settings")
            values.update({f"{prefix}.{k}": v for k, v in getattr(self, attr).items()})
        for key, value in values.items():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, float) and not math.isfinite(item):
                    raise ConfigError(f"{key} must be a finite number, got {item!r}")
        sinks.check(self.log)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def completed(cls, stored: dict) -> dict:
        """A stored config dict with the fields added since it was written filled in at their defaults (what ran)."""
        return {**json.loads(cls().to_json()), **stored}

    @classmethod
    def from_dict(cls, values: dict):
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config keys {', '.join(sorted(unknown))}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in values.items()})


@dataclasses.dataclass
class Config(JsonConfig):
    """Everything one run needs. Defaults are the paper's CIFAR-10 training settings (docs/METHODS.md)."""

    # data
    dataset: str = "cifar10"            # one of `hare-tortoise list datasets`
    data_dir: str | None = None         # where to look for data files (then $HARE_TORTOISE_DATA, then defaults)
    train_size: int | None = None       # mnist1d: training samples generated; others: a fixed random training subset
    test_size: int | None = None        # mnist1d: test samples generated; others: the full test set
    augment: bool = False               # random crop (4-pixel padding) and horizontal flip, images only
    # protocol
    protocol: str = "warm_start"        # `hare-tortoise list protocols`
    epochs: int = 100                   # B: the cold-start budget; phases derive theirs from it (docs/METHODS.md)
    warm_fraction: float = 0.1          # warm_start / ash_adams: share of the training set in phase 1
    warm_noise: float = 0.5             # warm_start: share of phase-1 labels replaced by a different class
    chunks: int = 10                    # continual: number of chunks
    chunk_fraction: float = 0.1         # continual: share of the training set in each new chunk
    noise_schedule: tuple[float, ...] = streams.PAPER_NOISE_SCHEDULE  # continual: label noise of each chunk
    memory: str = "accumulate"          # continual: 'accumulate' earlier chunks, or 'replay' a buffer of them
    replay_size: int = 5000             # continual with replay: earlier samples kept, drawn uniformly
    tasks: int = 10                     # permuted_inputs / shuffled_labels / random_labels: number of tasks
    task_size: int = 1000               # random_labels: the training samples every task relabels
    first_classes: int = 2              # class_incremental: classes of the first task
    classes_per_task: int = 2           # class_incremental: classes each later task adds
    # model
    model: str = "resnet18"             # one of `hare-tortoise list models`
    width: int | None = None            # the model's width (None: its default)
    depth: int | None = None            # mlp: its hidden layers (None: 2); other models have no depth setting
    norm: str | None = None             # batch, layer or none (None: the model's default)
    activation: str = "relu"            # relu or crelu
    # optimisation: AdamW, rebuilt at every phase, linear warm-up then constant learning rate
    lr: float = 1e-3                    # AdamW learning rate (after the warm-up)
    weight_decay: float = 1e-3          # AdamW's decoupled weight decay
    batch_size: int = 256               # training samples per optimizer step
    grad_clip: float | None = 0.5       # global gradient-norm clip (None: off)
    warmup_fraction: float = 0.1        # share of each phase's steps with a linear warm-up from 0
    # method
    method: str = "base"                # one of `hare-tortoise list methods`
    method_settings: dict = dataclasses.field(default_factory=dict)  # set as method.NAME=VALUE
    ema_shadow: float | None = None     # momentum of an evaluation-only EMA of the trained network (never fed back)
    # evaluation
    eval_every: int = 1                 # evaluate every this many epochs (and always at the last epoch of a phase)
    checkpoint_every_seconds: float = 30.0  # a checkpoint after the first epoch that ends this long after the last
    #                                     one, and at every phase end (0: after every epoch); results do not
    #                                     depend on it
    probe_size: int = 512               # training samples on which plasticity metrics are measured at phase ends
    task_test_size: int | None = 500    # task sequences: test samples per task, in test_acc and the matrix (None: all)
    matrix_tasks: int | None = 5        # task sequences: earlier tasks tested after each one, spread evenly (None: all)
    # execution
    seed: int = 0                       # seeds the model, the data order, the label noise and the methods
    device: str = "auto"                # auto (cuda if available), cpu, cuda, cuda:N
    compile: bool = False               # torch.compile the model (pays off on GPUs, rarely on CPU)
    bf16: bool = True                   # bf16 autocast of forward passes on CUDA (weights stay float32); CPU: float32
    log: tuple[str, ...] = ()           # metrics sinks besides metrics.jsonl: tensorboard, wandb (offline)

    def validate(self) -> Config:
        """Check every value; raise ConfigError naming the first bad one and what is allowed."""
        self.check_common()
        choices: dict[str, list] = {"dataset": data.available(), "protocol": sorted(streams.PROTOCOLS),
                                    "model": models.available(),
                                    "method": methods.available(), "memory": ["accumulate", "replay"],
                                    "activation": ["relu", "crelu"], "norm": [None, "batch", "layer", "none"]}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of: {', '.join(map(str, allowed))}")
        positive = ["epochs", "chunks", "tasks", "batch_size", "eval_every", "probe_size", "lr", "replay_size",
                    "task_size", "first_classes", "classes_per_task"]
        for key in positive + ["train_size", "test_size", "width", "depth", "task_test_size", "matrix_tasks"]:
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"{key} must be > 0, got {value!r}")
        for key in ("warm_fraction", "chunk_fraction"):
            if not 0 < getattr(self, key) <= 1:
                raise ConfigError(f"{key} must be in (0, 1], got {getattr(self, key)!r}")
        for key in ("warm_noise", "warmup_fraction"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {getattr(self, key)!r}")
        if any(not 0 <= r < 1 for r in self.noise_schedule) or len(self.noise_schedule) != self.chunks:
            raise ConfigError(f"noise_schedule needs {self.chunks} values (one per chunk) in [0, 1), got "
                              f"{self.noise_schedule!r}")
        if self.checkpoint_every_seconds < 0:
            raise ConfigError(f"checkpoint_every_seconds must be >= 0, got {self.checkpoint_every_seconds!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be > 0 (or none), got {self.grad_clip!r}")
        if self.data_dir is not None and not pathlib.Path(self.data_dir).expanduser().is_dir():
            raise ConfigError(f"data_dir={self.data_dir} does not exist (or is not a folder); give the folder that "
                              "holds the data files, or leave data_dir out to use the defaults")
        if self.ema_shadow is not None and not 0 <= self.ema_shadow < 1:
            raise ConfigError(f"ema_shadow must be a momentum in [0, 1) or none, got {self.ema_shadow!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        try:
            methods.create(self.method, **self.method_settings)
        except (ValueError, TypeError) as error:
            raise ConfigError(str(error)) from None
        return self

    def settings_classes(self) -> dict[str, tuple[str, type]]:
        return {"method": ("method_settings", methods.get(self.method))}


def _parse(text: str, annotation, key: str):
    """`text` as a value of type `annotation` (bool, int, float, str, tuples of floats, optionals of those)."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        return _parse(text, next(a for a in args if a is not type(None)), key)
    if typing.get_origin(annotation) is typing.Literal:
        if text not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}, got {text!r}")
        return text
    if typing.get_origin(annotation) is tuple:  # 0.5,0.2 or [0.5,0.2] (the form a sweep needs)
        return tuple(_parse(part, args[0], key) for part in text.strip("[]").split(",") if part)
    if annotation is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {text!r}")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            kind = "an integer" if annotation is int else "a number"
            raise ConfigError(f"{key} must be {kind}, got {text!r}") from None
    return text


def apply_overrides(config, overrides: list[str]):
    """A copy of `config` (any config dataclass) with `key=value` overrides applied. `PREFIX.NAME=VALUE` sets a
    setting of a settings group (`method.` for the method; `agent.` for an RL agent), typed by its dataclass."""
    hints = typing.get_type_hints(type(config))
    groups = {attr for attr, _ in config.settings_classes().values()}
    plain = [item.partition("=") for item in overrides]
    seen: dict[str, str] = {}
    for item, (key, sep, _) in zip(overrides, plain):
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key in seen:
            raise ConfigError(f"{key} is given twice ({seen[key]}, {item}): give it once")
        seen[key] = item
    changes = {}
    valid = (", ".join(sorted(set(hints) - groups)) + ", "
             + ", ".join(f"{p}.<setting>" for p in config.settings_classes()))
    for key, _, text in plain:
        if "." not in key:
            if key not in hints or key in groups:
                raise ConfigError(f"unknown key {key!r}; valid keys: {valid}")
            changes[key] = _parse(text, hints[key], key)
    config = dataclasses.replace(config, **changes)
    classes = config.settings_classes()
    updated = {attr: dict(getattr(config, attr)) for attr, _ in classes.values()}
    for key, _, text in plain:
        if "." in key:
            prefix, _, name = key.partition(".")
            if prefix not in classes:
                raise ConfigError(f"unknown key {key!r}; valid keys: {valid}")
            attr, settings_class = classes[prefix]
            types_ = typing.get_type_hints(settings_class)
            known = {f.name: types_[f.name] for f in dataclasses.fields(settings_class)}
            if name not in known:
                raise ConfigError(f"{prefix} {getattr(config, prefix)!r} has no setting {name!r}; its settings: "
                                  f"{', '.join(sorted(known)) or 'none'}")
            updated[attr][name] = _parse(text, known[name], key)
            # of two settings of which exactly one is set (a schedule in epochs or in steps), setting one alone
            # switches to it: its partner is unset unless it is given too
            for pair in getattr(settings_class, "exclusive_settings", ()):
                if name in pair:
                    partner = pair[1 - pair.index(name)]
                    if f"{prefix}.{partner}" not in seen:
                        updated[attr][partner] = None
    return dataclasses.replace(config, **updated)
