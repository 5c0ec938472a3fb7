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
    resamples = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    means = values[resamples].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return mean, low, high


def mean_interval(values, reps: int = 10_000, level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of `values` (one per seed) with its percentile-bootstrap interval."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean, low, high = bootstrap_means(np.asarray(values)[:, None], reps, level, seed)
    return Interval(float(mean[0]), float(low[0]), float(high[0]), len(values))


def paired_difference(treated: dict[int, float], control: dict[int, float], reps: int = 10_000,
                      level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of treated[s] - control[s] over the seeds s both have, with its bootstrap interval."""
    seeds = sorted(set(treated) & set(control))
    return mean_interval([treated[s] - control[s] for s in seeds], reps, level, seed)
