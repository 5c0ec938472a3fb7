"""The Atari-100k preprocessing against a raw ALE driven by hand (ROMs ship inside ale-py)."""

import dataclasses

import numpy as np
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


def reference_area_resize(image: np.ndarray, height: int = 84, width: int = 84) -> np.ndarray:
    """Area interpolation written out pixel by pixel (what OpenCV's INTER_AREA computes when shrinking): output pixel
    (i, j) is the mean of the input over the box [i sy, (i+1) sy) x [j sx, (j+1) sx), each input pixel weighted by
    the area of its overlap with the box."""
    rows, cols = image.shape
    sy, sx = rows / height, cols / width
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            total = 0.0
            for r in range(int(i * sy), min(rows, int(np.ceil((i + 1) * sy)))):
                wy = min(r + 1, (i + 1) * sy) - max(r, i * sy)
                for c in range(int(j * sx), min(cols, int(np.ceil((j + 1) * sx)))):
                    wx = min(c + 1, (j + 1) * sx) - max(c, j * sx)
                    total += wy * wx * image[r, c]
            out[i, j] = total / (sy * sx)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_frames_are_resized_by_area_interpolation_with_fractional_pixel_weights():
    env = Atari("breakout", seed=3, settings=NO_NOOPS)
    env.reset()
    for t in range(30):
        frame, *_ = env.step([1, 2, 3][t % 3])
    screen = env._screens.max(0).values.numpy()
    expected = reference_area_resize(screen)
    assert np.abs(frame.numpy().astype(int) - expected.astype(int)).max() <= 1
    # whole-pixel bins (adaptive average pooling, the resize before) are off by far more on the edges
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(screen).float()[None, None], (84, 84)).round()[0, 0].numpy()
    assert np.abs(pooled - expected.astype(int)).max() > 10


def resized(screen: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(reference_area_resize(screen.numpy()))


def test_a_step_repeats_the_action_4_frames_sums_rewards_and_max_pools_the_last_two():
    # evaluation's settings: every step plays its 4 frames (a lost life in training cuts one short, tested below)
    evaluation = dataclasses.replace(NO_NOOPS, terminal_on_life_loss=False)
    env, ale = Atari("breakout", seed=5, settings=evaluation), raw_ale("breakout", 5)
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
        expected = resized(torch.maximum(screens[0], screens[1]))
        assert reward == total and (frame.int() - expected.int()).abs().max() <= 1


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


def test_in_training_a_lost_life_ends_the_frame_skip_at_that_frame():
    """Dopamine's and gymnasium's AtariPreprocessing: with terminal_on_life_loss the skip loop stops at the frame
    where a life is lost; in evaluation the step plays all 4 frames. Checked against a raw ALE driven by hand."""
    for terminal_on_life_loss in (True, False):
        settings = dataclasses.replace(NO_NOOPS, terminal_on_life_loss=terminal_on_life_loss)
        env = Atari("breakout", seed=0, settings=settings)
        env.reset()
        ale = raw_ale("breakout", 0)
        for t in range(5000):
            action = env.actions[1 if t % 10 == 0 else 0]
            lives = ale.lives()
            played = 0
            for _ in range(4):
                ale.act(action)
                played += 1
                if terminal_on_life_loss and ale.lives() < lives:
                    break
            _, _, terminated, _ = env.step(1 if t % 10 == 0 else 0)
            assert env.ale.getEpisodeFrameNumber() == ale.getEpisodeFrameNumber()
            if ale.lives() < lives:
                break
        assert env.ale.lives() == ale.lives() < 5
        if terminal_on_life_loss:
            assert terminated and played < 4  # breakout, seed 0: the life goes before the step's 4th frame
        else:
            assert not terminated and played == 4


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
