"""Environments with one small API: reset() -> frame; step(action) -> (frame, reward, terminated, truncated).

Frames are uint8 tensors. MinAtar is here, the fast test bed; Atari-100k is in `atari.py`.
"""

from __future__ import annotations

import functools

import torch

from ..errors import InvalidInput

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


class MinAtar:
    """A MinAtar game (Young & Tian 2019, arXiv:1903.03176): (C, 10, 10) binary frames as uint8, all 6 actions,
    sticky actions with probability 0.1 and difficulty ramping on (the package's defaults, as in the MinAtar paper);
    one frame is one agent step; no frame stacking or skipping.

    Every game takes the same 6 actions (no-op, left, up, right, down, fire; each game's minimal set is a subset),
    so one agent can play a sequence of games; their frames have 4 to 10 channels, and `channels` pads a game's
    frames with zero channels after its own to a common count (our choice for game sequences)."""

    num_actions = 6

    def __init__(self, game: str, seed: int = 0, sticky_action_prob: float = 0.1,
                 max_episode_steps: int | None = None,  # None: no time limit (the MinAtar paper has none)
                 channels: int | None = None):           # pad frames to this many channels (None: the game's own)
        if game not in MINATAR_GAMES:
            raise InvalidInput(f"unknown MinAtar game {game!r}; the games are: {', '.join(MINATAR_GAMES)}")
        from minatar import Environment

        self.game = game
        self.env = Environment(game, sticky_action_prob=sticky_action_prob)
        self.env.seed(seed)
        self.max_episode_steps = max_episode_steps
        own = self.env.state_shape()[2]
        if channels is not None and channels < own:
            raise InvalidInput(f"{game} frames have {own} channels; channels={channels} cannot hold them")
        self.frame_shape = (channels or own, 10, 10)
        self.steps = 0

    def _frame(self) -> torch.Tensor:
        frame = torch.from_numpy(self.env.state()).permute(2, 0, 1).to(torch.uint8)
        if frame.shape[0] == self.frame_shape[0]:
            return frame
        padded = torch.zeros(self.frame_shape, dtype=torch.uint8)
        padded[:frame.shape[0]] = frame
        return padded

    def reset(self) -> torch.Tensor:
        self.env.reset()
        self.steps = 0
        return self._frame()

    def step(self, action: int) -> tuple[torch.Tensor, float, bool, bool]:
        reward, terminated = self.env.act(int(action))
        self.steps += 1
        truncated = not terminated and self.max_episode_steps is not None and self.steps >= self.max_episode_steps
        return self._frame(), float(reward), bool(terminated), truncated


@functools.cache  # else an environment per game at every switch and evaluation of a sequence
def minatar_channels(game: str) -> int:
    """The number of channels of a MinAtar game's frames."""
    from minatar import Environment

    return Environment(game).state_shape()[2]
