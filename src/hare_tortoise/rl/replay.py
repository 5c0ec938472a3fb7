"""Uniform experience replay that stores each frame once, for agents that act on stacks of recent frames.

An Atari observation is a stack of the 4 most recent 84x84 frames; storing stacks would keep every frame 4 times
(and twice more as "next observation"). Here the buffer keeps one ring of frames and rebuilds stacks and n-step
targets when it samples: frames from before an episode's first frame are zeros (as Dopamine's agents zero-fill
their state at each (life-)episode start), an n-step return stops at a terminal, and a window that runs into an
episode cut short without a terminal (a time limit) is never sampled, since its bootstrap state is unknown.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput


class FrameReplay:
    """A ring of `capacity` steps: frame, action, reward, terminal, and whether the step began or ended an episode."""

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], stack: int = 4, n_step: int = 1,
                 gamma: float = 0.99, frame_dtype: torch.dtype = torch.uint8):
        if capacity <= stack + n_step:
            raise InvalidInput(f"capacity {capacity} must exceed stack + n_step = {stack + n_step}")
        self.capacity, self.stack, self.n_step, self.gamma = capacity, stack, n_step, gamma
        self.frames = torch.zeros((capacity, *frame_shape), dtype=frame_dtype)
        self.actions = torch.zeros(capacity, dtype=torch.long)
        self.rewards = torch.zeros(capacity)
        self.terminals = torch.zeros(capacity, dtype=torch.bool)  # the step's transition ended in a terminal state
        self.ends = torch.zeros(capacity, dtype=torch.bool)       # ... or the episode stopped there for any reason
        self.starts = torch.zeros(capacity, dtype=torch.bool)     # the step's frame is its episode's first
        self.cursor, self.size = 0, 0
        self._episode_starts = True

    def __len__(self) -> int:
        return self.size

    def add(self, frame: torch.Tensor, action: int, reward: float, terminal: bool, truncated: bool = False) -> None:
        """Store one step: `frame` is the newest frame of the observation on which `action` was taken."""
        i = self.cursor
        self.frames[i] = torch.as_tensor(frame, dtype=self.frames.dtype)
        self.actions[i], self.rewards[i] = action, reward
        self.terminals[i], self.ends[i] = terminal, terminal or truncated
        self.starts[i] = self._episode_starts
        self._episode_starts = terminal or truncated
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def cut(self) -> None:
        """End the stored stream here without a terminal (the agent moves to another game, or resumes with a fresh
        episode): the newest step's window is never sampled and the next step starts an episode."""
        if self.size:
            self.ends[(self.cursor - 1) % self.capacity] = True
        self._episode_starts = True

    def _index(self, ages: torch.Tensor) -> torch.Tensor:
        """Ring positions of steps given by age (0 = the oldest stored step)."""
        return (self.cursor - self.size + ages) % self.capacity

    def observations(self, ages: torch.Tensor) -> torch.Tensor:
        """The stacks (batch, stack, *frame) ending at the steps of `ages`, zeros before each episode's start."""
        offsets = torch.arange(self.stack - 1, -1, -1)  # oldest frame first
        frame_ages = ages[:, None] - offsets
        stacks = self.frames[self._index(frame_ages.clamp_min(0))]
        # frame at offset j belongs to the episode unless a start lies among the j newer frames (or it is not stored)
        newer_starts = self.starts[self._index((ages[:, None] - torch.arange(self.stack - 1)).clamp_min(0))]
        in_episode = torch.cat([torch.ones(len(ages), 1, dtype=torch.bool), ~newer_starts.cummax(1).values], 1)
        in_episode &= frame_ages.flip(1) >= 0
        keep = in_episode.flip(1).view(len(ages), self.stack, *([1] * (self.frames.dim() - 1)))
        return stacks * keep

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch of valid transitions: obs, action, n-step return, discount (0 at a terminal), next_obs."""
        n, chosen, filled = self.n_step, [], 0
        if self.size < self.stack + n:
            raise InvalidInput(f"the buffer holds {self.size} steps; sampling needs at least {self.stack + n}")
        while filled < batch_size:
            ages = torch.randint(self.stack - 1, self.size, (2 * batch_size,), generator=generator)
            window = ages[:, None] + torch.arange(n)
            stored = window < self.size
            ends = self.ends[self._index(window.clamp(max=self.size - 1))] & stored
            first_end = torch.where(ends.any(1), ends.int().argmax(1), torch.full_like(ages, n))
            ended = first_end < n
            terminal = self.terminals[self._index(ages + first_end.clamp(max=n - 1))] & ended
            valid = torch.where(ended, terminal, ages + n < self.size)  # a bootstrap state must be stored
            chosen.append(ages[valid])
            filled += int(valid.sum())
        ages = torch.cat(chosen)[:batch_size]
        window = ages[:, None] + torch.arange(n)
        ends = self.ends[self._index(window.clamp(max=self.size - 1))] & (window < self.size)
        first_end = torch.where(ends.any(1), ends.int().argmax(1), torch.full((len(ages),), n))
        counted = torch.arange(n)[None, :] <= first_end[:, None]  # rewards up to and including a terminal step
        rewards = self.rewards[self._index(window.clamp(max=self.size - 1))] * counted
        returns = (rewards * self.gamma ** torch.arange(n, dtype=torch.float)).sum(1)
        discount = torch.where(first_end < n, 0.0, self.gamma**n)
        next_ages = (ages + n).clamp(max=self.size - 1)
        return {"obs": self.observations(ages), "action": self.actions[self._index(ages)], "return": returns,
                "discount": discount, "next_obs": self.observations(next_ages)}

    def nbytes(self) -> int:
        """Memory held by the buffer's arrays."""
        arrays = (self.frames, self.actions, self.rewards, self.terminals, self.ends, self.starts)
        return sum(a.numel() * a.element_size() for a in arrays)

    def state_dict(self) -> dict:
        """The stored steps and the write position (tensors and ints only)."""
        return {"frames": self.frames, "actions": self.actions, "rewards": self.rewards, "terminals": self.terminals,
                "ends": self.ends, "starts": self.starts, "cursor": self.cursor, "size": self.size,
                "episode_starts": self._episode_starts}

    def load_state_dict(self, state: dict) -> None:
        for name in ("frames", "actions", "rewards", "terminals", "ends", "starts"):
            getattr(self, name).copy_(state[name])
        self.cursor, self.size = int(state["cursor"]), int(state["size"])
        self._episode_starts = bool(state["episode_starts"])
