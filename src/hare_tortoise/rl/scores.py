"""Atari-100k scores as the field reports them: human-normalised scores (HNS) and the rliable aggregates (mean,
median, IQM, optimality gap) with stratified-bootstrap confidence intervals (Agarwal et al., "Deep RL at the Edge
of the Statistical Precipice", NeurIPS 2021, arXiv:2108.13264).

Score matrices have shape (runs, games). Reference tables ship with the package: random and human scores of the
26 games (from Dopamine's normalisation tables) and the published final per-run scores of DrQ(eps), SPR, DrQ and
DER, 100 runs per game (rliable's benchmark files).
"""

from __future__ import annotations

import csv
import functools
import pathlib
from collections.abc import Callable

import numpy as np

from ..errors import InvalidInput

DATA = pathlib.Path(__file__).with_name("data")

GAMES = ("Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout", "ChopperCommand",
         "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero", "Jamesbond", "Kangaroo", "Krull",
         "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert", "RoadRunner", "Seaquest", "UpNDown")


@functools.cache
def reference_scores() -> dict[str, tuple[float, float]]:
    """game -> (random score, human score)."""
    with open(DATA / "atari100k_scores.csv") as file:
        return {row["game"]: (float(row["random"]), float(row["human"])) for row in csv.DictReader(file)}


@functools.cache
def published_scores(agent: str) -> dict[str, np.ndarray]:
    """game -> final raw scores of the published runs of `agent` ('DrQ(eps)', 'SPR', 'DrQ', 'DER')."""
    runs: dict[str, list[tuple[int, float]]] = {}
    with open(DATA / "atari100k_published_scores.csv") as file:
        for row in csv.DictReader(file):
            if row["agent"] == agent:
                runs.setdefault(row["game"], []).append((int(row["run"]), float(row["score"])))
    if not runs:
        raise InvalidInput(f"no published scores for agent {agent!r}; there are DrQ(eps), SPR, DrQ, DER")
    return {game: np.array([s for _, s in sorted(values)]) for game, values in runs.items()}


def reference_name(game: str) -> str:
    """The reference tables' spelling of a game ('bank_heist' -> 'BankHeist', 'up_n_down' -> 'UpNDown')."""
    return "".join(part.capitalize() for part in game.split("_"))


def human_normalized(game: str, score):
    """(score - random) / (human - random) for `game` (a number or an array of scores)."""
    if game not in reference_scores():
        raise InvalidInput(f"no reference scores for {game!r}; the 26 Atari-100k games are: {', '.join(GAMES)}")
    random, human = reference_scores()[game]
    return (np.asarray(score, dtype=float) - random) / (human - random)


def mean(scores: np.ndarray) -> float:
    """Mean over games of the per-game mean over runs."""
    return float(np.mean(np.mean(scores, axis=0)))


def median(scores: np.ndarray) -> float:
    """Median over games of the per-game mean over runs."""
    return float(np.median(np.mean(scores, axis=0)))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all run x game entries pooled: drop floor(N/4) from each end, average the rest."""
    values = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * len(values))
    return float(np.mean(values[cut:len(values) - cut]))


def optimality_gap(scores: np.ndarray, threshold: float = 1.0) -> float:
    """threshold - mean over all entries of min(score, threshold): how far below human level, capped above."""
    return float(threshold - np.mean(np.minimum(scores, threshold)))


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": iqm, "median": median, "mean": mean, "optimality_gap": optimality_gap}


def stratified_bootstrap(scores: np.ndarray, statistic: Callable[[np.ndarray], float | np.ndarray], reps: int = 2000,
                         confidence: float = 0.95, seed: int = 0):
    """Percentile interval of `statistic` over `reps` replicates, each resampling runs with replacement
    independently within every game (the game set stays fixed), as rliable's StratifiedBootstrap. A statistic
    returning an array (a performance profile) gets an interval per entry."""
    scores = np.asarray(scores, dtype=float)
    runs, games = scores.shape
    rng = np.random.default_rng(seed)
    columns = np.arange(games)
    replicates = np.array([statistic(scores[rng.integers(0, runs, size=(runs, games)), columns])
                           for _ in range(reps)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's run-score distribution: for each threshold tau, the fraction of runs scoring above tau, averaged
    over games (Agarwal et al. 2021, section 4)."""
    return (np.asarray(scores, dtype=float)[..., None] > np.asarray(taus)).mean(axis=(0, 1))


def aggregate_table(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Each aggregate of a (runs, games) HNS matrix as (point estimate, interval low, interval high)."""
    return {name: (f(scores), *stratified_bootstrap(scores, f, reps, seed=seed)) for name, f in AGGREGATES.items()}


def percentile_in_published(game: str, score: float, agent: str = "DrQ(eps)") -> float:
    """Where a final score falls among the published runs of `agent` on `game`, in percent (ties count half)."""
    published = published_scores(agent).get(game)
    if published is None:
        raise InvalidInput(f"no published {agent} scores for {game!r}")
    below, equal = np.sum(published < score), np.sum(published == score)
    return float(100 * (below + 0.5 * equal) / len(published))


def published_matrix(agent: str, runs: int | None = None) -> np.ndarray:
    """The (runs, 26 games) HNS matrix of the published runs of `agent`, optionally the first `runs` only."""
    table = published_scores(agent)
    return np.stack([human_normalized(game, table[game][:runs]) for game in GAMES], axis=1)
