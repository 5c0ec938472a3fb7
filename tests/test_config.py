"""Config overrides are typed and validated; presets resolve; small presets keep the paper's H&T step ratio."""

import dataclasses
import math

import pytest

from hare_tortoise import methods, presets
from hare_tortoise.config import Config, ConfigError, apply_overrides
from hare_tortoise.presets import resolve


def test_overrides_are_parsed_by_type():
    config = apply_overrides(Config(), ["epochs=7", "lr=0.5", "augment=yes", "grad_clip=none", "chunks=2",
                                        "noise_schedule=0.3,0.1", "method=redo", "method.tau=0.025",
                                        "method.every_epochs=none", "method.every_steps=100"])
    assert (config.epochs, config.lr, config.augment, config.grad_clip) == (7, 0.5, True, None)
    assert config.noise_schedule == (0.3, 0.1)
    assert config.method_settings == {"tau": 0.025, "every_epochs": None, "every_steps": 100}
    assert config.validate() is config


@pytest.mark.parametrize("overrides, message", [
    (["bogus=1"], "unknown key 'bogus'; valid keys: activation, augment"),
    (["epochs=ten"], "epochs must be an integer, got 'ten'"),
    (["augment=maybe"], "augment must be true or false"),
    (["lr"], "not of the form key=value"),
    (["method.alpha=0.5"], "method 'base' has no setting 'alpha'; its settings: none"),
    (["method=hare_tortoise", "method.first_reset=later"], "method.first_reset must be one of after_first_epoch"),
])
def test_bad_overrides_say_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), overrides)


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "imagenet"}, "dataset='imagenet' is not one of: cifar10, cifar100"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"warm_noise": 1.0}, r"warm_noise must be in \[0, 1\)"),
    ({"chunks": 3}, "noise_schedule needs 3 values"),
    ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"method": "redo", "method_settings": {"tau": -1.0}}, "tau must be >= 0"),
])
def test_validation_names_the_range(changes, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(Config(), **changes).validate()


def test_json_round_trip():
    config = apply_overrides(Config(), ["method=hare_tortoise", "method.momentum=0.99", "noise_schedule=" + ",".join(["0.1"] * 10)])
    assert Config.from_dict(__import__("json").loads(config.to_json())) == config


def test_resolve_applies_the_presets_settings_for_the_chosen_method():
    config = resolve("mnist1d-warm", "hare_tortoise", 3, None, [])
    assert config.method_settings == {"momentum": 0.995, "reset_every_epochs": 5} and config.seed == 3
    switched = resolve("mnist1d-warm", "hare_tortoise", None, None, ["method=ema", "method.momentum=0.9"])
    assert switched.method == "ema" and switched.method_settings == {"momentum": 0.9}
    assert resolve("cifar10-warm", None, None, None, []).method_settings == {}


@pytest.mark.parametrize("name", presets.available())
def test_every_preset_validates_with_every_method(name):
    for method in methods.available():
        if method == "dash" and presets.get(name).kind == "rl":  # it needs each phase's data, which RL has not
            with pytest.raises(ValueError, match="dash shrinks (before each new chunk of data|by the gradient over "
                                                 "the next chunk's data), and this RL run|; this RL run"):
                resolve(name, method, None, None, [])
            continue
        assert resolve(name, method, None, None, []).validate()


@pytest.mark.parametrize("name", [n for n in presets.available() if presets.get(n).kind == "rl"])
def test_every_rl_preset_bootstraps_hare_tortoise_from_the_agents_own_target_network(name):
    """The design docs/RL.md's study chose; the Tortoise stays the evaluated network, the Hare's reset target."""
    config = resolve(name, "hare_tortoise", None, None, [])
    assert config.agent_settings["bootstrap_from"] == "target_network"  # stored, so the run's config.json says it
    agent = config.agent_config()
    assert agent.bootstrap_from == "target_network" and agent.act_with == "online"
    other = resolve(name, "hare_tortoise", None, None, ["agent.bootstrap_from=method"])
    assert other.agent_config().bootstrap_from == "method"


@pytest.mark.parametrize("name", ["mnist1d-warm", "fashion-warm"])
def test_small_presets_keep_the_papers_ratio_of_ema_time_constant_to_reset_interval(name):
    preset = presets.get(name)
    config = Config(**preset.config)
    steps_per_epoch = math.ceil(config.train_size / config.batch_size)  # phase 2: the full training set
    settings = preset.method_defaults["hare_tortoise"]
    derived = presets.ema_momentum_for(settings["reset_every_epochs"] * steps_per_epoch)
    assert settings["momentum"] == pytest.approx(derived, abs=0.0015)
    # and the paper's own numbers give back the paper's momentum
    assert presets.ema_momentum_for(presets.PAPER_RESET_STEPS) == pytest.approx(0.999)


def test_paper_scale_presets_are_the_paper_datasets_and_models_at_the_papers_batch_and_epochs():
    names = presets.paper_scale()
    models = {"cifar10": "resnet18", "cifar100": "vit_tiny", "tiny_imagenet": "vgg16"}  # docs/METHODS.md
    assert len(names) == 15 and all(presets.get(n).description.startswith("paper scale") for n in names)
    for name in names:
        config = Config(**presets.get(name).config)
        assert models[config.dataset] == config.model and (config.batch_size, config.epochs) == (256, 100)
    assert not any(presets.get(n).description.startswith("paper scale") for n in set(presets.available()) - set(names))


@pytest.mark.parametrize("name, steps_per_epoch", [("mnist1d-permuted-long", 63), ("mnist1d-random-labels-long", 63),
                                                    ("fashion-permuted-long", 40)])
def test_long_sequences_have_200_tasks_and_reset_by_steps_at_the_papers_ratio(name, steps_per_epoch):
    preset = presets.get(name)
    config = Config(**preset.config)
    assert config.tasks >= 200 and config.protocol in ("permuted_inputs", "random_labels")
    settings = preset.method_defaults["hare_tortoise"]
    assert settings["reset_every_epochs"] is None  # tasks of one epoch: an epoch-counted reset would never act
    assert settings["momentum"] == pytest.approx(presets.ema_momentum_for(settings["reset_every_steps"]), abs=0.0015)
    # the MNIST-1D reset interval is the warm start's 5 epochs of its 63 steps; Fashion-MNIST's 2 epochs of 40
    assert settings["reset_every_steps"] == steps_per_epoch * (5 if steps_per_epoch == 63 else 2)


def test_the_workload_of_a_class_incremental_preset_counts_its_growing_tasks():
    # CIFAR-100: task k trains on 5 (k + 1) classes of 500 images for 200 epochs, k = 0..19
    assert presets.training_images(presets.get("cifar100-class-incremental")) == sum(
        5 * (k + 1) * 500 * 200 for k in range(20))
