"""DQN, and DrQ(eps) as a configuration of it, with plasticity methods plugged in through the supervised loop's hooks.

The online Q-network is the trained network (the Hare). The bootstrap target comes either from a hard-copied
target network (DQN, Mnih et al. 2015) or from the network the method reports (`method.eval_model()`: the Tortoise
for `hare_tortoise` and `ema`), which is how H&T enters value-based RL (Lee et al. 2024, section 5.6; BBF and SPR
already bootstrap from an EMA of the online network). No method is named here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .. import methods, optim
from ..errors import InvalidInput
from ..methods import Method
from ..tensors import evaluating
from .augment import drq_augment
from .networks import NatureDueling, minatar_network
from .replay import FrameReplay
from .stacked import StackedNetwork, q_values


@dataclasses.dataclass
class DQNConfig:
    """DQN on MinAtar with the MinAtar paper's settings (kenjyoung/MinAtar examples/dqn.py)."""

    lr: float = 2.5e-4               # centered RMSprop step size
    rms_alpha: float = 0.95          # squared-gradient momentum
    rms_eps: float = 0.01            # minimum squared gradient
    gamma: float = 0.99              # discount
    n_step: int = 1                  # steps of reward summed before bootstrapping
    batch_size: int = 32             # replayed transitions per update
    replay_capacity: int = 100_000   # steps the replay keeps (oldest dropped first)
    replay_start: int = 5_000        # steps of uniform random play before the first update
    target_update: int = 1_000       # updates between hard copies of the target network
    epsilon_start: float = 1.0       # exploration epsilon when learning starts
    epsilon_end: float = 0.1         # exploration epsilon after the decay
    epsilon_decay: int = 100_000     # steps after replay_start over which epsilon decays linearly
    eval_epsilon: float = 0.001      # epsilon of evaluation episodes (the Atari-100k agents' value)
    bootstrap_from: Literal["method", "target_network"] = "method"  # "method": the method's reported network where
    #                                  it is not the online one (the Tortoise for H&T and EMA), else the target network
    act_with: Literal["online", "method"] = "online"  # which network acts while training
    network: Literal["minatar", "nature_dueling"] = "minatar"  # the Q-network (rl/networks.py)
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"  # centered RMSprop (MinAtar paper) or Adam (DrQ(eps))
    adam_eps: float = 1.5e-4         # Adam's epsilon
    double: bool = False             # double DQN: the online network picks the bootstrap action
    clip_rewards: bool = False       # learn from rewards clipped to [-1, 1] (returns are reported unclipped)
    augment: bool = False            # DrQ augmentation of replayed observations (shift + intensity)


@dataclasses.dataclass
class DrQEpsConfig(DQNConfig):
    """DrQ(eps) (Agarwal et al. 2021, arXiv:2108.13264) exactly as Dopamine's DrQ_eps.gin configures it
    (docs/RL.md (b)): Nature CNN (SAME padding) with a dueling head, double DQN, 10-step returns, Adam 1e-4 (eps
    1.5e-4), batch 32, 1,600 random steps before learning, targets from the current weights (target period 1),
    epsilon 1 -> 0.01 over 5,000 steps, DrQ augmentation, rewards clipped, evaluation epsilon 0.001."""

    lr: float = 1e-4
    n_step: int = 10
    replay_start: int = 1_600
    target_update: int = 1
    epsilon_end: float = 0.01
    epsilon_decay: int = 5_000
    network: Literal["minatar", "nature_dueling"] = "nature_dueling"
    optimizer: Literal["rmsprop", "adam"] = "adam"
    double: bool = True
    clip_rewards: bool = True
    augment: bool = True


def epsilon(config: DQNConfig, step: int) -> float:
    """1 during the random warm-up, then a linear decay to epsilon_end over epsilon_decay steps."""
    if step < config.replay_start:
        return 1.0
    progress = min(1.0, (step - config.replay_start) / config.epsilon_decay)
    return config.epsilon_start + progress * (config.epsilon_end - config.epsilon_start)


def td_targets(network: nn.Module, batch: dict[str, torch.Tensor], chooser: nn.Module | None = None) -> torch.Tensor:
    """n-step return + discount * Q(next_obs, a') under `network`, a' = its argmax, or `chooser`'s argmax (double
    DQN); the discount is 0 after a terminal. Inputs and targets are (seeds, batch, ...)."""
    with torch.no_grad():
        next_q = q_values(network, batch["next_obs"])
        choice = next_q if chooser is None or chooser is network else q_values(chooser, batch["next_obs"])
        return batch["return"] + batch["discount"] * next_q.gather(-1, choice.argmax(-1, keepdim=True)).squeeze(-1)


def as_input(stacks: torch.Tensor, frame_dims: int) -> torch.Tensor:
    """(..., stack, *frame) as network input: stacked frames become channels ((stack * C) for (C, H, W) frames)."""
    return (stacks.flatten(-4, -3) if frame_dims == 3 else stacks).float()


class FrameStack:
    """The agent's view while acting: the last `size` frames, zeros before the episode's first frame."""

    def __init__(self, size: int, frame: torch.Tensor):
        self.frames = torch.zeros((size, *frame.shape), dtype=frame.dtype)
        self.reset(frame)

    def reset(self, frame: torch.Tensor) -> None:
        self.frames.zero_()
        self.frames[-1] = frame

    def push(self, frame: torch.Tensor) -> None:
        self.frames = torch.cat([self.frames[1:], frame[None]])

    def input(self, device: torch.device | None = None) -> torch.Tensor:
        return as_input(self.frames[None].to(device), self.frames.dim() - 1)


def greedy(network: nn.Module, state: FrameStack) -> int:
    """The action of highest value under `network` (on the device of its parameters)."""
    with torch.no_grad():
        return int(network(state.input(next(network.parameters()).device)).argmax(1))


def evaluate(env, network: nn.Module, episodes: int, eps: float, rng: random.Random,
             after_episode: Callable[[float], object] | None = None) -> list[float]:
    """Undiscounted, unclipped returns of `episodes` epsilon-greedy episodes of `network` (in eval mode);
    `after_episode` is given each return as its episode ends (an Atari-100k evaluation can take most of an hour)."""
    returns = []
    with evaluating(network):
        for _ in range(episodes):
            state, total, done = FrameStack(getattr(env, "stack", 1), env.reset()), 0.0, False
            while not done:
                action = rng.randrange(env.num_actions) if rng.random() < eps else greedy(network, state)
                frame, reward, terminated, truncated = env.step(action)
                state.push(frame)
                total += reward
                done = terminated or truncated
            returns.append(total)
            if after_episode is not None:
                after_episode(total)
    return returns


class Lane:
    """One seed's own part of an agent: its environment and current episode, its exploration stream (`rng`), its
    replay and augmentation stream (`generator`), and the returns of its finished training episodes."""

    def __init__(self, env, seed: int, stack: int):
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.stack = stack
        self.episode_returns: list[float] = []
        self.begin(env)

    def begin(self, env) -> None:
        """Start a fresh episode of `env`."""
        self.env, self.frame, self.episode_return = env, env.reset(), 0.0
        self.state = FrameStack(self.stack, self.frame)

    def state_dict(self) -> dict:
        return {"episode_returns": list(self.episode_returns), "python_rng": self.rng.getstate(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.episode_returns = list(state["episode_returns"])
        version, internal, gauss = state["python_rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.generator.set_state(state["generator"])


def _listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class DQN:
    """A DQN agent whose online network is trained under `method`; `run(steps)` interacts and learns.

    Given a list of environments and a list of as many seeds, it trains a stacked group, one network per seed
    (`rl/stacked.py`): each seed's initial network, environment, replay and random streams are those of its own
    run, and one forward, backward and optimizer step serves all of them. Methods that cannot act on a stack
    (`Method.stackable`) are refused."""

    def __init__(self, env, method: Method, config: DQNConfig = DQNConfig(), seed: int | Sequence[int] = 0,
                 network: nn.Module | None = None, device: torch.device = torch.device("cpu")):
        envs, seeds = _listed(env), _listed(seed)
        if len(envs) != len(seeds):
            raise InvalidInput(f"a stacked group needs one environment per seed, got {len(envs)} and {len(seeds)}")
        if len(seeds) > 1 and not method.stackable:
            stackable = ", ".join(sorted(m for m in methods.available() if methods.get(m).stackable))
            raise InvalidInput(f"{method.name} cannot train stacked seeds (one network per seed, stepped together): "
                               f"train its seeds one by one, or stack one of: {stackable}")
        if len(seeds) > 1 and network is not None:
            raise InvalidInput("a stacked group builds each seed's network itself: give no network")
        self.method, self.config, self.device = method, config, device
        self.stack, self.frame_dims = getattr(envs[0], "stack", 1), len(envs[0].frame_shape)
        self.frame_shape, self.num_actions = tuple(envs[0].frame_shape), envs[0].num_actions
        networks = []
        for one_seed in seeds:  # each seed's network starts as its solo run's does
            torch.manual_seed(one_seed)
            networks.append(network if network is not None else self._network())
        online = networks[0] if len(seeds) == 1 else StackedNetwork(networks)
        self.lanes = [Lane(one_env, one_seed, self.stack) for one_env, one_seed in zip(envs, seeds)]
        self.online = method.prepare_model(online).to(device)  # the replay stays in host memory, as uint8
        method.attach(self.online)
        with evaluating(self.online):
            probe = as_input(torch.zeros(len(seeds), 2, self.stack, *self.frame_shape), self.frame_dims)
            method.check_model(probe[0] if len(seeds) == 1 else probe)
        self.optimizer: torch.optim.Optimizer
        if config.optimizer == "adam":
            self.optimizer = optim.adam(self.online.parameters(), config.lr, config.adam_eps,
                                        method.optimizer_overrides())
        else:
            self.optimizer = optim.rmsprop(self.online.parameters(), config.lr, config.rms_alpha, config.rms_eps,
                                           method.optimizer_overrides())
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.replay = FrameReplay(config.replay_capacity, self.frame_shape, stack=self.stack, n_step=config.n_step,
                                  gamma=config.gamma, lanes=len(seeds))
        self.steps = self.updates = 0
        self.update_seconds = 0.0

    def _network(self) -> nn.Module:
        channels = self.stack * self.frame_shape[0]
        return (minatar_network(channels, self.num_actions) if self.config.network == "minatar"
                else NatureDueling(self.stack, self.num_actions))

    def _lane(self) -> Lane:
        if len(self.lanes) > 1:
            raise InvalidInput("a stacked group has one environment, exploration stream and list of returns per "
                               "seed: read agent.lanes[k]")
        return self.lanes[0]

    @property
    def env(self):
        """The environment (of a lone agent; a stacked group's are `lanes[k].env`)."""
        return self._lane().env

    @property
    def rng(self) -> random.Random:
        """The exploration stream (of a lone agent; a stacked group's are `lanes[k].rng`)."""
        return self._lane().rng

    @property
    def episode_returns(self) -> list[float]:
        """Returns of the finished training episodes (of a lone agent; a stacked group's: `lanes[k]`)."""
        return self._lane().episode_returns

    def bootstrap_network(self) -> nn.Module:
        reported = self.method.eval_model()
        if self.config.bootstrap_from == "method" and reported is not self.online:
            return reported
        return self.online if self.config.target_update == 1 else self.target  # period 1: the current weights

    def acting_network(self) -> nn.Module:
        return self.method.eval_model() if self.config.act_with == "method" else self.online

    def act(self) -> None:
        """One environment step of every seed, epsilon-greedy, stored in the replay."""
        eps = epsilon(self.config, self.steps)
        explore = [lane.rng.random() < eps for lane in self.lanes]
        best: list[int] = []  # each seed's greedy action, where any seed acts greedily
        if not all(explore):  # one forward for every seed's state, whichever act greedily
            states = as_input(torch.stack([lane.state.frames for lane in self.lanes])[:, None], self.frame_dims)
            with torch.no_grad():
                best = q_values(self.acting_network(), states.to(self.device)).argmax(-1)[:, 0].tolist()
        frames, actions, rewards, terminals, truncations = [], [], [], [], []
        for k, lane in enumerate(self.lanes):
            action = lane.rng.randrange(self.num_actions) if explore[k] else best[k]
            frame, reward, terminated, truncated = lane.env.step(action)
            frames.append(lane.frame)
            actions.append(action)
            rewards.append(max(-1.0, min(1.0, reward)) if self.config.clip_rewards else reward)
            terminals.append(terminated)
            truncations.append(truncated)
            lane.episode_return += reward
            if terminated or truncated:
                lane.episode_returns.append(lane.episode_return)
                frame, lane.episode_return = lane.env.reset(), 0.0
                lane.state.reset(frame)
            else:
                lane.state.push(frame)
            lane.frame = frame
        self.replay.add_all(torch.stack(frames), actions, rewards, terminals, truncations)
        self.steps += 1

    def update(self) -> torch.Tensor:
        """One gradient step on a replay batch per seed (Huber loss on the TD error); returns each seed's loss (on
        the device)."""
        began = time.perf_counter()
        batch = self.replay.sample_all(self.config.batch_size, [lane.generator for lane in self.lanes])
        if self.device.type == "cuda":  # pinned host memory: the copies overlap with the work queued before them
            batch = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
        for key in ("obs", "next_obs"):  # independent augmentation draws for states and next states, as DrQ
            batch[key] = as_input(batch[key], self.frame_dims)  # uint8 on the way over, float on arrival
            if self.config.augment:
                batch[key] = torch.stack([drq_augment(x, lane.generator) for x, lane in zip(batch[key], self.lanes)])
        targets = td_targets(self.bootstrap_network(), batch, self.online if self.config.double else None)
        inputs = batch["obs"].flatten(0, 1)  # what the methods see: the batches of all seeds together

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            q_values_all = q_values(self.online, batch["obs"])
            q_taken = q_values_all.gather(-1, batch["action"][..., None]).squeeze(-1)
            # each seed's mean loss; their sum gives each seed's parameters its own gradient
            losses = F.smooth_l1_loss(q_taken, targets, reduction="none").mean(-1)
            terms = self.method.loss_terms(inputs, q_values_all.flatten(0, 1), batch["action"].flatten(0, 1))
            (losses.sum() + sum(terms.values()) if terms else losses.sum()).backward()
            return losses

        losses = closure()
        self.method.after_backward(closure)
        self.optimizer.step()
        self.method.after_step(self.optimizer, inputs)
        self.updates += 1
        if self.updates % self.config.target_update == 0:
            self.target.load_state_dict(self.online.state_dict())
        self.update_seconds += time.perf_counter() - began
        return losses.detach()  # a tensor: reading it would wait for the device at every step

    def row_fields(self) -> dict:
        return {"epsilon": epsilon(self.config, self.steps)}

    def state_dict(self) -> dict:
        """Everything needed to continue learning: networks, optimizer, method, replay, counters, random states.
        The environment is not saved: a resumed agent starts a fresh episode."""
        return {"online": self.online.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "method": self.method.state_dict(),
                "replay": self.replay.state_dict(), "steps": self.steps, "updates": self.updates,
                "torch_rng": torch.get_rng_state(), "lanes": [lane.state_dict() for lane in self.lanes]}

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        self.replay.load_state_dict(state["replay"])
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
        torch.set_rng_state(state["torch_rng"])
        for lane, lane_state in zip(self.lanes, state.get("lanes", [state]), strict=True):  # a lone agent's
            lane.load_state_dict(lane_state)  # checkpoint of an older version holds its lane's fields at the top
        self.switch_env([lane.env for lane in self.lanes])

    def switch_env(self, env) -> None:
        """Go on in `env` (the next game of a sequence, or the same one after a resume; a stacked group: one per
        seed) from a fresh episode; the unfinished episode is dropped, and the replay is cut so that no transition
        spans the two (the frames of every game of a sequence have one shape: `MinAtar(channels=...)`)."""
        envs = _listed(env)
        for new in envs:
            if tuple(new.frame_shape) != self.frame_shape or new.num_actions != self.num_actions:
                raise InvalidInput(f"the new environment's frames {tuple(new.frame_shape)} and {new.num_actions} "
                                   f"actions differ from the agent's {self.frame_shape} and {self.num_actions}: give "
                                   "every game of a sequence the same frame shape")
        if len(envs) != len(self.lanes):
            raise InvalidInput(f"the agent trains {len(self.lanes)} seeds: give one environment each, got {len(envs)}")
        self.replay.cut()
        for lane, new in zip(self.lanes, envs):
            lane.begin(new)

    def run(self, steps: int) -> dict:
        """Interact for `steps` more steps, updating once per step after the warm-up; returns timing, and each
        seed's last loss and mean return of its last 100 episodes (lists, one entry per seed)."""
        began, updating_before = time.perf_counter(), self.update_seconds
        losses: torch.Tensor | None = None
        for _ in range(steps):
            self.act()
            if self.steps > self.config.replay_start:
                losses = self.update()
        seconds = time.perf_counter() - began
        return {"steps": self.steps, "updates": self.updates,
                "loss": [math.nan] * len(self.lanes) if losses is None else losses.tolist(),  # read once per chunk
                "seconds": seconds, "steps_per_second": steps / seconds,
                "update_share": (self.update_seconds - updating_before) / seconds,
                "recent_return": [sum(lane.episode_returns[-100:]) / max(1, len(lane.episode_returns[-100:]))
                                  for lane in self.lanes]}
