"""An RL run in a run directory: interact and learn, write a metrics row every `log_every` steps and a checkpoint
every `checkpoint_every`, optionally evaluate every `eval_every` steps, and at the end evaluate the online network
(the Hare) and the network the method reports (the Tortoise for H&T)."""

from __future__ import annotations

import dataclasses
import random
import statistics
import sys

from tqdm import tqdm

from .. import methods
from ..runs import RunStore
from ..train import resolve_device
from .config import AGENTS, RLConfig
from .dqn import DQN, epsilon, evaluate
from .atari import Atari, AtariSettings
from .envs import MinAtar


def make_env(config: RLConfig, seed: int, evaluation: bool = False):
    """The training environment, or with `evaluation` the one whose episodes are whole games (no life-loss terminals)."""
    if config.env == "minatar":
        return MinAtar(config.game, seed=seed, max_episode_steps=config.max_episode_steps)
    settings = AtariSettings(terminal_on_life_loss=not evaluation)
    if config.max_episode_steps is not None:
        settings = dataclasses.replace(settings, max_episode_steps=config.max_episode_steps)
    return Atari(config.game, seed=seed, settings=settings)


def evaluate_both(config: RLConfig, agent: DQN, episodes: int, seed: int, rng: random.Random,
                  progress: bool = False) -> dict:
    """Returns of `episodes` evaluation episodes of the online network and of the reported one (the same episodes
    once when they are one network), in an environment seeded with `seed`, exploring with `rng`; with `progress`,
    a bar on a terminal counts the episodes."""
    env = make_env(config, seed, evaluation=True)
    reported_network = agent.method.eval_model()
    networks = 1 if reported_network is agent.online else 2
    with tqdm(total=networks * episodes, desc="evaluation", unit="episode", leave=False, file=sys.stderr,
              disable=None if progress else True, dynamic_ncols=True) as bar:
        def tick(episode_return: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"last return {episode_return:g}")

        online = evaluate(env, agent.online, episodes, agent.config.eval_epsilon, rng, tick)
        reported = online if networks == 1 else evaluate(
            env, reported_network, episodes, agent.config.eval_epsilon, rng, tick)
    return {"eval_return": statistics.fmean(reported), "eval_return_online": statistics.fmean(online),
            "eval_returns": reported, "eval_returns_online": online}


def train_rl(config: RLConfig, out, progress: bool = True) -> dict:
    """Run (or resume) `config` into `out`; returns the summary. A resumed run continues from its last checkpoint
    with a fresh episode (environment states are not saved), so it is not bit-identical to an uninterrupted run."""
    store = RunStore(out)
    store.check(config.validate())
    if store.summary() is not None:
        return store.summary()
    method = methods.create(config.method, **config.method_settings)
    agent = DQN(make_env(config, config.seed), method, AGENTS[config.agent](**config.agent_settings), config.seed,
                device=resolve_device(config.device))
    store.start(config)
    state = store.load_checkpoint()
    if state is not None:
        agent.load_state_dict(state)
        store.keep_rows_until((agent.steps,), key=("step",))
    else:
        store.clear_rows()
    bar = tqdm(total=config.steps, initial=agent.steps, disable=None if progress else True, file=sys.stderr,
               unit="step", dynamic_ncols=True)
    while agent.steps < config.steps:
        chunk = min(config.log_every - agent.steps % config.log_every, config.steps - agent.steps)
        stats = agent.run(chunk)
        row = {"step": agent.steps, "updates": agent.updates, "episodes": len(agent.episode_returns),
               "epsilon": epsilon(agent.config, agent.steps), **{k: stats[k] for k in (
                   "loss", "recent_return", "steps_per_second", "update_share", "seconds")}}
        if config.eval_every and agent.steps % config.eval_every == 0 and agent.steps < config.steps:
            # its own random stream: evaluating during training leaves the training run unchanged
            seed = config.seed + 2_000_003 + agent.steps
            row.update(evaluate_both(config, agent, config.eval_every_episodes, seed, random.Random(seed), progress))
        store.append(row)
        if agent.steps % config.checkpoint_every == 0 or agent.steps == config.steps:
            store.save_checkpoint(agent.state_dict())
        bar.update(chunk)
        bar.set_postfix_str(f"{stats['steps_per_second']:.0f} steps/s, recent return {stats['recent_return']:.2f}")
    bar.close()
    rows = store.rows()
    seconds = sum(r["seconds"] for r in rows)  # over all chunks, across resumes: totals, not means of rates
    final = {"step": agent.steps, "final": True,
             **evaluate_both(config, agent, config.eval_episodes, config.seed + 1_000_003, agent.rng, progress),
             "steps_per_second": agent.steps / seconds,
             "update_share": sum(r["update_share"] * r["seconds"] for r in rows) / seconds}
    store.append(final)
    summary = {"final": final}
    store.finish(summary)
    return summary
