"""Stacked seeds: a group of DQN seeds trained as one is, seed by seed and bit for bit, each seed's own run."""

import pytest
import torch
from torch import nn

from hare_tortoise import methods
from hare_tortoise.errors import InvalidInput
from hare_tortoise.rl.dqn import DQN, DQNConfig
from hare_tortoise.rl.envs import MinAtar
from hare_tortoise.rl.networks import minatar_network
from hare_tortoise.rl.stacked import StackedNetwork

SEEDS = (3, 4)
CONFIG = DQNConfig(replay_start=60, target_update=25, replay_capacity=500, bootstrap_from="target_network")
SETTINGS = {"hare_tortoise": {"reset_every_epochs": None, "reset_every_steps": 40}, "ema": {"momentum": 0.9}}


def lone_and_group(name: str, config: DQNConfig = CONFIG):
    """Each seed's own agent, and the group of the same seeds, under fresh instances of method `name`."""
    def make():
        method = methods.create(name, **SETTINGS.get(name, {}))
        # as the RL loop shows it the run: H&T and EMA then lay the network's tensors out in one buffer
        method.check_loop(methods.Loop("a test", phase_epochs=(1,), steps=200, outputs="q_values", owns_model=True))
        return method

    lone = [DQN(MinAtar("space_invaders", seed=s), make(), config, seed=s) for s in SEEDS]
    group = DQN([MinAtar("space_invaders", seed=s) for s in SEEDS], make(), config, seed=list(SEEDS))
    return lone, group


# l2_init's penalty is one norm over every parameter, so in a group over every seed's: the same gradient, with
# other rounding
TOLERANCE = {"l2_init": 1e-6}


def assert_same_networks(lone: list[DQN], group: DQN, atol: float = 0.0) -> None:
    """Each seed's network in the group holds its own run's weights (bit for bit at atol 0)."""
    for k, agent in enumerate(lone):
        for (name, mine), theirs in zip(agent.online.named_parameters(), group.online.seed_network(k).parameters()):
            torch.testing.assert_close(theirs, mine, atol=atol, rtol=0, msg=f"seed {SEEDS[k]}: {name}")


def test_the_stacked_network_computes_each_seeds_network():
    networks = [minatar_network(4, 3) for _ in range(3)]
    stacked = StackedNetwork(networks)
    x = torch.rand(3, 5, 4, 10, 10)
    expected = torch.stack([net(x[k]) for k, net in enumerate(networks)])
    assert torch.equal(stacked(x), expected)  # each seed's part of the batch goes through its own layers
    for k, net in enumerate(networks):  # slice k of every parameter is network k's, and comes back as a network
        assert all(torch.equal(a, b) for a, b in zip(stacked.seed_network(k).parameters(), net.parameters()))
    with pytest.raises(InvalidInput, match="inputs \\(seeds, batch"):
        stacked(x[:2])
    with pytest.raises(InvalidInput, match="buffers"):
        StackedNetwork([nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)) for _ in range(2)])
    with pytest.raises(InvalidInput, match="LayerNorm \\(1\\) has parameters of its own.*Linear, Conv2d"):
        StackedNetwork([nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)) for _ in range(2)])


def test_one_update_of_a_group_equals_each_seeds_own_update():
    lone, group = lone_and_group("base")
    for agent in (*lone, group):
        agent.run(CONFIG.replay_start)  # random play only: the same start for both
    assert_same_networks(lone, group)  # each seed's network starts as its own run's
    before = [p.detach().clone() for p in lone[0].online.parameters()]
    lone_losses = [agent.update() for agent in lone]
    group_losses = group.update()
    assert_same_networks(lone, group)
    assert torch.equal(group_losses, torch.cat(lone_losses))
    assert all(not torch.equal(a, b) for a, b in zip(before, lone[0].online.parameters()))  # the update did move them


@pytest.mark.parametrize("name", [name for name in methods.available() if methods.get(name).stackable])
def test_every_stackable_method_does_to_each_seed_of_a_group_what_it_does_alone(name):
    lone, group = lone_and_group(name)
    for agent in (*lone, group):
        agent.run(150)
    for k, agent in enumerate(lone):  # environment, exploration and replay streams are those of the seed's own run
        assert group.lanes[k].episode_returns == agent.episode_returns
        assert group.lanes[k].rng.getstate() == agent.rng.getstate()
        assert torch.equal(group.lanes[k].generator.get_state(), agent.lanes[0].generator.get_state())
        for field in ("frames", "actions", "rewards", "terminals", "ends", "starts"):
            assert torch.equal(getattr(group.replay, field)[k], getattr(agent.replay, field)[0]), field
        assert group.method.counts == agent.method.counts
    assert_same_networks(lone, group, TOLERANCE.get(name, 0.0))
    reported = group.method.eval_model()  # the Tortoise of H&T and EMA: each seed's own, too
    if reported is not group.online:
        for k, agent in enumerate(lone):
            for mine, theirs in zip(agent.method.eval_model().parameters(), reported.parameters()):
                assert torch.equal(theirs[k], mine)


def test_methods_that_cannot_act_on_a_stack_are_refused():
    refused = [name for name in methods.available() if not methods.get(name).stackable]
    assert "redo" in refused and "self_distill" in refused  # per-unit statistics; a mean over all seeds' outputs
    for name in refused:
        with pytest.raises(InvalidInput, match=f"{name} cannot train stacked seeds.*stack one of: .*hare_tortoise"):
            DQN([MinAtar("breakout", seed=s) for s in SEEDS], methods.create(name), CONFIG, seed=list(SEEDS))
    with pytest.raises(InvalidInput, match="one environment per seed"):
        DQN([MinAtar("breakout", seed=1)], methods.create("base"), CONFIG, seed=list(SEEDS))


def test_a_group_restores_its_state_and_keeps_each_seeds_streams():
    _, group = lone_and_group("hare_tortoise")
    group.run(100)
    state = group.state_dict()
    _, restored = lone_and_group("hare_tortoise")
    restored.load_state_dict(state)
    for k in range(len(SEEDS)):
        assert restored.lanes[k].rng.getstate() == group.lanes[k].rng.getstate()
        assert restored.lanes[k].episode_returns == group.lanes[k].episode_returns
    assert restored.steps == group.steps and restored.method.counts == group.method.counts
    for a, b in zip(restored.online.parameters(), group.online.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(InvalidInput, match="read agent.lanes"):
        group.rng  # noqa: B018
