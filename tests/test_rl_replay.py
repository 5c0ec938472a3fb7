"""The frame replay: stacks rebuilt with zero fill at episode starts, n-step targets, no sample across a cut."""

import pytest
import torch

from hare_tortoise.rl.replay import FrameReplay


def filled(steps, capacity=100, stack=4, n_step=3, gamma=0.5):
    """A buffer whose frame at step t is the 2x2 image full of t + 1, reward t + 1; `steps` lists (terminal, truncated)."""
    replay = FrameReplay(capacity, (2, 2), stack=stack, n_step=n_step, gamma=gamma)
    for t, (terminal, truncated) in enumerate(steps):
        replay.add(torch.full((2, 2), t + 1), action=t % 3, reward=float(t + 1), terminal=terminal, truncated=truncated)
    return replay


def values(stacks):
    """The constant value of each frame of each stack (0 for zero fill)."""
    return stacks[..., 0, 0].tolist()


def test_each_frame_is_stored_once():
    replay = FrameReplay(100_000, (84, 84), stack=4, n_step=10)
    assert replay.frames.shape == (1, 100_000, 84, 84) and replay.frames.dtype == torch.uint8
    assert replay.nbytes() < 100_000 * (84 * 84 + 32)


def test_stacks_are_zero_filled_before_the_episode_start():
    # episode 1: steps 0-4 (terminal at 4); episode 2 starts at step 5
    replay = filled([(False, False)] * 4 + [(True, False)] + [(False, False)] * 5)
    observations = replay.observations(torch.tensor([3, 4, 5, 6, 8]))
    assert values(observations) == [[1, 2, 3, 4], [2, 3, 4, 5], [0, 0, 0, 6], [0, 0, 6, 7], [6, 7, 8, 9]]


def test_n_step_returns_stop_at_a_terminal_and_bootstrap_otherwise():
    replay = filled([(False, False)] * 4 + [(True, False)] + [(False, False)] * 5, n_step=3, gamma=0.5)
    batch = replay.sample(400, torch.Generator().manual_seed(0))
    for obs, action, ret, discount, next_obs in zip(batch["obs"], batch["action"], batch["return"],
                                                   batch["discount"], batch["next_obs"]):
        t = int(obs[-1, 0, 0]) - 1  # the step this sample starts at
        assert action == t % 3
        if t in (2, 3, 4):  # the terminal at step 4 falls inside the 3-step window
            expected = sum(0.5**k * (t + 1 + k) for k in range(4 - t + 1))
            assert discount == 0 and ret == pytest.approx(expected)
        else:
            assert discount == pytest.approx(0.125)
            assert ret == pytest.approx(sum(0.5**k * (t + 1 + k) for k in range(3)))
            assert int(next_obs[-1, 0, 0]) == t + 1 + 3
    starts = {int(obs[-1, 0, 0]) - 1 for obs in batch["obs"]}
    # every valid start is drawn: 3..6 (stack of 4 needs 3 earlier steps; 7+ lack a stored bootstrap state)
    assert starts == {3, 4, 5, 6}


def test_a_window_into_a_truncated_episode_is_never_sampled():
    replay = filled([(False, False)] * 5 + [(False, True)] + [(False, False)] * 6, n_step=2)
    batch = replay.sample(300, torch.Generator().manual_seed(0))
    starts = {int(obs[-1, 0, 0]) - 1 for obs in batch["obs"]}
    assert 4 not in starts and 5 not in starts  # their 2-step windows reach the cut at step 5
    assert starts == {3, 6, 7, 8, 9}


def test_the_ring_overwrites_the_oldest_steps():
    replay = filled([(False, False)] * 30, capacity=20, n_step=1)
    assert len(replay) == 20
    assert values(replay.observations(torch.tensor([3])))[0] == [11, 12, 13, 14]  # oldest stored is step 10
    batch = replay.sample(200, torch.Generator().manual_seed(0))
    assert min(int(o[-1, 0, 0]) for o in batch["obs"]) >= 14


def test_sampling_too_early_is_an_error():
    with pytest.raises(ValueError, match="sampling needs at least"):
        filled([(False, False)] * 3).sample(4)


def test_each_lane_of_a_buffer_samples_as_a_buffer_of_its_own():
    steps = [(t % 7 == 6, t % 11 == 10) for t in range(40)]
    lanes = FrameReplay(30, (2, 2), stack=4, n_step=3, gamma=0.5, lanes=2)
    alone = [FrameReplay(30, (2, 2), stack=4, n_step=3, gamma=0.5) for _ in range(2)]
    for t, (terminal, truncated) in enumerate(steps):  # lane 1 sees other frames and other episode ends
        ends = [(terminal, truncated), (truncated, terminal)]
        lanes.add_all(torch.stack([torch.full((2, 2), t + 1), torch.full((2, 2), 100 + t)]), [t % 3, t % 2],
                      [float(t), -float(t)], [e[0] for e in ends], [e[1] for e in ends])
        for k, buffer in enumerate(alone):
            buffer.add(torch.full((2, 2), t + 1 + 99 * k), [t % 3, t % 2][k], [float(t), -float(t)][k], *ends[k])
    together = lanes.sample_all(64, [torch.Generator().manual_seed(k) for k in range(2)])
    for k, buffer in enumerate(alone):
        own = buffer.sample(64, torch.Generator().manual_seed(k))
        for key, value in own.items():
            assert torch.equal(together[key][k], value), (k, key)
