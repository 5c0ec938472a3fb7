"""The Atari-100k environment against gymnasium's pipeline: agent steps per second of `rl.atari.Atari` (ale-py
driven directly, area-interpolated frames) against gymnasium's `AtariPreprocessing` (OpenCV's INTER_AREA) on the same
game and protocol (frame skip 4, max over the last two screens, 84 x 84 grayscale, terminal on life loss, up to 30
no-ops, no sticky actions), random actions, timed in turns. Needs the `bench` extra (gymnasium, OpenCV)."""

from __future__ import annotations

import random

GAMES = {"breakout": "ALE/Breakout-v5", "pong": "ALE/Pong-v5"}


def ours(game: str, seed: int = 0):
    """n steps of our environment at random actions, resetting at episode ends."""
    from hare_tortoise.rl.atari import Atari

    env, rng = Atari(game, seed=seed), random.Random(seed)
    env.reset()

    def steps(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated = env.step(rng.randrange(env.num_actions))
            if terminated or truncated:
                env.reset()
    return steps


def gymnasiums(game: str, seed: int = 0):
    """n steps of gymnasium's AtariPreprocessing pipeline at random actions, resetting at episode ends."""
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(GAMES[game], frameskip=1, repeat_action_probability=0.0, full_action_space=False)
    env = gymnasium.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                                terminal_on_life_loss=True, grayscale_obs=True)
    env.reset(seed=seed)
    rng, actions = random.Random(seed), env.action_space.n

    def steps(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(rng.randrange(actions))
            if terminated or truncated:
                env.reset()
    return steps


def speeds(game: str, steps: int = 500, rounds: int = 5) -> dict[str, float]:
    """Agent steps per second of each pipeline (medians of `rounds` turns of `steps` steps)."""
    from common import interleaved

    loops = {"ours": ours(game), "gymnasium": gymnasiums(game)}
    seconds = interleaved({name: (lambda loop=loop: loop(steps)) for name, loop in loops.items()}, rounds=rounds)
    return {name: steps / s for name, s in seconds.items()}


def run() -> list[dict]:
    from common import figure

    figures = []
    for game in GAMES:
        rate = speeds(game)
        figures.append(figure(f"atari_env/{game}_steps_per_second_vs_gymnasium", rate["ours"] / rate["gymnasium"], 1.0,
                              "x gymnasium's AtariPreprocessing", True,
                              f"ours {rate['ours']:,.0f} agent steps/s, gymnasium {rate['gymnasium']:,.0f} (random "
                              "actions, training protocol, medians of 5 turns of 500 steps)"))
    return figures
