"""Heat maps of a sweep grid: for the runs of one setting and method that differ in two or three settings (H&T's
reset interval x momentum x the Hare's learning rate, docs/CONTINUAL.md), the final test accuracy of the reported
network, mean over seeds, in each cell of the grid; one panel per value of the third setting. Each cell shows its
mean and its number of finished seeds."""

from __future__ import annotations

import itertools
import pathlib

import numpy as np

from .plots import save
from .runs import Run, by_seed, setting_value, varying_settings


def _ordered(values) -> list:
    """Distinct values in order, None (a setting switched off) first."""
    return sorted(set(values), key=lambda v: (v is not None, v if v is not None else 0))


def grids(runs: list[Run]) -> dict[tuple[str, str], tuple[list[str], list[Run]]]:
    """(setting, method) -> (the grid's axes, its runs), for every group of runs of one setting and method that
    differ in two or three settings (the seed aside)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.config["method"]), []).append(run)
    found = {}
    for key, members in sorted(groups.items()):
        axes = varying_settings(members)
        if 2 <= len(axes) <= 3:
            found[key] = (axes, members)
    return found


def grid_means(members: list[Run], axes: list[str], key: str = "test_acc") -> tuple[np.ndarray, np.ndarray, list[list]]:
    """The mean over finished seeds of the final `key` (in %) and the number of those seeds, as arrays indexed by
    the values of `axes` in order (NaN and 0 where no run finished); and those values, per axis."""
    values = [_ordered(setting_value(r, axis) for r in members) for axis in axes]
    shape = tuple(len(v) for v in values)
    means, counts = np.full(shape, np.nan), np.zeros(shape, dtype=int)
    for index in itertools.product(*(range(n) for n in shape)):
        cell = [r for r in members if all(setting_value(r, a) == values[i][index[i]] for i, a in enumerate(axes))]
        finals = list(by_seed(cell, key, 100).values())
        if finals:
            means[index], counts[index] = np.mean(finals), len(finals)
    return means, counts, values


def grid_plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """One figure per grid: the first axis down, the second across, a panel per value of the third."""
    import matplotlib.pyplot as plt

    written = []
    for (setting, method), (axes, members) in grids(runs).items():
        means, counts, values = grid_means(members, axes)
        if len(axes) == 2:
            means, counts = means[..., None], counts[..., None]
        panels = means.shape[2]
        low, high = np.nanmin(means), np.nanmax(means)
        figure, plots = plt.subplots(1, panels, figsize=(1.2 * len(values[1]) * panels + 2.5, 1.0 * len(values[0]) + 2),
                                     squeeze=False, layout="constrained")
        for p, axis in enumerate(plots[0]):
            image = axis.imshow(means[:, :, p], vmin=low, vmax=high, cmap="viridis", interpolation="nearest")
            for i, j in itertools.product(range(len(values[0])), range(len(values[1]))):
                if counts[i, j, p]:
                    axis.text(j, i, f"{means[i, j, p]:.1f}\nn={counts[i, j, p]}", ha="center", va="center",
                              fontsize=7, color="white" if means[i, j, p] < (low + high) / 2 else "black")
            axis.set_xticks(range(len(values[1])), [str(v) for v in values[1]])
            axis.set_yticks(range(len(values[0])), [str(v) for v in values[0]])
            axis.set(xlabel=axes[1], ylabel=axes[0],
                     title=f"{axes[2]}={values[2][p]}" if len(axes) == 3 else f"{method}")
        figure.colorbar(image, ax=list(plots[0]), label="final test accuracy %, mean over seeds")
        figure.suptitle(f"{setting} · {method}: final test accuracy over the grid", fontsize=9)
        written.append(save(figure, out / f"{setting.replace('/', '_')}-{method}-grid.png"))
    return written
