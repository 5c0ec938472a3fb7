"""Task sequences in a report: each run's task-accuracy matrix R[i][j] from its phase-end rows, the sequence
metrics over it (average accuracy, backward transfer, forgetting; `hare_tortoise.metrics`) and the plasticity ratio
against a fresh network, as a table with intervals over seeds; a heat map of the mean matrix and the curves of
plasticity, trainability and generalisation over the task index, per setting."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import torch

from .. import metrics
from ..data.streams import SEQUENCES
from ..stats import mean_interval, t_means
from .plots import band, colours, save
from .runs import Cell, Run, group, method_actions

# the fresh-network reference of Dohare et al. (Nature 2024): `full_reset` re-initialises every weight at each task
# start, so its own-task accuracy R[j][j] is that of a network trained on task j alone
FRESH = "full_reset"
NETWORKS = {"task_acc": "", "task_acc_hare": " (hare)"}


def is_sequence(run: Run) -> bool:
    return not run.is_rl and run.config["protocol"] in SEQUENCES


def _ends(run: Run) -> list[dict]:
    return [row for row in run.rows if row.get("phase_end")]


def accuracy_matrix(run: Run, key: str = "task_acc") -> np.ndarray:
    """R[i][j] in %, from the run's phase-end rows (one row per task finished; NaN where a task was not tested,
    and the rows of tasks not yet reached)."""
    ends = [row[key] for row in _ends(run) if key in row]
    tasks = len(ends[0]) if ends else 0
    matrix = np.full((tasks, tasks), np.nan)
    for i, row in enumerate(ends):
        matrix[i] = [np.nan if value is None else 100 * value for value in row]
    return matrix


def own_task(run: Run, key: str) -> np.ndarray:
    """Per task, `key` of its phase-end row (train_acc, test_acc, ...) in %: the value at that task's end."""
    return np.array([100 * row[key] for row in _ends(run) if key in row])


def _finished(members: list[Run], key: str) -> list[Run]:
    return [r for r in members if r.finished and any(key in row for row in _ends(r))]


# what the matrix measures when every task relabels the same samples at random (the report's caption says it)
RANDOM_LABELS_NOTE = (" On random labels every task relabels the same samples at random, so an earlier task's "
                      "accuracy after later tasks is its memorised labels surviving, near chance once they are "
                      "overwritten: there, forgetting and backward transfer restate trainability, not lost knowledge.")


def sequence_cells(runs: list[Run]) -> list[Cell]:
    """Per setting, method and network: average accuracy, backward transfer and forgetting of the matrix (in
    points), the mean own-task accuracy over the last tenth of the tasks, and the plasticity ratio there: that
    accuracy over the fresh network's (`full_reset` runs of the setting, mean over their seeds) on the same tasks."""
    sequences = [r for r in runs if is_sequence(r)]
    cells = []
    for (setting, label), members in group(sequences).items():
        fresh = [r for r in sequences if r.setting == setting and r.config["method"] == FRESH and r.finished]
        fresh_own = np.mean([own_task(r, "test_acc") for r in fresh], axis=0) if fresh else None
        for key, suffix in NETWORKS.items():
            done = _finished(members, key)
            if not done:
                continue
            matrices = [torch.from_numpy(accuracy_matrix(r, key)) for r in done]
            own = [np.diagonal(m.numpy()) for m in matrices]
            last = slice(-max(1, len(own[0]) // 10), None)
            columns = {"average acc": mean_interval(metrics.average_accuracy(m) for m in matrices),
                       "backward transfer": mean_interval(metrics.backward_transfer(m) for m in matrices),
                       "forgetting": mean_interval(metrics.forgetting(m) for m in matrices),
                       "last-tenth own-task acc": mean_interval(float(np.mean(o[last])) for o in own)}
            if fresh_own is not None and len(fresh_own) == len(own[0]):
                columns["plasticity ratio"] = mean_interval(float(np.mean(o[last]) / np.mean(fresh_own[last]))
                                                            for o in own)
            cells.append(Cell(setting, label + suffix, columns, len({r.seed for r in done}),
                              len(members) - len(done), method_actions(members)))
    return cells


def nanmean(stacked: np.ndarray) -> np.ndarray:
    """The mean over the first axis, skipping NaN; NaN where every value is NaN (no warning)."""
    counts = (~np.isnan(stacked)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(stacked, axis=0) / counts, np.nan)


def _band(axis, values: list[np.ndarray], colour, label: str, linestyle: str = "-") -> None:
    """The mean over seeds of per-task values, with its 95% Student-t band (a single seed: the line alone)."""
    stacked = np.array(values)
    tasks = np.arange(stacked.shape[1])
    mean, low, high = t_means(stacked) if len(stacked) > 1 else (stacked[0], stacked[0], stacked[0])
    band(axis, tasks, mean, low, high, colour, label, linestyle)


def sequence_plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """Per setting of a task sequence: the curves over the task index (own-task test accuracy, the loss-of-
    plasticity curve; final train accuracy per task, trainability; their gap, generalisation) per method and,
    dashed, the Hare of H&T; and a heat map of each method's mean accuracy matrix."""
    import matplotlib.pyplot as plt

    written = []
    sequences = [r for r in runs if is_sequence(r)]
    for setting in sorted({r.setting for r in sequences}):
        cells = {label: _finished(m, "task_acc") for (s, label), m in group(sequences).items() if s == setting}
        cells = {label: members for label, members in cells.items() if members}
        if not cells:
            continue
        figure, axes = plt.subplots(1, 3, figsize=(15, 4))
        for colour, (label, members) in zip(colours(list(cells)), cells.items()):
            for test_key, style, suffix in (("test_acc", "-", ""), ("test_acc_hare", "--", " (hare)")):
                if suffix and members[0].config["method"] != "hare_tortoise":
                    continue
                own = [own_task(r, test_key) for r in members]
                trained = [own_task(r, "train_acc") for r in members]
                _band(axes[0], own, colour, label + suffix, style)
                if not suffix:
                    _band(axes[1], trained, colour, label)
                _band(axes[2], [t - o for t, o in zip(trained, own)], colour, label + suffix, style)
        for axis, title in zip(axes, ("plasticity: own-task test accuracy %", "trainability: train accuracy %",
                                      "generalisation gap: train - test, points")):
            axis.set(title=title, xlabel="task")
        axes[0].legend(fontsize=7)
        written.append(save(figure, out / f"{setting.replace('/', '_')}-tasks.png"))
        columns = min(4, len(cells))
        rows = math.ceil(len(cells) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
        for axis, (label, members) in zip(axes.flat, cells.items()):
            mean = nanmean(np.array([accuracy_matrix(r) for r in members]))
            image = axis.imshow(mean, vmin=0, vmax=100, cmap="viridis", interpolation="nearest")
            axis.set(title=f"{label} (mean of {len(members)})", xlabel="tested task j", ylabel="after task i")
            figure.colorbar(image, ax=axis, label="R[i][j], %")
        for axis in list(axes.flat)[len(cells):]:
            axis.axis("off")
        written.append(save(figure, out / f"{setting.replace('/', '_')}-matrix.png"))
    return written
