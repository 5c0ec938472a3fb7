"""The interface every RL agent implements for the RL loop, and the registry that names the agents (`agent=NAME`).

A new agent (SPR, BBF, PPO, ...) is one file, holding its settings dataclass and its class, plus one line in
`AGENTS`; the loop, the run lifecycle, the methods and the reports need no change.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Protocol

import torch
from torch import nn

from ..methods import Method
from .dqn import DQN, DQNConfig, DrQEpsConfig


class AgentSettings(Protocol):
    """What the RL loop reads of an agent's settings dataclass."""

    replay_start: int                 # agent steps before the first update
    eval_epsilon: float               # exploration during evaluation


class Agent(Protocol):
    """What the RL loop (`rl/loop.py`) uses of an agent.

    Built as `Agent(env, method, settings, seed, device=...)`, it calls `method.prepare_model`, `attach` and
    `check_model` on its trained network, then the step hooks (`loss_terms`, `after_backward`, `after_step`) around
    each update; the loop calls the phase and epoch hooks (methods/base.py says what each means in RL).
    """

    method: Method
    config: AgentSettings             # its settings dataclass
    online: nn.Module                 # the trained network (the Hare)
    optimizer: torch.optim.Optimizer
    steps: int                        # agent steps taken
    updates: int                      # optimizer steps taken
    episode_returns: list[float]      # returns of the finished training episodes
    rng: random.Random                # the agent's exploration stream (the final evaluation continues it)

    def run(self, steps: int) -> dict:
        """Interact and learn for `steps` more agent steps; returns seconds, steps_per_second and update_share of
        that stretch, and loss and recent_return as lists with one entry per seed (one for a lone agent)."""

    def switch_env(self, env) -> None:
        """Go on in `env` (the next game of a sequence, or the same one after a resume) from a fresh episode, with
        no stored transition spanning the two; refuse an environment of other frames or actions."""

    def row_fields(self) -> dict:
        """The agent's own fields of a metrics row (DQN: its exploration epsilon)."""

    def state_dict(self) -> dict:
        """Everything needed to continue learning (networks, optimizer, method, replay, counters, random states)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; the environment starts a fresh episode."""


@dataclasses.dataclass(frozen=True)
class Registered:
    """An agent class and the settings dataclass it is built with."""

    agent: type
    settings: type


AGENTS: dict[str, Registered] = {
    "dqn": Registered(DQN, DQNConfig),          # MinAtar paper's DQN
    "drq_eps": Registered(DQN, DrQEpsConfig),   # Dopamine's DrQ(eps)
}
