"""An RL run in a run directory: interact and learn, write a metrics row every `log_every` steps and a checkpoint
every `checkpoint_every`, optionally evaluate every `eval_every` steps, and at the end evaluate the online network
(the Hare) and the network the method reports (the Tortoise for H&T).

The method's hooks mean what they mean in the supervised loop (methods/base.py): a phase is a game, the run's
one game or each stint of `game_steps` steps on a game of a sequence (`on_phase_start(k)` before its first step,
`on_phase_end(k)` after its evaluation), an epoch ends every `epoch_steps` agent steps (`on_epoch_end`, counting
from 0 within the phase), and a step is one update of the online network. Every row carries the method's counters
as `method/<name>`.

A game sequence (continual RL, `games=`) evaluates the agent on every game of the sequence at the end of each
phase: the row marked `phase_end` holds `game_returns` (game -> mean return of the reported network) and, where the
Hare is another network, `game_returns_online`; the report builds the return matrix from them."""

from __future__ import annotations

import dataclasses
import random
import statistics
import sys

from tqdm import tqdm

from .. import methods
from ..distributed import resolve_device
from ..runs import RunStore, counter_fields, execute
from .agents import AGENTS, Agent
from .atari import Atari, AtariSettings
from .config import RLConfig
from .dqn import evaluate
from .envs import MinAtar, minatar_channels


def make_env(config: RLConfig, seed: int, evaluation: bool = False, game: str | None = None):
    """The training environment of `game` (the config's), or with `evaluation` the one whose episodes are whole
    games (no life-loss terminals). The games of a sequence share one frame shape: the most channels among them."""
    if config.env == "minatar":
        channels = max(map(minatar_channels, config.games)) if config.games else None
        return MinAtar(game or config.game, seed=seed, max_episode_steps=config.max_episode_steps, channels=channels)
    settings = AtariSettings(terminal_on_life_loss=not evaluation)
    if config.max_episode_steps is not None:
        settings = dataclasses.replace(settings, max_episode_steps=config.max_episode_steps)
    return Atari(config.game, seed=seed, settings=settings)


def evaluate_both(config: RLConfig, agent: Agent, episodes: int, seed: int, rng: random.Random,
                  progress: bool = False, game: str | None = None) -> dict:
    """Returns of `episodes` evaluation episodes of the online network and of the reported one (the same episodes
    once when they are one network), in an environment of `game` (the config's) seeded with `seed`, exploring with
    `rng`; with `progress`, a bar on a terminal counts the episodes."""
    env = make_env(config, seed, evaluation=True, game=game)
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


def game_evaluation(config: RLConfig, agent: Agent, phase: int) -> dict:
    """The evaluation at the end of phase `phase` of a game sequence: `task_eval_episodes` episodes on each game of
    the sequence, on a random stream of their own (the training run is unchanged by them)."""
    returns: dict[str, dict[str, float]] = {"game_returns": {}, "game_returns_online": {}}
    for number, game in enumerate(dict.fromkeys(config.games)):
        seed = config.seed + 3_000_017 + 1_009 * phase + number
        result = evaluate_both(config, agent, config.task_eval_episodes, seed, random.Random(seed), game=game)
        returns["game_returns"][game] = result["eval_return"]
        returns["game_returns_online"][game] = result["eval_return_online"]
    if agent.method.eval_model() is agent.online:
        del returns["game_returns_online"]
    return returns


def run_epochs(agent: Agent, steps: int, epoch_steps: int, phase_steps: int) -> dict:
    """`agent.run(steps)`, calling the method's `on_epoch_end` wherever an epoch of `epoch_steps` agent steps ends on
    the way (its index counted within the phase of `phase_steps` steps); the statistics are those of one run of
    `steps` (times added, rates of the whole)."""
    parts, total = [], steps
    while steps:
        part = min(steps, epoch_steps - agent.steps % epoch_steps)
        parts.append(agent.run(part))
        steps -= part
        if agent.steps % epoch_steps == 0:
            agent.method.on_epoch_end((agent.steps - 1) % phase_steps // epoch_steps, agent.optimizer)
    seconds = sum(p["seconds"] for p in parts)
    return {**parts[-1], "seconds": seconds, "steps_per_second": total / seconds,
            "update_share": sum(p["update_share"] * p["seconds"] for p in parts) / seconds}


class RLRun:
    """One RL run as a job of the run lifecycle (`runs.execute`): everything is built, and the method has accepted
    the run, before the directory is written."""

    def __init__(self, config: RLConfig, store: RunStore, progress: bool = True):
        self.config, self.store, self.progress = config, store, progress
        method = methods.create(config.method, **config.method_settings)
        settings = config.agent_config()
        method.check_loop(config.loop(settings))
        self.agent: Agent = AGENTS[config.agent].agent(make_env(config, config.seed), method, settings, config.seed,
                                                       device=resolve_device(config.device))

    def phase_env(self, phase: int):
        """The training environment of phase `phase`: phase 0 is seeded with the run's seed, each later one anew."""
        return make_env(self.config, self.config.seed + 10_007 * phase, game=self.config.phase_game(phase))

    def fresh(self) -> None:
        self.agent.method.on_phase_start(0, self.agent.optimizer)

    def restore(self, state: dict):
        self.agent.load_state_dict(state)
        phase = min(self.agent.steps // self.config.phase_steps(), self.config.steps // self.config.phase_steps() - 1)
        if phase:  # a checkpoint is written after the switch to the next game
            self.agent.switch_env(self.phase_env(phase))
        # a final row without its summary (killed in between) is made again, from the same checkpoint
        return lambda row: row["step"] <= self.agent.steps and not row.get("final")

    def end_phase(self, row: dict) -> None:
        """At the end of a phase of a game sequence: the evaluation on every game into `row`, the method's
        `on_phase_end`, and, unless the run is over, the next game and the method's `on_phase_start`."""
        config, agent = self.config, self.agent
        phase = agent.steps // config.phase_steps() - 1
        row.update(phase_end=True, phase=phase, game=config.phase_game(phase), **game_evaluation(config, agent, phase))
        agent.method.on_phase_end(phase, agent.optimizer)
        if agent.steps < config.steps:
            agent.switch_env(self.phase_env(phase + 1))
            agent.method.on_phase_start(phase + 1, agent.optimizer)

    def run(self) -> dict:
        config, agent, store, method = self.config, self.agent, self.store, self.agent.method
        bar = tqdm(total=config.steps, initial=agent.steps, disable=None if self.progress else True, file=sys.stderr,
                   unit="step", dynamic_ncols=True)
        while agent.steps < config.steps:
            chunk = min(config.log_every - agent.steps % config.log_every, config.steps - agent.steps)
            stats = run_epochs(agent, chunk, config.epoch_steps, config.phase_steps())
            row = {"step": agent.steps, "updates": agent.updates, "episodes": len(agent.episode_returns),
                   **agent.row_fields(), "loss": stats["loss"][0], "recent_return": stats["recent_return"][0],
                   **{k: stats[k] for k in ("steps_per_second", "update_share", "seconds")},
                   **counter_fields(method)}
            if config.eval_every and agent.steps % config.eval_every == 0 and agent.steps < config.steps:
                # its own random stream: evaluating during training leaves the training run unchanged
                seed = config.seed + 2_000_003 + agent.steps
                row.update(evaluate_both(config, agent, config.eval_every_episodes, seed, random.Random(seed),
                                         self.progress, config.phase_game((agent.steps - 1) // config.phase_steps())))
            if config.games and agent.steps % config.phase_steps() == 0 and agent.steps < config.steps:
                self.end_phase(row)
                row.update(counter_fields(method))  # what the method did at the switch
            store.append(row)
            if agent.steps % config.checkpoint_every == 0 or agent.steps == config.steps:
                store.save_checkpoint(agent.state_dict())
            bar.update(chunk)
            bar.set_postfix_str(f"{stats['steps_per_second']:.0f} steps/s, "
                                f"recent return {stats['recent_return'][0]:.2f}")
        bar.close()
        rows = store.rows()
        seconds = sum(r["seconds"] for r in rows)  # over all chunks, across resumes: totals, not means of rates
        final = {"step": agent.steps, "updates": agent.updates, "final": True,
                 **evaluate_both(config, agent, config.eval_episodes, config.seed + 1_000_003, agent.rng, self.progress,
                                 config.phase_game(config.steps // config.phase_steps() - 1)),
                 "steps_per_second": agent.steps / seconds,
                 "update_share": sum(r["update_share"] * r["seconds"] for r in rows) / seconds}
        if config.games:
            self.end_phase(final)
        else:
            method.on_phase_end(0, agent.optimizer)
        final.update(counter_fields(method))
        store.append(final)
        return {"final": final}


def train_rl(config: RLConfig, out, progress: bool = True) -> dict:
    """Run (or resume) `config` into `out`; returns the summary. A resumed run continues from its last checkpoint
    with a fresh episode (environment states are not saved), so it is not bit-identical to an uninterrupted run."""
    store = RunStore(out)
    return execute(store, config.validate(), lambda: RLRun(config, store, progress))
