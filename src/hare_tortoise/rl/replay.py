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
    """A ring of `capacity` steps: frame, action, reward, terminal, and whether the step began or ended an episode.

    With `lanes` > 1 it holds one ring for each of several agents that step together (the seeds of a stacked group,
    `rl/stacked.py`): `add_all` stores one step of every lane and `sample_all` draws every lane's batch with that
    lane's own generator, exactly as a buffer of one lane would with the same generator."""

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], stack: int = 4, n_step: int = 1,
                 gamma: float = 0.99, frame_dtype: torch.dtype = torch.uint8, lanes: int = 1):
        if capacity <= stack + n_step:
            raise InvalidInput(f"capacity {capacity} must exceed stack + n_step = {stack + n_step}")
        self.capacity, self.stack, self.n_step, self.gamma = capacity, stack, n_step, gamma
        self.lanes, self.frame_shape = lanes, tuple(frame_shape)
        self.frames = torch.zeros((lanes, capacity, *frame_shape), dtype=frame_dtype)
        self.actions = torch.zeros((lanes, capacity), dtype=torch.long)
        self.rewards = torch.zeros((lanes, capacity))
        self.terminals = torch.zeros((lanes, capacity), dtype=torch.bool)  # the step's transition ended in a terminal
        self.ends = torch.zeros((lanes, capacity), dtype=torch.bool)       # ... or the episode stopped there anyhow
        self.starts = torch.zeros((lanes, capacity), dtype=torch.bool)     # the step's frame is its episode's first
        self.cursor, self.size = 0, 0  # every lane adds a step at once: one write position for all
        self._episode_starts = torch.ones(lanes, dtype=torch.bool)

    def __len__(self) -> int:
        return self.size

    def add(self, frame: torch.Tensor, action: int, reward: float, terminal: bool, truncated: bool = False) -> None:
        """Store one step of a one-lane buffer: `frame` is the newest frame of the observation `action` was taken on."""
        self.add_all(torch.as_tensor(frame)[None], [action], [reward], [terminal], [truncated])

    def add_all(self, frames: torch.Tensor, actions, rewards, terminals, truncated) -> None:
        """Store one step of every lane: `frames` (lanes, *frame) and a sequence of each other field, lane by lane."""
        i, terminals = self.cursor, torch.as_tensor(terminals)
        ends = terminals | torch.as_tensor(truncated)
        self.frames[:, i] = frames.to(self.frames.dtype)
        self.actions[:, i], self.rewards[:, i] = torch.as_tensor(actions), torch.as_tensor(rewards)
        self.terminals[:, i], self.ends[:, i], self.starts[:, i] = terminals, ends, self._episode_starts
        self._episode_starts = ends
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def cut(self) -> None:
        """End every lane's stored stream here without a terminal (the agent moves to another game, or resumes with
        a fresh episode): the newest step's window is never sampled and the next step starts an episode."""
        if self.size:
            self.ends[:, (self.cursor - 1) % self.capacity] = True
        self._episode_starts = torch.ones(self.lanes, dtype=torch.bool)

    def _at(self, array: torch.Tensor, ages: torch.Tensor, lanes: list[int] | None = None) -> torch.Tensor:
        """`array`'s entries at the steps of `ages` (one row per lane of `lanes`, default all) by age (0 = the oldest
        stored step)."""
        lane = torch.arange(len(ages)) if lanes is None else torch.tensor(lanes)
        return array[lane.view(-1, *([1] * (ages.dim() - 1))), (self.cursor - self.size + ages) % self.capacity]

    def observations(self, ages: torch.Tensor) -> torch.Tensor:
        """The stacks (batch, stack, *frame) of a one-lane buffer ending at the steps of `ages`."""
        return self._observations(ages[None])[0]

    def _observations(self, ages: torch.Tensor) -> torch.Tensor:
        """The stacks (lanes, batch, stack, *frame) ending at the steps of `ages` (lanes, batch), zeros before each
        episode's start."""
        offsets = torch.arange(self.stack - 1, -1, -1)  # oldest frame first
        frame_ages = ages[..., None] - offsets
        stacks = self._at(self.frames, frame_ages.clamp_min(0))
        # frame at offset j belongs to the episode unless a start lies among the j newer frames (or it is not stored)
        newer_starts = self._at(self.starts, (ages[..., None] - torch.arange(self.stack - 1)).clamp_min(0))
        in_episode = torch.cat([torch.ones((*ages.shape, 1), dtype=torch.bool), ~newer_starts.cummax(-1).values], -1)
        in_episode &= frame_ages.flip(-1) >= 0
        keep = in_episode.flip(-1).view(*ages.shape, self.stack, *([1] * len(self.frame_shape)))
        return stacks * keep

    def _first_end(self, ages: torch.Tensor, lanes: list[int] | None = None) -> torch.Tensor:
        """For each step of `ages` (a row per lane of `lanes`, default all): the offset in its n-step window of the
        first step that ended an episode, or n where none did."""
        n = self.n_step
        window = ages[..., None] + torch.arange(n)
        ends = self._at(self.ends, window.clamp(max=self.size - 1), lanes) & (window < self.size)
        return torch.where(ends.any(-1), ends.int().argmax(-1), torch.full_like(ages, n))

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch of valid transitions of a one-lane buffer: obs, action, n-step return, discount (0 at a
        terminal), next_obs."""
        return {key: value[0] for key, value in self.sample_all(batch_size, [generator]).items()}

    def sample_all(self, batch_size: int, generators) -> dict[str, torch.Tensor]:
        """`sample` for every lane at once, lane k drawing with `generators[k]`: each field (lanes, batch, ...)."""
        n = self.n_step
        if self.size < self.stack + n:
            raise InvalidInput(f"the buffer holds {self.size} steps; sampling needs at least {self.stack + n}")
        chosen: list[list[torch.Tensor]] = [[] for _ in generators]
        filled, pending = [0] * len(generators), list(range(len(generators)))
        while pending:  # draw twice the batch and keep the valid windows, until each lane has a batch
            ages = torch.stack([torch.randint(self.stack - 1, self.size, (2 * batch_size,), generator=generators[k])
                                for k in pending])
            first_end = self._first_end(ages, pending)
            ended = first_end < n
            terminal = self._at(self.terminals, ages + first_end.clamp(max=n - 1), pending) & ended
            valid = torch.where(ended, terminal, ages + n < self.size)  # a bootstrap state must be stored
            for row, (k, count) in enumerate(zip(pending, valid.sum(1).tolist())):
                chosen[k].append(ages[row][valid[row]])
                filled[k] += count
            pending = [k for k in pending if filled[k] < batch_size]
        ages = torch.stack([torch.cat(c)[:batch_size] for c in chosen])
        window = ages[..., None] + torch.arange(n)
        first_end = self._first_end(ages)
        counted = torch.arange(n) <= first_end[..., None]  # rewards up to and including a terminal step
        rewards = self._at(self.rewards, window.clamp(max=self.size - 1)) * counted
        returns = (rewards * self.gamma ** torch.arange(n, dtype=torch.float)).sum(-1)
        discount = torch.where(first_end < n, 0.0, self.gamma**n)
        next_ages = (ages + n).clamp(max=self.size - 1)
        return {"obs": self._observations(ages), "action": self._at(self.actions, ages), "return": returns,
                "discount": discount, "next_obs": self._observations(next_ages)}

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
        for name in ("frames", "actions", "rewards", "terminals", "ends", "starts"):  # one lane's may lack the lane
            getattr(self, name).copy_(state[name].reshape(getattr(self, name).shape))  # axis (older checkpoints)
        self.cursor, self.size = int(state["cursor"]), int(state["size"])
        self._episode_starts = torch.as_tensor(state["episode_starts"]).reshape(self.lanes).clone()
