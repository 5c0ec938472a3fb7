"""DrQ(eps): Dopamine's network, DrQ augmentation, double-DQN targets, and the agent on a real Atari game."""

import torch
import torch.nn.functional as F

from hare_tortoise import methods
from hare_tortoise.cli import main
from hare_tortoise.rl.atari import Atari, AtariSettings
from hare_tortoise.rl.augment import drq_augment
from hare_tortoise.rl.dqn import DQN, DrQEpsConfig, FrameStack, td_targets
from hare_tortoise.rl.networks import NatureDueling
from hare_tortoise.runs import RunStore


def test_nature_network_with_same_padding_and_a_dueling_head():
    torch.manual_seed(0)
    network = NatureDueling(stack=4, num_actions=6)
    x = torch.randint(0, 256, (3, 4, 84, 84)).float()
    sizes = []
    h = x / 255
    for layer in network.backbone:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            sizes.append(h.shape[-1])
    assert sizes == [21, 11, 11] and h.shape == (3, 7744)
    q = network(x)
    hidden = network.head.hidden(h)
    torch.testing.assert_close(q.mean(1, keepdim=True), network.head.value(hidden))  # mean advantage is 0
    assert all((m.bias == 0).all() for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_drq_augmentation_shifts_with_edge_padding_and_scales_intensity():
    x = torch.rand(16, 2, 12, 12) + 0.5
    shifted = drq_augment(x, torch.Generator().manual_seed(0), intensity=0.0)
    padded = F.pad(x, (4,) * 4, mode="replicate")
    for i in range(16):
        assert any(torch.equal(shifted[i], padded[i, :, dy:dy + 12, dx:dx + 12]) for dy in range(8) for dx in range(8))
    scaled = drq_augment(x, torch.Generator().manual_seed(0))
    ratio = scaled / shifted
    per_sample = ratio.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-5)  # one factor per sample
    assert ((per_sample[:, 0] >= 0.9 - 1e-6) & (per_sample[:, 0] <= 1.1 + 1e-6)).all()


def test_double_dqn_takes_the_action_from_the_chooser_and_the_value_from_the_target():
    class Fixed(torch.nn.Module):
        def __init__(self, values):
            super().__init__()
            self.values = torch.tensor([values])

        def forward(self, x):
            return self.values.expand(len(x), -1)

    # one seed's batch of one: (seeds, batch, ...)
    batch = {"return": torch.tensor([[1.0]]), "discount": torch.tensor([[0.5]]), "next_obs": torch.zeros(1, 1, 3)}
    target, chooser = Fixed([10.0, 2.0, 3.0]), Fixed([0.0, 0.0, 9.0])
    torch.testing.assert_close(td_targets(target, batch), torch.tensor([[1.0 + 0.5 * 10.0]]))
    torch.testing.assert_close(td_targets(target, batch, chooser), torch.tensor([[1.0 + 0.5 * 3.0]]))


def test_frame_stack_zero_fills_at_episode_start():
    stack = FrameStack(4, torch.full((2, 2), 7, dtype=torch.uint8))
    stack.push(torch.full((2, 2), 8, dtype=torch.uint8))
    assert stack.input()[0, :, 0, 0].tolist() == [0, 0, 7, 8]
    stack.reset(torch.full((2, 2), 9, dtype=torch.uint8))
    assert stack.input()[0, :, 0, 0].tolist() == [0, 0, 0, 9]


def test_drq_eps_learns_on_breakout_frames_under_hare_tortoise():
    config = DrQEpsConfig(replay_start=40, replay_capacity=300, batch_size=4, epsilon_decay=50)
    base = DQN(Atari("breakout", settings=AtariSettings(max_episode_steps=100)), methods.create("base"), config)
    assert base.bootstrap_network() is base.online  # target period 1: the current weights
    summary = base.run(60)
    assert summary["updates"] == 20 and summary["loss"] == summary["loss"]
    assert base.replay.frames.shape == (1, 300, 84, 84)
    method = methods.create("hare_tortoise", reset_every_epochs=None, reset_every_steps=10, momentum=0.9)
    agent = DQN(Atari("breakout", settings=AtariSettings(max_episode_steps=100)), method, config)
    assert agent.bootstrap_network() is method.pair.tortoise
    agent.run(60)
    assert method.pair.num_updates == 20


def test_atari_drq_through_the_cli(tmp_path, capsys):
    argv = ["run", "atari100k-drq", "--env", "pong", "--method", "hare_tortoise", "--out", str(tmp_path), "--no-progress",
            "steps=60", "eval_episodes=1", "max_episode_steps=40", "log_every=30", "checkpoint_every=60",
            "agent.replay_start=40", "agent.batch_size=4", "agent.replay_capacity=200", "method.reset_every_steps=10"]
    assert main(argv) == 0
    assert "evaluation return" in capsys.readouterr().out
    rows = RunStore(tmp_path).rows()
    assert [r["step"] for r in rows] == [30, 60, 60] and rows[-1]["final"] and len(rows[-1]["eval_returns"]) == 1
