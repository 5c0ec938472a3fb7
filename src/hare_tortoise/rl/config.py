"""The typed, validated configuration of one reinforcement-learning run."""

from __future__ import annotations

import dataclasses

from .. import methods
from ..config import ConfigError, JsonConfig
from .dqn import DQNConfig
from .envs import MINATAR_GAMES

AGENTS = {"dqn": DQNConfig}


@dataclasses.dataclass
class RLConfig(JsonConfig):
    """One agent on one game under one method; agent.NAME=VALUE sets the agent's settings."""

    env: str = "minatar"                 # the environment suite (Atari-100k to follow)
    game: str = "breakout"               # one of the suite's games
    agent: str = "dqn"                   # the agent (DrQ(eps) to follow)
    steps: int = 100_000                 # agent steps of interaction (one update per step after the warm-up)
    method: str = "base"
    method_settings: dict = dataclasses.field(default_factory=dict)
    agent_settings: dict = dataclasses.field(default_factory=dict)
    max_episode_steps: int | None = None  # a time limit (None: none, as the MinAtar paper)
    eval_episodes: int = 30              # evaluation episodes at the end, for the online network and the reported one
    log_every: int = 1000                # steps between metrics rows
    checkpoint_every: int = 10_000       # steps between checkpoints
    seed: int = 0

    def settings_classes(self) -> dict[str, tuple[str, type]]:
        return {"method": ("method_settings", methods.get(self.method)),
                "agent": ("agent_settings", AGENTS[self.agent])}

    def validate(self) -> "RLConfig":
        if self.env != "minatar":
            raise ConfigError(f"env={self.env!r} is not available yet; available: minatar")
        if self.game not in MINATAR_GAMES:
            raise ConfigError(f"game={self.game!r} is not a MinAtar game; the games: {', '.join(MINATAR_GAMES)}")
        if self.agent not in AGENTS:
            raise ConfigError(f"agent={self.agent!r} is not one of: {', '.join(AGENTS)}")
        for key in ("steps", "eval_episodes", "log_every", "checkpoint_every"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}")
        try:
            methods.create(self.method, **self.method_settings)
            AGENTS[self.agent](**self.agent_settings)
        except (ValueError, TypeError) as error:
            raise ConfigError(str(error)) from None
        return self
