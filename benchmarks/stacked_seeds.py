"""RL: five seeds of MinAtar DQN stacked in one process (one forward, backward and optimizer step for all,
`rl/stacked.py`) against one seed alone, per agent step, on one thread and on all of torch's threads."""

from __future__ import annotations

import torch

from hare_tortoise import methods
from hare_tortoise.rl.dqn import DQN, DQNConfig
from hare_tortoise.rl.envs import MinAtar

SEEDS, STEPS, WARM_UP = (1, 2, 3, 4, 5), 200, 600


def agent(seeds: tuple[int, ...]) -> DQN:
    """H&T as the MinAtar presets run it, its replay filled with random play, learning from the next step."""
    method = methods.create("hare_tortoise", reset_every_epochs=None, reset_every_steps=20_000)
    config = DQNConfig(replay_start=WARM_UP, bootstrap_from="target_network")
    envs = [MinAtar("space_invaders", seed=seed) for seed in seeds]
    built = DQN(envs if len(seeds) > 1 else envs[0], method, config, list(seeds) if len(seeds) > 1 else seeds[0])
    built.run(WARM_UP)
    return built


def run() -> list[dict]:
    from common import figure, interleaved

    threads = torch.get_num_threads()
    lone, group = agent(SEEDS[:1]), agent(SEEDS)
    figures = []
    for count in sorted({1, threads}):
        torch.set_num_threads(count)
        try:
            seconds = interleaved({"lone": lambda: lone.run(STEPS), "group": lambda: group.run(STEPS)}, rounds=5)
        finally:
            torch.set_num_threads(threads)
        ratio = seconds["group"] / seconds["lone"]
        figures.append(figure(f"rl/stacked_{len(SEEDS)}_seeds_vs_one_{count}_thread{'s' * (count > 1)}", ratio, 2.0,
                              "x the time of one seed", False,
                              f"MinAtar space_invaders, DQN + hare_tortoise, {count} thread(s): one seed "
                              f"{seconds['lone'] / STEPS * 1e3:.2f} ms a step, {len(SEEDS)} stacked "
                              f"{seconds['group'] / STEPS * 1e3:.2f} ms ({len(SEEDS) / ratio:.2f} seeds for the "
                              "time of one)"))
    return figures
