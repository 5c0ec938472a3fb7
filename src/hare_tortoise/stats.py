"""Statistics over seeds: the mean with a 95% percentile-bootstrap interval, and the paired difference of two
methods run with the same seeds (the seed fixes data order, noise and initialisation, so pairing removes that
shared variance). Reports use these for every cell; with under 3 seeds an interval means little and says so."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MIN_SEEDS = 3  # cells with fewer seeds are flagged in reports


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean over n seeds and its bootstrap interval (low = high = mean for a single seed)."""

    mean: float
    low: float
    high: float
    n: int

    def error_bar(self) -> list[float]:
        """Distances from the mean down to low and up to high: one column of matplotlib's `yerr`."""
        return [self.mean - self.low, self.high - self.mean]

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        if self.n == 0:
            return "-"
        point = f"{scale * self.mean:.{digits}f}"
        return point if self.n == 1 else f"{point} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def bootstrap_means(values: np.ndarray, reps: int = 10_000, level: float = 0.95, seed: int = 0):
    """Mean over axis 0 (seeds) and its percentile-bootstrap interval, for every column of `values` at once:
    returns (mean, low, high) arrays of values.shape[1:]."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        raise ValueError("no values to bootstrap: a cell needs at least one finished seed")
    mean = values.mean(axis=0)
    if n == 1:
        return mean, mean.copy(), mean.copy()
    low, high = np.percentile(_resampled_means(values, reps, seed), _tails(level), axis=0)
    return mean, low, high


def _resampled_means(values: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """(reps, *values.shape[1:]): the mean over axis 0 of `reps` resamples of its rows, the same rows for every
    column (so that columns measured on the same seeds stay paired)."""
    resamples = np.random.default_rng(seed).integers(0, values.shape[0], size=(reps, values.shape[0]))
    return values[resamples].mean(axis=1)


def _tails(level: float) -> list[float]:
    tail = 100 * (1 - level) / 2
    return [tail, 100 - tail]


def mean_interval(values, reps: int = 10_000, level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of `values` (one per seed) with its percentile-bootstrap interval."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean, low, high = bootstrap_means(np.asarray(values)[:, None], reps, level, seed)
    return Interval(float(mean[0]), float(low[0]), float(high[0]), len(values))


def differences(treated: dict[int, float], control: dict[int, float]) -> dict[int, float]:
    """treated[s] - control[s] for each seed s both have, in seed order."""
    return {s: treated[s] - control[s] for s in sorted(treated.keys() & control.keys())}


def paired_difference(treated: dict[int, float], control: dict[int, float], reps: int = 10_000,
                      level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of treated[s] - control[s] over the seeds s both have, with its bootstrap interval."""
    return mean_interval(differences(treated, control).values(), reps, level, seed)


def ratio_of_means(numerator: dict[int, float], denominator: dict[int, float], reps: int = 10_000,
                   level: float = 0.95, seed: int = 0) -> Interval:
    """mean(numerator) / mean(denominator) over the seeds both have, with a percentile-bootstrap interval that
    resamples seeds jointly: e.g. the share of the warm-start gap a method closes (its gain over warm-started base
    divided by cold minus warm-started base, both per seed). Resamples whose denominator averages 0 are dropped."""
    seeds = sorted(set(numerator) & set(denominator))
    values = np.array([[numerator[s], denominator[s]] for s in seeds], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(values).all() or not seeds or values[:, 1].mean() == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    point = float(values[:, 0].mean() / values[:, 1].mean())
    if len(seeds) == 1:
        return Interval(point, point, point, 1)
    means = _resampled_means(values, reps, seed)
    means = means[means[:, 1] != 0]
    low, high = np.percentile(means[:, 0] / means[:, 1], _tails(level))
    return Interval(point, float(low), float(high), len(seeds))
