"""The typed, validated configuration of one reinforcement-learning run."""

from __future__ import annotations

import dataclasses
import math

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
    game: str = "breakout"               # one of the suite's games (a sequence: its first game)
    games: tuple[str, ...] = ()          # continual RL: these games in turn, `game_steps` agent steps each, cycling
    game_steps: int | None = None        # agent steps per game of `games` (a phase); `steps` in all
    task_eval_episodes: int = 10         # a sequence: episodes per game of the evaluation at every switch
    agent: str = "dqn"                   # dqn (MinAtar paper settings) or drq_eps (Dopamine's DrQ(eps))
    steps: int = 100_000                 # agent steps of interaction (one update per step after the warm-up)
    epoch_steps: int = 10_000            # agent steps per epoch: epoch-scheduled methods act at the end of each
    method: str = "base"                 # one of `hare-tortoise list methods`
    method_settings: dict = dataclasses.field(default_factory=dict)  # set as method.NAME=VALUE
    agent_settings: dict = dataclasses.field(default_factory=dict)   # set as agent.NAME=VALUE
    max_episode_steps: int | None = None  # a time limit (None: the suite's own: none for MinAtar, 27,000 for Atari)
    eval_episodes: int = 30              # evaluation episodes at the end, for the online network and the reported one
    eval_every: int | None = None        # also evaluate every this many steps during training (None: at the end only)
    eval_every_episodes: int = 5         # episodes of each evaluation during training
    log_every: int = 1000                # steps between metrics rows
    checkpoint_every: int = 10_000       # steps between checkpoints
    seed: int = 0                        # seeds the networks, the environments, exploration and replay
    device: str = "auto"                 # cuda if available, else cpu; the replay stays in host memory
    log: tuple[str, ...] = ()            # metrics sinks besides metrics.jsonl: tensorboard, wandb (offline)

    def settings_classes(self) -> dict[str, tuple[str, type]]:
        return {"method": ("method_settings", methods.get(self.method)),
                "agent": ("agent_settings", AGENTS[self.agent].settings)}

    def validate(self) -> RLConfig:
        self.check_common()
        if self.env not in GAMES:
            raise ConfigError(f"env={self.env!r} is not one of: {', '.join(GAMES)}")
        if self.games:
            self._check_sequence()
        elif self.game_steps is not None:
            raise ConfigError("game_steps applies to a game sequence: give games=A,B,... too, or drop game_steps")
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

    def _check_sequence(self) -> None:
        """A game sequence: MinAtar games (one action set), whole phases of whole epochs and log intervals; its
        first game becomes `game`."""
        if self.env != "minatar":
            raise ConfigError(f"games= (a game sequence) needs env=minatar, whose games share one action set; "
                              f"{self.env} games do not")
        self.games = tuple(game_id(self.env, g) for g in self.games)
        unknown = [g for g in self.games if g not in GAMES[self.env]]
        if unknown or len(self.games) < 2:
            raise ConfigError(f"games={','.join(self.games)}: give two or more of {', '.join(GAMES[self.env])}")
        if self.game_steps is None or self.game_steps <= 0:
            raise ConfigError("games= needs game_steps=N, the agent steps of each game before the next")
        for key, what in (("steps", "the run"), ("game_steps", "a game")):
            unit = self.game_steps if key == "steps" else math.lcm(self.epoch_steps, self.log_every)
            if getattr(self, key) % unit:
                raise ConfigError(f"{key}={getattr(self, key)} must be a multiple of {unit}, so that {what} ends "
                                  f"where {'a game' if key == 'steps' else 'an epoch and a log interval'} ends")
        if self.task_eval_episodes <= 0:
            raise ConfigError(f"task_eval_episodes must be > 0, got {self.task_eval_episodes!r}")
        self.game = self.games[0]

    def phase_steps(self) -> int:
        """Agent steps per phase: a game of the sequence, or the whole run on one game."""
        # validate() requires game_steps with games
        return self.game_steps if self.games and self.game_steps is not None else self.steps

    def phase_game(self, phase: int) -> str:
        """The game of phase `phase`."""
        return self.games[phase % len(self.games)] if self.games else self.game

    def agent_config(self):
        """The agent's settings dataclass, filled with `agent_settings`."""
        return AGENTS[self.agent].settings(**self.agent_settings)

    def loop(self, agent) -> methods.Loop:
        """What this run is to a method: a phase per game (one for a single game) of phase_steps // epoch_steps
        epochs, one optimizer step per agent step after the agent's warm-up, Q-values as outputs."""
        phases = self.steps // self.phase_steps()
        games = "+".join(self.games) if self.games else self.game
        return methods.Loop(f"this RL run ({self.env}/{games}, {self.steps} agent steps)",
                            phase_epochs=(self.phase_steps() // self.epoch_steps,) * phases,
                            steps=max(0, self.steps - agent.replay_start), outputs="q_values", owns_model=True)
