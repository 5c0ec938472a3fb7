"""MinAtar environments and the DQN agent with plasticity methods plugged in."""

import pytest
import torch

from conftest import states_equal
from hare_tortoise import methods
from hare_tortoise.rl.dqn import DQN, DQNConfig, epsilon, td_targets
from hare_tortoise.rl.envs import MINATAR_GAMES, MinAtar


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_minatar_frames_actions_and_seeding(game):
    env = MinAtar(game, seed=3)
    frame = env.reset()
    assert frame.dtype == torch.uint8 and frame.shape == env.frame_shape and frame.shape[1:] == (10, 10)
    assert set(frame.unique().tolist()) <= {0, 1}

    def trajectory(seed):
        env = MinAtar(game, seed=seed, max_episode_steps=50)
        env.reset()
        return [env.step(t % 6) for t in range(40)]

    first, again = trajectory(1), trajectory(1)
    assert all(torch.equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(first, again))


def test_minatar_time_limit_truncates():
    env = MinAtar("freeway", max_episode_steps=5)
    env.reset()
    flags = [env.step(0)[2:] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])
    with pytest.raises(ValueError, match="unknown MinAtar game 'pong'"):
        MinAtar("pong")


class Bandit:
    """One-step episodes on a blank frame: action 2 pays 1, every other action 0."""

    num_actions, frame_shape = 6, (1, 10, 10)

    def reset(self):
        return torch.zeros(self.frame_shape, dtype=torch.uint8)

    def step(self, action):
        return self.reset(), float(action == 2), True, False


def test_dqn_learns_the_rewarding_action():
    config = DQNConfig(replay_start=100, epsilon_decay=200, target_update=20, lr=1e-3)
    agent = DQN(Bandit(), methods.create("base"), config, seed=0)
    summary = agent.run(800)
    assert summary["updates"] == 700 and 0 < summary["update_share"] < 1
    assert 0 < agent.run(100)["update_share"] < 1  # the share of this call's time, not of all time
    q = agent.online(torch.zeros(1, 1, 10, 10))[0]
    assert int(q.argmax()) == 2
    assert q[2].item() == pytest.approx(1.0, abs=0.15) and q[[0, 1, 3, 4, 5]].abs().max() < 0.15


def test_td_targets_bootstrap_unless_terminal():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[1.0, 3.0]]).expand(len(x), 2)

    # one seed's batch of two: (seeds, batch, ...)
    batch = {"return": torch.tensor([[0.5, 2.0]]), "discount": torch.tensor([[0.9, 0.0]]),
             "next_obs": torch.zeros(1, 2, 4)}
    torch.testing.assert_close(td_targets(Constant(), batch), torch.tensor([[0.5 + 0.9 * 3.0, 2.0]]))


def test_epsilon_schedule():
    config = DQNConfig(replay_start=10, epsilon_decay=100, epsilon_end=0.1)
    assert [epsilon(config, s) for s in (0, 9, 10, 60, 110, 500)] == pytest.approx([1, 1, 1, 0.55, 0.1, 0.1])


def small(method, **changes):
    config = DQNConfig(replay_start=50, target_update=30, **changes)
    return DQN(MinAtar("breakout", seed=0), method, config, seed=0)


def test_base_bootstraps_from_the_hard_copied_target_network():
    agent = small(methods.create("base"))
    assert agent.bootstrap_network() is agent.target
    agent.run(50 + 30)
    assert states_equal(agent.target.state_dict(), agent.online.state_dict())  # copied at update 30
    agent.run(5)
    assert not states_equal(agent.target.state_dict(), agent.online.state_dict())


def test_hare_tortoise_bootstraps_from_the_tortoise_and_resets_the_online_network():
    method = methods.create("hare_tortoise", reset_every_epochs=None, reset_every_steps=25, momentum=0.9)
    agent = small(method)
    assert agent.bootstrap_network() is method.pair.tortoise and agent.acting_network() is agent.online
    agent.run(50 + 25)  # 25 updates: the online network was just reset to the tortoise
    assert states_equal(agent.online.state_dict(), method.pair.tortoise.state_dict())
    agent.run(3)
    assert not states_equal(agent.online.state_dict(), method.pair.tortoise.state_dict())
    acting = small(methods.create("ema"), act_with="method", bootstrap_from="target_network")
    assert acting.acting_network() is acting.method.pair.tortoise and acting.bootstrap_network() is acting.target
