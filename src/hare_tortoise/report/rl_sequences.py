"""Game sequences (continual RL) in a report: each run's return matrix R[i][j], the return after game stint i on
the game of stint j, from its phase-end rows (the RL form of the task-accuracy matrix of `sequences.py`), with the
same sequence metrics over it (`hare_tortoise.metrics`); a table with intervals over seeds and a heat map of the
mean matrix per method.

Returns of different games differ in scale, so a stint's entries are divided by a fresh agent's final return on
its game (single-game `base` runs of the same agent for `game_steps` steps among the report's runs, mean over their
seeds): an own-stint entry R[j][j] is then the plasticity ratio of that stint. Without such runs the matrix is in
raw returns, and the table says so."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import torch

from .. import metrics
from ..stats import mean_interval, paired_difference, probability_of_improvement
from .plots import save
from .runs import Cell, Run, group, method_actions
from .sequences import nanmean

NETWORKS = {"game_returns": "", "game_returns_online": " (online)"}


def is_game_sequence(run: Run) -> bool:
    return run.is_rl and bool(run.config.get("games"))


def fresh_returns(runs: list[Run], like: Run) -> dict[str, float]:
    """game -> mean final return of the finished single-game `base` runs with `like`'s suite, agent and agent
    settings and `game_steps` steps: a fresh agent trained on that game alone for one stint."""
    c = like.config
    finals: dict[str, list[float]] = {}
    for run in runs:
        r = run.config
        if (run.is_rl and not r.get("games") and run.finished and r["method"] == "base" and r["env"] == c["env"]
                and r["agent"] == c["agent"] and r["agent_settings"] == c["agent_settings"]
                and r["steps"] == c["game_steps"] and r["game"] in c["games"]):
            finals.setdefault(r["game"], []).append(run.final["eval_return"])
    return {game: float(np.mean(values)) for game, values in finals.items()}


def return_matrix(run: Run, key: str = "game_returns", fresh: dict[str, float] | None = None) -> np.ndarray:
    """R[i][j] over the run's stints: after stint i, the return on stint j's game, for j <= i + 1 (the next game
    too: forward transfer), divided by `fresh[game]` where given; NaN beyond, and for stints not yet reached."""
    games = run.config["games"]
    stints = run.config["steps"] // run.config["game_steps"]
    ends = [row[key] for row in run.rows if row.get("phase_end") and key in row]
    matrix = np.full((stints, stints), np.nan)
    for i, returns in enumerate(ends):
        for j in range(min(i + 2, stints)):
            game = games[j % len(games)]
            matrix[i, j] = returns[game] / fresh[game] if fresh else returns[game]
    return matrix


def _finished(members: list[Run], key: str) -> list[Run]:
    return [r for r in members if r.finished and any(key in row for row in r.rows if row.get("phase_end"))]


def _normaliser(runs: list[Run], like: Run) -> dict[str, float] | None:
    """The fresh agents' returns if every game of the sequence has them and none is 0, else None (raw returns)."""
    fresh = fresh_returns(runs, like)
    complete = set(fresh) == set(like.config["games"]) and all(v != 0 for v in fresh.values())
    return fresh if complete else None


def sequence_measures(matrix: np.ndarray, games: int) -> dict[str, float]:
    """A return matrix's measures: the average return after the last stint (mean of its last row), backward
    transfer and forgetting, and the own-stint return over the last cycle of `games` stints."""
    m = torch.from_numpy(matrix)
    return {"average return": float(metrics.average_accuracy(m)),
            "backward transfer": float(metrics.backward_transfer(m)), "forgetting": float(metrics.forgetting(m)),
            "last-cycle own-game return": float(np.mean(np.diagonal(matrix)[-games:]))}


PAIRED = {"average return": "average", "last-cycle own-game return": "own-game"}  # compared with base, by seed


def game_sequence_cells(runs: list[Run]) -> list[Cell]:
    """Per sequence, method and network: the `sequence_measures` with intervals over seeds, normalised by the fresh
    agents where the report holds them (the setting's label then ends in "(÷ fresh)"); for a method other than
    base, its average and own-game returns minus base's of the same sequence and network, paired by seed, and the
    probability that its average return beats a base run's."""
    sequences = [r for r in runs if is_game_sequence(r)]
    found: dict[tuple[str, str, str], tuple[list[Run], list[Run], dict[str, dict[int, float]]]] = {}
    for (setting, label), members in group(sequences).items():
        fresh = _normaliser(runs, members[0])
        for key in NETWORKS:
            done = _finished(members, key)
            if done:
                per_run = {r.seed: sequence_measures(return_matrix(r, key, fresh), len(r.config["games"]))
                           for r in done}
                values = {name: {seed: m[name] for seed, m in per_run.items()} for name in next(iter(per_run.values()))}
                found[(setting + (" (÷ fresh)" if fresh else " (raw returns)"), label, key)] = (members, done, values)
    cells = []
    for (setting, label, key), (members, done, values) in found.items():
        columns = {name: mean_interval(by_seed.values()) for name, by_seed in values.items()}
        base = found.get((setting, "base", key))
        if label != "base" and base:
            base_values = base[2]
            for name, short in PAIRED.items():
                columns[f"Δ {short} vs base"] = paired_difference(values[name], base_values[name])
            columns["P(average > base)"] = probability_of_improvement(values["average return"],
                                                                      base_values["average return"])
        cells.append(Cell(setting, label + NETWORKS[key], columns, len({r.seed for r in done}),
                          len(members) - len(done), method_actions(members)))
    return cells


def game_sequence_plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """Per sequence: a heat map of each method's mean return matrix (reported network)."""
    import matplotlib.pyplot as plt

    written = []
    sequences = [r for r in runs if is_game_sequence(r)]
    for setting in sorted({r.setting for r in sequences}):
        cells = {label: _finished(m, "game_returns") for (s, label), m in group(sequences).items() if s == setting}
        cells = {label: members for label, members in cells.items() if members}
        if not cells:
            continue
        fresh = _normaliser(runs, next(iter(cells.values()))[0])
        means = {label: nanmean(np.array([return_matrix(r, "game_returns", fresh) for r in members]))
                 for label, members in cells.items()}
        low, high = np.nanmin(list(means.values())), np.nanmax(list(means.values()))  # one scale: panels compare
        columns = min(4, len(cells))
        rows = math.ceil(len(cells) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False,
                                    layout="constrained")
        for axis, (label, members) in zip(axes.flat, cells.items()):
            mean = means[label]
            image = axis.imshow(mean, cmap="viridis", interpolation="nearest", vmin=low, vmax=high)
            games = members[0].config["games"]
            ticks = [games[j % len(games)] for j in range(mean.shape[0])]
            axis.set_xticks(range(len(ticks)), ticks, rotation=60, fontsize=8)
            axis.set_yticks(range(len(ticks)), [f"{i}: {game}" for i, game in enumerate(ticks)], fontsize=8)
            if mean.shape[0] <= 12:  # small enough to print each entry
                for (i, j), value in np.ndenumerate(mean):
                    if not np.isnan(value):
                        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                                  color="white" if value < (low + high) / 2 else "black")
            axis.set(title=f"{label} (mean of {len(members)})", xlabel="game of stint j", ylabel="after stint i")
            figure.colorbar(image, ax=axis, label="return ÷ fresh agent's" if fresh else "return")
        for axis in list(axes.flat)[len(cells):]:
            axis.axis("off")
        written.append(save(figure, out / f"{setting.replace('/', '_').replace('>', '-')}-return-matrix.png"))
    return written
