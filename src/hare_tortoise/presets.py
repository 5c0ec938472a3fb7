"""Named experiment settings: the paper's (CIFAR-10, CIFAR-100, Tiny-ImageNet) and ones this machine can run, and
their resolution into one run's config (`resolve`: preset, method, seed, overrides), shared by `run` and `sweep`.

H&T's momentum and reset interval are counted in optimizer steps, so on smaller data they must be rescaled.
On CIFAR-10 phase 2 the paper resets every 10 epochs x 196 steps = 1,960 steps with an EMA time constant
1 / (1 - 0.999) = 1,000 steps: a ratio of 0.51. The small presets keep that ratio (`ema_momentum_for`); copying
m = 0.999 onto a 63-steps-per-epoch dataset would leave the Tortoise far behind the Hare.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import methods
from .config import Config, ConfigError, apply_overrides
from .errors import InvalidInput
from .rl.config import RLConfig, game_id

PAPER_EMA_STEPS = 1 / (1 - 0.999)   # 1,000 steps
PAPER_RESET_STEPS = 10 * 196        # 10 epochs of CIFAR-10 (50,000 / 256 steps)


def ema_momentum_for(reset_steps: int) -> float:
    """The momentum whose time constant keeps the paper's ratio to a reset interval of `reset_steps` steps."""
    return 1 - 1 / (PAPER_EMA_STEPS / PAPER_RESET_STEPS * reset_steps)


@dataclasses.dataclass
class Preset:
    name: str
    description: str
    config: dict                                                    # Config fields
    method_defaults: dict[str, dict] = dataclasses.field(default_factory=dict)  # settings for a chosen method
    measured: str = ""  # wall time of one run as measured on this project's 2-core CPU machine, with the date
    kind: str = "supervised"  # or "rl": config holds RLConfig fields


def _averaging(momentum: float, reset_every_epochs: int | None = None, crelu_scope: str = "head") -> dict[str, dict]:
    """The same momentum for every method built on an EMA; H&T also gets its reset interval. CReLU acts on the
    head (as the paper's code) where the head has a hidden layer, and everywhere where it has none (the MLP)."""
    settings: dict[str, dict] = {"ema": {"momentum": momentum}, "self_distill": {"momentum": momentum},
                                 "hare_tortoise": {"momentum": momentum}, "crelu": {"scope": crelu_scope}}
    if reset_every_epochs is not None:
        settings["hare_tortoise"]["reset_every_epochs"] = reset_every_epochs
    return settings


PAPER_SETTINGS: dict[str, tuple[dict, str]] = {  # the paper's models and optimiser settings (docs/METHODS.md)
    "cifar10": ({"dataset": "cifar10", "model": "resnet18", "lr": 1e-3, "weight_decay": 1e-3}, "ResNet-18"),
    "cifar100": ({"dataset": "cifar100", "model": "vit_tiny", "lr": 3e-3, "weight_decay": 0.05}, "ViT-Tiny"),
    "tiny_imagenet": ({"dataset": "tiny_imagenet", "model": "vgg16", "lr": 1e-3, "weight_decay": 1e-3}, "VGG-16"),
}
TRAIN_SAMPLES = {"cifar10": 50_000, "cifar100": 50_000, "tiny_imagenet": 100_000, "fashion_mnist": 60_000,
                 "mnist1d": 4000, "imagefolder": 130_000}  # imagefolder: as ImageNet-100, 100 classes of ~1,300
CLASSES = {"cifar100": 100, "tiny_imagenet": 200, "imagefolder": 100}  # the others have 10
PAPER_PROTOCOLS: dict[str, tuple[dict, str]] = {
    "cold": ({"protocol": "cold"}, "cold start on the full clean set, 100 epochs"),
    "warm": ({"protocol": "warm_start"}, "warm start: 10% with 50% noise for 1000 epochs, then 100% for 111"),
    "warm-aug": ({"protocol": "warm_start", "augment": True}, "warm start with crop+flip augmentation"),
    "continual": ({"protocol": "continual", "augment": True},
                  "continual: 10 chunks, accumulating, paper noise schedule"),
    "continual-replay": ({"protocol": "continual", "augment": True, "memory": "replay", "replay_size": 5000},
                         "continual with a 5,000-sample replay buffer"),
}

PRESETS: dict[str, Preset] = {}
for dataset, (settings, model) in PAPER_SETTINGS.items():
    for suffix, (protocol, what) in PAPER_PROTOCOLS.items():
        name = f"{dataset}-{suffix}"
        PRESETS[name] = Preset(name, f"paper scale: {dataset} / {model}, {what}",
                               {**settings, **protocol, "epochs": 100, "batch_size": 256},
                               _averaging(0.999, 10))

# (a) MNIST-1D, 16,000 / 10,000 samples: 63 steps per epoch in phase 2; a reset every 5 epochs = 315 steps gives
# ema_momentum_for(315) = 0.9938, rounded to 0.995 (time constant 200 steps).
MNIST1D = {"dataset": "mnist1d", "train_size": 16000, "test_size": 10000, "model": "mlp", "width": 256,
           "norm": "batch", "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 256, "epochs": 50, "eval_every": 5}
# (b) Fashion-MNIST, a fixed 10,000-image subset: 40 steps per epoch; a reset every 2 epochs = 80 steps gives
# ema_momentum_for(80) = 0.9755, rounded to 0.975.
FASHION = {"dataset": "fashion_mnist", "train_size": 10000, "model": "cnn", "width": 16, "norm": "batch",
           "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 256, "epochs": 20, "eval_every": 5}

for name, config, what, measured in [
    ("mnist1d-cold", {**MNIST1D, "protocol": "cold", "ema_shadow": 0.995},
     "cold start, with an evaluation-only EMA shadow", "14-17 s (make demo, seeds 1-3, 2026-11-23)"),
    ("mnist1d-warm", {**MNIST1D, "protocol": "warm_start"}, "warm start (500 + 55 epochs)",
     "33-49 s per method (make demo, seeds 1-3, 2026-11-23)"),
    ("mnist1d-warm-aug", {**MNIST1D, "protocol": "warm_start", "augment": True},
     "warm start with augmentation (random shifts of up to 4 samples)", ""),
    ("mnist1d-cold-aug", {**MNIST1D, "protocol": "cold", "augment": True, "ema_shadow": 0.995},
     "cold start with augmentation, with an evaluation-only EMA shadow", ""),
    ("mnist1d-continual", {**MNIST1D, "protocol": "continual", "epochs": 20}, "continual, 10 chunks of 20 epochs", ""),
    ("mnist1d-continual-aug", {**MNIST1D, "protocol": "continual", "epochs": 20, "augment": True},
     "continual with augmentation, as the paper runs it (docs/METHODS.md)", ""),
]:
    PRESETS[name] = Preset(name, f"this machine: MNIST-1D / MLP 40-256-256-10, {what}", config,
                           _averaging(0.995, 5, crelu_scope="all"), measured)

for name, config, what, measured in [
    ("fashion-cold", {**FASHION, "protocol": "cold", "ema_shadow": 0.975},
     "cold start, with an evaluation-only EMA shadow", "613 s on one thread, seed 1, 2026-11-23"),
    ("fashion-warm", {**FASHION, "protocol": "warm_start"}, "warm start (200 + 22 epochs)",
     "1,127 s (base) and 1,514 s (hare_tortoise) on one thread, seed 1, 2026-11-23"),
    ("fashion-warm-aug", {**FASHION, "protocol": "warm_start", "augment": True}, "warm start with augmentation", ""),
    ("fashion-continual", {**FASHION, "protocol": "continual", "augment": True, "epochs": 10},
     "continual, 10 chunks of 10 epochs", ""),
]:
    PRESETS[name] = Preset(name, f"this machine: Fashion-MNIST (10,000 images) / CNN 16-16-32-32-fc128, {what}",
                           config, _averaging(0.975, 2), measured)

# Long task sequences (docs/CONTINUAL.md). Tasks of one epoch are too short for an epoch-counted reset, so H&T resets
# by steps at the presets' ratio: MNIST-1D 315 steps (m = 0.995), Fashion-MNIST 80 steps (m = 0.975).
def _by_steps(momentum: float, reset_steps: int, crelu_scope: str = "all") -> dict[str, dict]:
    settings = _averaging(momentum, crelu_scope=crelu_scope)
    settings["hare_tortoise"].update(reset_every_epochs=None, reset_every_steps=reset_steps)
    return settings


FASHION_MLP = {**FASHION, "model": "mlp", "width": 256}
for name, config, what, settings in [
    ("mnist1d-permuted-long", {**MNIST1D, "protocol": "permuted_inputs", "tasks": 200, "epochs": 1},
     "MNIST-1D / MLP 40-256-256-10, 200 tasks of permuted inputs, one epoch each", _by_steps(0.995, 315)),
    ("mnist1d-random-labels-long", {**MNIST1D, "protocol": "random_labels", "tasks": 200, "task_size": 1000,
                                    "epochs": 20},
     "MNIST-1D / MLP 40-256-256-10, 200 tasks of 1,000 samples with random labels, 20 epochs each",
     _by_steps(0.995, 315)),
    ("fashion-permuted-long", {**FASHION_MLP, "protocol": "permuted_inputs", "tasks": 200, "epochs": 1},
     "Fashion-MNIST (10,000 images) / MLP 784-256-256-10, 200 tasks of permuted pixels, one epoch each",
     _by_steps(0.975, 80)),
    ("fashion-class-incremental", {**FASHION, "protocol": "class_incremental", "first_classes": 2,
                                   "classes_per_task": 2, "epochs": 20},
     "Fashion-MNIST (10,000 images) / CNN 16-16-32-32-fc128, 2 classes then 2 more per task (5 tasks of 20 epochs)",
     _averaging(0.975, 2)),
]:
    PRESETS[name] = Preset(name, f"this machine: {what}", config, settings)

# the same sequences at the scale of Dohare et al. (Nature 2024): online permuted MNIST (800 tasks of 60,000 images
# seen once, an MLP of 3 hidden layers of 2,000) on Fashion-MNIST, and class-incremental CIFAR-100 (ResNet-18, 5
# classes then 5 more every 200 epochs), with this library's recipe (AdamW, batch 256)
PRESETS["fashion-permuted-paper"] = Preset(
    "fashion-permuted-paper",
    "Dohare et al.'s scale: Fashion-MNIST (60,000) / MLP 784-2000-2000-2000-10, 800 permuted tasks of one epoch",
    {**FASHION_MLP, "train_size": None, "width": 2000, "depth": 3, "protocol": "permuted_inputs", "tasks": 800,
     "epochs": 1},
    _by_steps(0.999, 1960))
PRESETS["cifar100-class-incremental"] = Preset(
    "cifar100-class-incremental",
    "Dohare et al.'s scale: CIFAR-100 / ResNet-18, 5 classes then 5 more every 200 epochs",
    {"dataset": "cifar100", "model": "resnet18", "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 256,
     "protocol": "class_incremental", "first_classes": 5, "classes_per_task": 5, "epochs": 200, "augment": True},
    _averaging(0.999, 10))

# an image folder (ImageNet-100 at 64 x 64 pixels, say) at the paper's scale: ResNet-18, the warm start, H&T's reset
# every 1,960 steps with m = 0.999 as on CIFAR-10 (an epoch of ImageNet-100 is ~500 steps, not 196)
PRESETS["imagefolder-warm"] = Preset(
    "imagefolder-warm", "paper-scale protocol on an image folder (--data-dir ROOT, e.g. ImageNet-100 at 64 px) / "
    "ResNet-18, warm start: 10% with 50% noise for 1000 epochs, then 100% for 111",
    {"dataset": "imagefolder", "model": "resnet18", "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 256,
     "protocol": "warm_start", "epochs": 100}, _by_steps(0.999, 1960, crelu_scope="head"))

PRESETS["smoke"] = Preset(
    "smoke", "seconds: tiny MNIST-1D warm start for the tests",
    {"dataset": "mnist1d", "train_size": 200, "test_size": 100, "model": "mlp", "width": 32, "protocol": "warm_start",
     "epochs": 2, "batch_size": 32, "probe_size": 64, "lr": 1e-2},
    {**_averaging(0.9, 2, crelu_scope="all"), "reset": {"every_steps": 10},  # 34 steps: the RL reset acts 3 times
     "cbp": {"maturity_threshold": 5, "replacement_rate": 0.05}})


# RL: m = 0.995 is BBF's target EMA (tau 0.005); a reset every 20,000 updates is BBF's reset period. Our choice:
# the paper's agent settings are not public (docs/RL.md). Shrink & Perturb as BBF: halfway toward a fresh
# initialisation, every 20,000 updates.
RL_METHODS: dict[str, dict] = {
    "hare_tortoise": {"momentum": 0.995, "reset_every_epochs": None, "reset_every_steps": 20_000},
    "ema": {"momentum": 0.995}, "self_distill": {"momentum": 0.995},
    "redo": {"every_epochs": None, "every_steps": 1000}, "crelu": {"scope": "all"},
    "shrink_perturb": {"toward": "fresh", "alpha": 0.5, "every_steps": 20_000},
    "shrink_perturb_noise": {"every_steps": 20_000}, "head_reset": {"every_steps": 20_000},
    "full_reset": {"every_steps": 20_000},
    # one injection a quarter into a 100k-step run: our choice (Nikishin et al. inject once, mid-training)
    "plasticity_injection": {"at_phase": None, "at_step": 25_000}
}
# Every RL preset bootstraps from the agent's own target network, H&T's Tortoise is evaluated and the Hare reset to
# it: the design that the 5-seed MinAtar study chose over the Tortoise as the bootstrap target (docs/RL.md, "The
# design study"). Set in the presets, not as the agent's default, so that a stored config that omits it keeps its
# meaning (agent.bootstrap_from=method gives the other design, and BBF's EMA target with method=ema).
RL_AGENT = {"bootstrap_from": "target_network"}
PRESETS["minatar-dqn"] = Preset(
    "minatar-dqn", "this machine: MinAtar (--env GAME) / DQN with the MinAtar paper's settings, 100k agent steps",
    {"env": "minatar", "game": "breakout", "steps": 100_000, "eval_episodes": 30, "agent_settings": {**RL_AGENT}},
    RL_METHODS, kind="rl")
PRESETS["minatar-dqn-50k"] = Preset(
    "minatar-dqn-50k", "this machine's MinAtar evidence: minatar-dqn at half the budget, 50k agent steps, with the "
    "exploration decay halved to match (25k steps)",
    {"env": "minatar", "game": "breakout", "steps": 50_000, "eval_episodes": 30,
     "agent_settings": {**RL_AGENT, "epsilon_decay": 25_000}}, RL_METHODS, kind="rl")
# continual MinAtar: a phase per game, so the between-phase methods act at each switch to the next game
SEQUENCE_RL_METHODS = {**RL_METHODS, **{name: {**RL_METHODS[name], "every_steps": None}
                                        for name in ("shrink_perturb", "shrink_perturb_noise", "head_reset",
                                                     "full_reset")},
                       "plasticity_injection": {"at_phase": 1, "at_step": None}}
PRESETS["minatar-continual"] = Preset(
    "minatar-continual", "this machine: continual MinAtar / DQN, Space Invaders -> Asterix -> Seaquest (the sequence "
    "of Tang et al., ICML 2025), 50k agent steps each; the agent is tested on all three at every switch",
    {"env": "minatar", "games": ("space_invaders", "asterix", "seaquest"), "game_steps": 50_000, "steps": 150_000,
     "eval_episodes": 30, "agent_settings": {**RL_AGENT, "epsilon_decay": 25_000}}, SEQUENCE_RL_METHODS, kind="rl")
PRESETS["minatar-cycle"] = Preset(
    "minatar-cycle", "this machine: continual MinAtar / DQN, the five games in turn, twice, 25k agent steps each",
    {"env": "minatar", "games": ("asterix", "breakout", "freeway", "seaquest", "space_invaders"), "game_steps": 25_000,
     "epoch_steps": 5_000,
     "steps": 250_000, "eval_episodes": 30, "agent_settings": {**RL_AGENT, "epsilon_decay": 25_000}},
    SEQUENCE_RL_METHODS, kind="rl")
PRESETS["atari100k-drq"] = Preset(
    "atari100k-drq", "Atari-100k (--env GAME, e.g. pong) / DrQ(eps) as Dopamine configures it, 100k agent steps, "
    "100 evaluation episodes", {"env": "atari100k", "game": "pong", "agent": "drq_eps", "steps": 100_000,
                                "eval_episodes": 100, "agent_settings": {**RL_AGENT}}, RL_METHODS, kind="rl")
PRESETS["rl-smoke"] = Preset(
    "rl-smoke", "seconds: MinAtar breakout, 300 agent steps (3 epochs of 100), for the tests",
    {"steps": 300, "epoch_steps": 100, "eval_episodes": 2, "log_every": 100, "checkpoint_every": 100,
     "max_episode_steps": 200, "agent_settings": {**RL_AGENT, "replay_start": 100, "target_update": 50,
                                                  "replay_capacity": 1000}},
    {**RL_METHODS, "hare_tortoise": {**RL_METHODS["hare_tortoise"], "reset_every_steps": 100},
     "redo": {"every_epochs": None, "every_steps": 50}, "cbp": {"maturity_threshold": 20, "replacement_rate": 0.01},
     "plasticity_injection": {"at_phase": None, "at_step": 50},
     **{name: {**RL_METHODS.get(name, {}), "every_steps": 50}
        for name in ("reset", "shrink_perturb", "shrink_perturb_noise", "head_reset", "full_reset")}}, kind="rl")


PRESETS["rl-sequence-smoke"] = Preset(
    "rl-sequence-smoke", "seconds: rl-smoke on Breakout then Freeway (4 and 7 channels), twice, 100 agent steps each",
    {**PRESETS["rl-smoke"].config, "games": ("breakout", "freeway"), "game_steps": 100, "steps": 400,
     "task_eval_episodes": 1, "max_episode_steps": 50},
    {**PRESETS["rl-smoke"].method_defaults, **{name: {**PRESETS["rl-smoke"].method_defaults[name], "every_steps": None}
                                               for name in ("shrink_perturb", "shrink_perturb_noise", "head_reset",
                                                            "full_reset")},
     "plasticity_injection": {"at_phase": 1, "at_step": None}}, kind="rl")


def available() -> list[str]:
    return sorted(PRESETS)


def paper_scale() -> list[str]:
    """The presets at the paper's scale: every paper dataset (docs/METHODS.md) under every paper protocol."""
    return sorted(f"{dataset}-{suffix}" for dataset in PAPER_SETTINGS for suffix in PAPER_PROTOCOLS)


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise InvalidInput(f"unknown preset {name!r}; available: {', '.join(available())}")
    return PRESETS[name]


def workload(preset: Preset) -> str:
    """What one run of `preset` processes: training images, or agent steps."""
    if preset.kind == "rl":
        return f"{preset.config['steps']:,} agent steps"
    return f"{training_images(preset):,} training images"


def training_images(preset: Preset) -> int:
    """The training images one run of a supervised preset processes: samples x epochs over the phases of its own
    protocol."""
    import torch

    from .config import Config
    from .data import streams

    config = Config(**preset.config)
    samples = config.train_size or TRAIN_SAMPLES[config.dataset]
    settings = {k: getattr(config, k) for name in streams.PROTOCOLS for k in streams.options(name)}
    classes = CLASSES.get(config.dataset, 10)
    labels = torch.arange(samples) % classes  # balanced classes, as the real sets have (class_incremental counts them)
    phases = streams.build(config.protocol, labels, classes, 1, config.epochs, 0, **settings)
    return sum(len(phase.indices) * phase.epochs for phase in phases)


def resolve(preset_name: str, method: str | None, seed: int | None, data_dir: str | None,
            overrides: list[str], env: str | None = None):
    """Preset, then the chosen method with the preset's settings for it, then seed, data dir (or RL game) and
    overrides. Returns a Config, or an RLConfig for RL presets."""
    preset = get(preset_name)
    chosen = [o.partition("=")[2] for o in overrides if o.startswith("method=")]
    method = chosen[-1] if chosen else (method or preset.config.get("method", "base"))
    if method not in methods.available():
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(methods.available())}")
    kind = RLConfig if preset.kind == "rl" else Config
    if env is not None and preset.kind != "rl":
        raise ConfigError(f"--env picks the game of an RL preset; {preset_name} is not one")
    settings = dict(preset.method_defaults.get(method, {}))
    config: Config | RLConfig = kind(**{**preset.config, "method": method, "method_settings": settings})
    place: dict[str, Any] = {"seed": seed}
    if isinstance(config, RLConfig):
        place["game"] = None if env is None else game_id(config.env, env)
    else:
        place["data_dir"] = data_dir
    config = dataclasses.replace(config, **{k: v for k, v in place.items() if v is not None})
    return apply_overrides(config, [o for o in overrides if not o.startswith("method=")]).validate()
