"""Statistics over seeds: the mean with a 95% interval, the paired difference of two methods run with the same
seeds (the seed fixes data order, noise and initialisation, so pairing removes that shared variance), the share of a
gap a method closes, and the probability of improvement.

The default interval of a mean is Student's t, mean +- t(0.975, n - 1) * s / sqrt(n): its coverage is honest at the
3-5 seeds a study affords when the values are roughly normal. The percentile bootstrap (`method="bootstrap"`) is
kept as an option: at n = 3 it is close to [min, max] of the seeds and covers the true mean far less often than 95%
(tests/test_stats.py measures both). Ratios and the probability of improvement have no t form: they keep the
percentile bootstrap over seeds, and say so. Reports flag cells with fewer than MIN_SEEDS seeds."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from .errors import InvalidInput

MIN_SEEDS = 5  # cells with fewer seeds are flagged in reports
METHODS = {"t": "Student-t", "bootstrap": "percentile-bootstrap"}  # interval method -> how tables name it


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean over n seeds and its 95% interval (low = high = mean for a single seed), with the method that made it."""

    mean: float
    low: float
    high: float
    n: int
    method: Literal["t", "bootstrap"] = "t"

    def error_bar(self) -> list[float]:
        """Distances from the mean down to low and up to high: one column of matplotlib's `yerr`."""
        return [self.mean - self.low, self.high - self.mean]

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        if self.n == 0:
            return "-"
        point = f"{scale * self.mean:.{digits}f}"
        return point if self.n == 1 else f"{point} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def _means(values: np.ndarray, interval) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 (seeds) of every column, with (low, high) = interval(values); a single seed has no interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        raise InvalidInput("no values: a cell needs at least one finished seed")
    mean = values.mean(axis=0)
    if values.shape[0] == 1:
        return mean, mean.copy(), mean.copy()
    low, high = interval(values)
    return mean, low, high


def t_means(values: np.ndarray, level: float = 0.95):
    """Mean over axis 0 (seeds) and its Student-t interval, for every column of `values` at once: returns (mean,
    low, high) arrays of values.shape[1:]."""
    def interval(values):
        n = values.shape[0]
        half = scipy_stats.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
        return values.mean(axis=0) - half, values.mean(axis=0) + half

    return _means(values, interval)


def bootstrap_means(values: np.ndarray, reps: int = 10_000, level: float = 0.95, seed: int = 0):
    """Mean over axis 0 (seeds) and its percentile-bootstrap interval, for every column of `values` at once:
    returns (mean, low, high) arrays of values.shape[1:]."""
    return _means(values, lambda values: np.percentile(_resampled_means(values, reps, seed), _tails(level), axis=0))


def _resampled_means(values: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """(reps, *values.shape[1:]): the mean over axis 0 of `reps` resamples of its rows, the same rows for every
    column (so that columns measured on the same seeds stay paired)."""
    resamples = np.random.default_rng(seed).integers(0, values.shape[0], size=(reps, values.shape[0]))
    return values[resamples].mean(axis=1)


def _tails(level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    return [tail, 100 - tail]


def mean_interval(values, method: Literal["t", "bootstrap"] = "t", level: float = 0.95, reps: int = 10_000,
                  seed: int = 0) -> Interval:
    """The mean of `values` (one per seed) with its Student-t interval, or its percentile-bootstrap one."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return Interval(math.nan, math.nan, math.nan, 0, method)
    column = np.asarray(values)[:, None]
    mean, low, high = t_means(column, level) if method == "t" else bootstrap_means(column, reps, level, seed)
    return Interval(float(mean[0]), float(low[0]), float(high[0]), len(values), method)


def differences(treated: dict[int, float], control: dict[int, float]) -> dict[int, float]:
    """treated[s] - control[s] for each seed s both have, in seed order."""
    return {s: treated[s] - control[s] for s in sorted(treated.keys() & control.keys())}


def paired_difference(treated: dict[int, float], control: dict[int, float],
                      method: Literal["t", "bootstrap"] = "t", level: float = 0.95) -> Interval:
    """Mean of treated[s] - control[s] over the seeds s both have, with its interval (Student-t by default)."""
    return mean_interval(differences(treated, control).values(), method, level)


def ratio_of_means(numerator: dict[int, float], denominator: dict[int, float], reps: int = 10_000,
                   level: float = 0.95, seed: int = 0) -> Interval:
    """mean(numerator) / mean(denominator) over the seeds both have, with a percentile-bootstrap interval that
    resamples seeds jointly: e.g. the share of the warm-start gap a method closes (its gain over warm-started base
    divided by cold minus warm-started base, both per seed). Resamples whose denominator averages 0 are dropped."""
    seeds = sorted(set(numerator) & set(denominator))
    values = np.array([[numerator[s], denominator[s]] for s in seeds], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(values).all() or not seeds or values[:, 1].mean() == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "bootstrap")
    point = float(values[:, 0].mean() / values[:, 1].mean())
    if len(seeds) == 1:
        return Interval(point, point, point, 1, "bootstrap")
    means = _resampled_means(values, reps, seed)
    means = means[means[:, 1] != 0]
    low, high = np.percentile(means[:, 0] / means[:, 1], _tails(level))
    return Interval(point, float(low), float(high), len(seeds), "bootstrap")


def improvement_probability(treated, control) -> float:
    """P(X > Y) for a run X of `treated` and a run Y of `control`, ties counting half: the Mann-Whitney U statistic
    over n_x n_y (the probability of improvement of Agarwal et al., NeurIPS 2021, for one task)."""
    x, y = np.asarray(list(treated), dtype=np.float64), np.asarray(list(control), dtype=np.float64)
    wins = (x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()
    return float(wins / (len(x) * len(y)))


def probability_of_improvement(treated: dict[int, float], control: dict[int, float], reps: int = 2_000,
                               level: float = 0.95, seed: int = 0) -> Interval:
    """P(treated > control) over the runs of one setting (`improvement_probability`), with a percentile-bootstrap
    interval that resamples each side's runs independently (rliable's `StratifiedIndependentBootstrap` for one
    task; its colab uses 1,000-2,000 replicates)."""
    return average_probability_of_improvement([(treated, control)], reps, level, seed)


def average_probability_of_improvement(tasks: list[tuple[dict[int, float], dict[int, float]]], reps: int = 2_000,
                                       level: float = 0.95, seed: int = 0) -> Interval:
    """The mean over tasks of P(treated > control) on each (Agarwal et al. 2021's probability of improvement
    across tasks: it needs no common score scale), given each task's (treated, control) runs. Its percentile-
    bootstrap interval resamples each side's runs independently within every task, the task set fixed (rliable's
    `StratifiedIndependentBootstrap`). n is the fewest runs on either side of any task."""
    runs = [([v for v in t.values() if math.isfinite(v)], [v for v in c.values() if math.isfinite(v)])
            for t, c in tasks]
    if not runs or any(not x or not y for x, y in runs):
        return Interval(math.nan, math.nan, math.nan, 0, "bootstrap")
    point = float(np.mean([improvement_probability(x, y) for x, y in runs]))
    rng = np.random.default_rng(seed)
    wins = np.zeros(reps)
    for x, y in runs:
        xs = np.asarray(x)[rng.integers(0, len(x), size=(reps, len(x)))]
        ys = np.asarray(y)[rng.integers(0, len(y), size=(reps, len(y)))]
        wins += ((xs[:, :, None] > ys[:, None, :]).mean(axis=(1, 2))
                 + 0.5 * (xs[:, :, None] == ys[:, None, :]).mean(axis=(1, 2)))
    wins /= len(runs)
    low, high = np.percentile(wins, _tails(level))
    return Interval(point, float(low), float(high), min(min(len(x), len(y)) for x, y in runs), "bootstrap")
