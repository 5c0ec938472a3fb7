"""Atari-100k environments with the standard preprocessing of the data-efficient literature, on ale-py directly.

Every setting is a field with its source (Dopamine's `AtariPreprocessing` and atari_100k gins; see
docs/RL.md (a)). Frames are 84x84 uint8 grayscale; the agent stacks 4 of them.
"""

from __future__ import annotations

import dataclasses
import random

import torch

from ..errors import InvalidInput

ATARI_100K_GAMES = ("alien", "amidar", "assault", "asterix", "bank_heist", "battle_zone", "boxing", "breakout",
                    "chopper_command", "crazy_climber", "demon_attack", "freeway", "frostbite", "gopher", "hero",
                    "jamesbond", "kangaroo", "krull", "kung_fu_master", "ms_pacman", "pong", "private_eye", "qbert",
                    "road_runner", "seaquest", "up_n_down")


@dataclasses.dataclass
class AtariSettings:
    """The Atari-100k protocol (Kaiser et al. 2020; as configured in Dopamine's atari_100k gins)."""

    frame_skip: int = 4                  # action repeated 4 frames, rewards summed (AtariPreprocessing.frame_skip)
    max_pool_last: int = 2               # max over the last 2 skipped frames' screens (atari_lib.py)
    size: int = 84                       # 84x84 by area interpolation with fractional pixel weights (OpenCV
    #                                      INTER_AREA, as Dopamine resizes; `area_weights`)
    sticky_action_probability: float = 0.0  # no sticky actions (atari_100k gins)
    max_noops: int = 30                  # 0..29 no-ops at each game start (DataEfficientAtariRunner, randint(0, 30))
    terminal_on_life_loss: bool = True   # training only: a lost life ends the agent's episode (and the frame skip at
    #                                      that frame, as Dopamine and gymnasium do), the game goes on
    max_episode_steps: int = 27_000      # 108,000 frames (Runner.max_steps_per_episode)


def area_weights(source: int, target: int) -> torch.Tensor:
    """The (target, source) matrix of area interpolation along one axis: output pixel i averages the input over
    [i * s, (i + 1) * s), s = source / target, each input pixel weighted by the length of its overlap (OpenCV's
    INTER_AREA for downscaling). A frame is resized as rows @ frame @ columns.T."""
    scale = source / target
    starts = torch.arange(target, dtype=torch.float64)[:, None] * scale
    left = torch.arange(source, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(starts + scale, left + 1) - torch.maximum(starts, left)).clamp(min=0)
    return (overlap / scale).float()


class Atari:
    """One Atari game: reset() -> frame; step(a) -> (frame, reward, terminated, truncated), raw (unclipped) rewards.

    With terminal_on_life_loss, losing a life returns terminated=True and the following reset() continues the same
    game (only a game over starts a new one, with random no-ops), as Dopamine's runner does for training; evaluate
    with terminal_on_life_loss=False for full-game returns. The minimal action set is used.
    """

    stack = 4

    def __init__(self, game: str, seed: int = 0, settings: AtariSettings = AtariSettings()):
        if game not in ATARI_100K_GAMES:
            raise InvalidInput(f"{game!r} is not an Atari-100k game; the games: {', '.join(ATARI_100K_GAMES)}")
        from ale_py import ALEInterface, LoggerMode, roms

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.settings, self.game = settings, game
        self.ale = ALEInterface()
        self.ale.setInt("random_seed", seed)
        self.ale.setFloat("repeat_action_probability", settings.sticky_action_probability)
        self.ale.setInt("frame_skip", 1)  # skipping and pooling are done here
        self.ale.loadROM(str(roms.get_rom_path(game)))
        self.actions = self.ale.getMinimalActionSet()
        self.num_actions = len(self.actions)
        self.frame_shape = (settings.size, settings.size)
        self.rng = random.Random(seed)
        self.steps, self.lives, self._needs_game_reset = 0, 0, True
        height, width = self.ale.getScreenDims()
        self._screens = torch.zeros(settings.max_pool_last, height, width, dtype=torch.uint8)
        self._rows, self._columns = area_weights(height, settings.size), area_weights(width, settings.size).T

    def _frame(self) -> torch.Tensor:
        # amax, not max: max(0) also finds the indices, which took 200 us of a 250 us frame here
        pooled = self._screens.amax(0).float()
        return (self._rows @ pooled @ self._columns).round_().clamp_(0, 255).to(torch.uint8)

    def _grab(self, slot: int) -> None:
        self._screens[slot] = torch.from_numpy(self.ale.getScreenGrayscale())

    def reset(self) -> torch.Tensor:
        """After a game over (or at first): a new game with 0..max_noops-1 no-ops. After a lost life: go on."""
        if self._needs_game_reset:
            self.ale.reset_game()
            for _ in range(self.rng.randrange(self.settings.max_noops)):
                self.ale.act(self.actions[0])
                if self.ale.game_over():
                    self.ale.reset_game()
            self.steps = 0
            self._needs_game_reset = False
        self.lives = self.ale.lives()
        self._screens.zero_()
        self._grab(-1)
        return self._frame()

    def step(self, action: int) -> tuple[torch.Tensor, float, bool, bool]:
        total, skip, keep = 0.0, self.settings.frame_skip, self.settings.max_pool_last
        self._screens.zero_()
        for frame in range(skip):
            total += self.ale.act(self.actions[action])
            if frame >= skip - keep:
                self._grab(frame - (skip - keep))
            # a game over, or in training a lost life, ends the step at that frame (Dopamine, gymnasium)
            if self.ale.game_over() or (self.settings.terminal_on_life_loss and self.ale.lives() < self.lives):
                break
        self.steps += 1
        game_over = self.ale.game_over()
        lost_life = self.ale.lives() < self.lives
        self.lives = self.ale.lives()
        truncated = not game_over and self.steps >= self.settings.max_episode_steps
        self._needs_game_reset = game_over or truncated
        terminated = game_over or (self.settings.terminal_on_life_loss and lost_life)
        return self._frame(), total, terminated, truncated
