"""The typed, validated configuration of one reinforcement-learning run."""

from __future__ import annotations

import dataclasses

from .. import methods
from ..config import ConfigError, JsonConfig
from .agents import AGENTS
from .atari import ATARI_100K_GAMES
from .envs import MINATAR_GAMES

GAMES = {"minatar": MINATAR_GAMES, "atari100k": ATARI_100K_GAMES}


def game_id(env: str, spelling: str) -> str:
    """The suite's name of a game however it is written: the score tables' 'Pong' or 'BankHeist', ale-py's
    'pong' or 'bank_heist', MinAtar's 'space_invaders' or 'SpaceInvaders'. An unknown game comes back as written,
    for validation to name the suite's games."""
    squashed = {game.replace("_", ""): game for game in GAMES.get(env, ())}
    return squashed.get(spelling.replace("_", "").replace("-", "").lower(), spelling)


@dataclasses.dataclass
class RLConfig(JsonConfig):
    """One agent on one game under one method; agent.NAME=VALUE sets the agent's settings."""

    env: str = "minatar"                 # the environment suite: minatar or atari100k
    game: str = "breakout"               # one of the suite's games
    agent: str = "dqn"                   # dqn (MinAtar paper settings) or drq_eps (Dopamine's DrQ(eps))
    steps: int = 100_000                 # agent steps of interaction (one update per step after the warm-up)
    epoch_steps: int = 10_000            # agent steps per epoch: epoch-scheduled methods act at the end of each
    method: str = "base"
    method_settings: dict = dataclasses.field(default_factory=dict)
    agent_settings: dict = dataclasses.field(default_factory=dict)
    max_episode_steps: int | None = None  # a time limit (None: the suite's own: none for MinAtar, 27,000 for Atari)
    eval_episodes: int = 30              # evaluation episodes at the end, for the online network and the reported one
    eval_every: int | None = None        # also evaluate every this many steps during training (None: at the end only)
    eval_every_episodes: int = 5         # episodes of each evaluation during training
    log_every: int = 1000                # steps between metrics rows
    checkpoint_every: int = 10_000       # steps between checkpoints
    seed: int = 0
    device: str = "auto"                 # cuda if available, else cpu; the replay stays in host memory

    def settings_classes(self) -> dict[str, tuple[str, type]]:
        return {"method": ("method_settings", methods.get(self.method)),
                "agent": ("agent_settings", AGENTS[self.agent].settings)}

    def validate(self) -> "RLConfig":
        self.check_common()
        if self.env not in GAMES:
            raise ConfigError(f"env={self.env!r} is not one of: {', '.join(GAMES)}")
        if self.game not in GAMES[self.env]:
            raise ConfigError(f"game={self.game!r} is not a {self.env} game; the games: {', '.join(GAMES[self.env])}")
        if self.agent not in AGENTS:
            raise ConfigError(f"agent={self.agent!r} is not one of: {', '.join(AGENTS)}")
        if self.eval_every is not None and (self.eval_every <= 0 or self.eval_every % self.log_every):
            raise ConfigError(f"eval_every must be a positive multiple of log_every ({self.log_every}), "
                              f"got {self.eval_every!r}")
        for key in ("steps", "epoch_steps", "eval_episodes", "eval_every_episodes", "log_every", "checkpoint_every"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}")
        try:
            method = methods.create(self.method, **self.method_settings)
            method.check_loop(self.loop(self.agent_config()))
        except (ValueError, TypeError) as error:
            raise ConfigError(str(error)) from None
        return self

    def agent_config(self):
        """The agent's settings dataclass, filled with `agent_settings`."""
        return AGENTS[self.agent].settings(**self.agent_settings)

    def loop(self, agent) -> methods.Loop:
        """What this run is to a method: one phase (the game) of steps // epoch_steps epochs, one optimizer step
        per agent step after the agent's warm-up, Q-values as outputs."""
        return methods.Loop(f"this RL run ({self.env}/{self.game}, {self.steps} agent steps)",
                            phase_epochs=(self.steps // self.epoch_steps,),
                            steps=max(0, self.steps - agent.replay_start), outputs="q_values", owns_model=True)
