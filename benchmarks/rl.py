"""RL: the share of an agent step spent in the network update (MinAtar Breakout, DQN with the MinAtar paper's
settings), and agent steps per second against the cost of the updates alone."""

from __future__ import annotations

import statistics
import time

from hare_tortoise import methods
from hare_tortoise.rl.dqn import DQN, DQNConfig
from hare_tortoise.rl.envs import MinAtar

STEPS, ROUNDS = 400, 5


def run() -> list[dict]:
    from common import figure

    agent = DQN(MinAtar("breakout", seed=1), methods.create("hare_tortoise", momentum=0.995),
                DQNConfig(replay_start=1000), 1)
    agent.run(1000)  # fill the replay with random play; learning starts after it
    acting, updating, share = [], [], []
    for _ in range(ROUNDS):  # in turns, so that machine noise falls on both
        stats = agent.run(STEPS)
        acting.append(1 / stats["steps_per_second"])
        share.append(stats["update_share"])
        began = time.perf_counter()
        for _ in range(STEPS):
            agent.update()
        updating.append((time.perf_counter() - began) / STEPS)
    per_step, update = statistics.median(acting), statistics.median(updating)
    return [figure("rl/update_share", statistics.median(share), 0.85, "fraction of agent time", True,
                   f"MinAtar breakout, DQN + hare_tortoise: {1 / per_step:.0f} agent steps/s"),
            figure("rl/steps_per_second_vs_updates_alone", update / per_step, 0.85,
                   "fraction of the update-bound rate", True,
                   f"update alone {update * 1e3:.2f} ms, agent step {per_step * 1e3:.2f} ms")]
