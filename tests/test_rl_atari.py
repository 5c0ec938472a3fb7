"""The Atari-100k preprocessing against a raw ALE driven by hand (ROMs ship inside ale-py)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from hare_tortoise.rl.atari import ATARI_100K_GAMES, Atari, AtariSettings

NO_NOOPS = AtariSettings(max_noops=1)  # randrange(1) = 0 no-ops: the game starts exactly as a raw ALE's


def raw_ale(game, seed):
    from ale_py import ALEInterface, roms

    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(roms.get_rom_path(game)))
    ale.reset_game()
    return ale


def test_frames_and_actions():
    assert len(ATARI_100K_GAMES) == 26
    env = Atari("pong", seed=0)
    frame = env.reset()
    assert frame.shape == (84, 84) and frame.dtype == torch.uint8 and env.num_actions == 6
    assert Atari("breakout").num_actions == 4  # the minimal action set
    with pytest.raises(ValueError, match="not an Atari-100k game"):
        Atari("tetris")


def test_a_step_repeats_the_action_4_frames_sums_rewards_and_max_pools_the_last_two():
    env, ale = Atari("breakout", seed=5, settings=NO_NOOPS), raw_ale("breakout", 5)
    env.reset()
    actions = env.actions
    for t in range(60):
        a = [1, 2, 3, 2][t % 4]
        frame, reward, _, _ = env.step(a)
        total, screens = 0.0, []
        for k in range(4):
            total += ale.act(actions[a])
            if k >= 2:
                screens.append(torch.from_numpy(ale.getScreenGrayscale()))
        pooled = torch.maximum(screens[0], screens[1]).float()[None, None]
        expected = F.adaptive_avg_pool2d(pooled, (84, 84)).round().to(torch.uint8)[0, 0]
        assert reward == total and torch.equal(frame, expected)


def play_until(env, condition, limit=20_000):
    for t in range(limit):
        result = env.step(1 if t % 10 == 0 else 0)  # FIRE now and then, so that breakout goes on
        if condition(result):
            return result
    pytest.fail("condition never met")


def test_life_loss_ends_the_agents_episode_but_not_the_game():
    env = Atari("breakout", seed=0, settings=NO_NOOPS)
    env.reset()
    lives = env.ale.lives()
    play_until(env, lambda r: r[2])
    assert env.ale.lives() == lives - 1 and not env.ale.game_over()
    frames_played = env.ale.getEpisodeFrameNumber()
    env.reset()
    assert env.ale.getEpisodeFrameNumber() == frames_played  # the same game goes on
    evaluation = Atari("breakout", seed=0, settings=dataclasses.replace(NO_NOOPS, terminal_on_life_loss=False))
    evaluation.reset()
    play_until(evaluation, lambda r: r[2])
    assert evaluation.ale.game_over()  # without life-loss terminals only the game over ends an episode


def test_noop_starts_and_the_time_limit():
    starts = set()
    for seed in range(12):
        env = Atari("pong", seed=seed)
        env.reset()
        starts.add(env.ale.getEpisodeFrameNumber())
    assert all(0 <= s < 30 for s in starts) and len(starts) > 4
    env = Atari("pong", seed=0, settings=dataclasses.replace(NO_NOOPS, max_episode_steps=10))
    env.reset()
    flags = [env.step(0)[2:] for _ in range(10)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])
    env.reset()
    assert env.ale.getEpisodeFrameNumber() == 0  # a truncated game is started anew
