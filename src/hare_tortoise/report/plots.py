"""Plots: mean curves with shaded 95% Student-t bands over seeds, and the supervised figures per setting (test
accuracy over epochs with phase boundaries and cold-start references, train against test, final accuracies,
plasticity metrics at phase ends)."""

from __future__ import annotations

import math
import pathlib

import numpy as np

from ..stats import mean_interval, t_means
from .runs import Run, by_seed
from .supervised import cold_reference


def curve(members: list[Run], key: str, x: str | None = None):
    """x (epoch index over all phases, or the row field `x`) and the mean, low and high over the runs of `key`,
    at the points every run has reached."""
    by_point: dict[float, list[float]] = {}
    for run in members:
        for index, row in enumerate(run.rows):
            if key in row and math.isfinite(row[key]):
                by_point.setdefault(row[x] if x else index + 1, []).append(row[key])
    points = sorted(p for p, v in by_point.items() if len(v) == len(members))
    if not points:
        return [], [], [], []
    mean, low, high = t_means(np.array([by_point[p] for p in points]).T)
    return points, mean, low, high


def band(axis, points, mean, low, high, colour, label: str, linestyle: str = "-") -> None:
    """A mean curve and its interval, shaded."""
    axis.plot(points, mean, color=colour, linestyle=linestyle, label=label)
    axis.fill_between(points, low, high, color=colour, alpha=0.15, linewidth=0)


def draw(axis, members: list[Run], key: str, colour: str, label: str, linestyle="-", x: str | None = None) -> None:
    """The mean curve of `key` with its 95% Student-t band over seeds."""
    points, mean, low, high = curve(members, key, x)
    if points:
        band(axis, points, mean, low, high, colour, label, linestyle)


def save(figure, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    if figure.get_layout_engine() is None:  # a figure laid out as it was made keeps its layout
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def colours(labels: list[str]) -> list:
    """A distinct colour per label: matplotlib's 10-colour cycle, or its 20-colour map for more labels."""
    import matplotlib

    return [f"C{i}" for i in range(len(labels))] if len(labels) <= 10 else \
        [matplotlib.colormaps["tab20"](i % 20) for i in range(len(labels))]


def _test_curves(axis, members: list[Run], labels: list[str], references: list[tuple[str, float]]) -> None:
    for colour, label in zip(colours(labels), labels):
        runs = [r for r in members if r.label == label]
        draw(axis, runs, "test_acc", colour, label)
        if runs[0].config["method"] in ("hare_tortoise", "ema"):
            draw(axis, runs, "test_acc_hare", colour, f"{label} (hare)", ":")
        draw(axis, runs, "test_acc_shadow", colour, f"{label} EMA (shadow)", "--")
    for style, (label, value) in zip(("-.", (0, (1, 3))), references):
        axis.axhline(value, color="black", linewidth=0.9, linestyle=style, label=label)


def _references(runs: list[Run], like: Run) -> list[tuple[str, float]]:
    cold = cold_reference(runs, like)
    found = [(label, mean_interval(by_seed(cold, key).values()).mean)
             for key, label in (("test_acc", "cold (final)"), ("test_acc_shadow", "cold EMA (final)"))]
    return [(label, value) for label, value in found if math.isfinite(value)]


def supervised_plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """Per setting: test accuracy over epochs (reported network solid, hare dotted, EMA shadow dashed; bands are
    95% Student-t intervals over seeds) with phase boundaries and cold-start references, whole run and last phase;
    train against test accuracy; final accuracies with intervals; plasticity metrics at the end of each phase."""
    import matplotlib.pyplot as plt

    supervised = [r for r in runs if not r.is_rl]
    written = []
    for setting in sorted({r.setting for r in supervised}):
        members = [r for r in supervised if r.setting == setting]
        labels = sorted({r.label for r in members})
        name = setting.replace("/", "_")
        longest = max(members, key=lambda r: len(r.rows))
        boundaries = [i + 1 for i, row in enumerate(longest.rows) if row.get("phase_end")]
        references = [] if longest.config["protocol"] == "cold" else _references(runs, longest)

        figure, (whole, last) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
        for axis in (whole, last):
            _test_curves(axis, members, labels, references)
            _phase_lines(axis, boundaries)
        whole.set(xlabel="epoch (all phases)", ylabel="test accuracy", title=f"{setting}: test accuracy")
        last.set_xlim(boundaries[-2] if len(boundaries) > 1 else 0, boundaries[-1] if boundaries else None)
        finals = [r.final["test_acc"] for r in members if r.finished] + [v for _, v in references]
        if finals:
            last.set_ylim(min(finals) - 0.05, max(finals) + 0.02)
        last.set(xlabel="epoch", title="last phase")
        last.legend(fontsize=7, loc="lower right")
        written.append(save(figure, out / f"{name}-test.png"))

        figure, axis = plt.subplots(figsize=(8, 4.5))
        for colour, label in zip(colours(labels), labels):
            group_runs = [r for r in members if r.label == label]
            draw(axis, group_runs, "train_acc", colour, f"{label} train", "--")
            draw(axis, group_runs, "test_acc_hare", colour, f"{label} test (hare)")
        _phase_lines(axis, boundaries)
        axis.set(xlabel="epoch (all phases)", ylabel="accuracy", title=f"{setting}: train vs test accuracy")
        axis.legend(fontsize=8)
        written.append(save(figure, out / f"{name}-train-vs-test.png"))
        written.append(_final_bars(members, labels, setting, out / f"{name}-final.png"))
        figure = _plasticity(members, labels, setting)
        if figure is not None:
            written.append(save(figure, out / f"{name}-plasticity.png"))
    return written


def _phase_lines(axis, boundaries: list[int]) -> None:
    """Dashed lines where one phase ends and the next begins."""
    for boundary in boundaries[:-1]:
        axis.axvline(boundary, color="grey", linewidth=0.8, linestyle="--")


def _final_bars(members: list[Run], labels: list[str], setting: str, path: pathlib.Path) -> pathlib.Path:
    """Final test accuracy of the reported network and of the hare per method, with 95% Student-t intervals."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 4))
    width = 0.4
    for offset, (key, name) in enumerate((("test_acc", "reported network"), ("test_acc_hare", "hare"))):
        intervals = [mean_interval(by_seed([r for r in members if r.label == label], key, 100).values())
                     for label in labels]
        positions = np.arange(len(labels)) + (offset - 0.5) * width
        axis.bar(positions, [i.mean for i in intervals], width, yerr=np.array([i.error_bar() for i in intervals]).T,
                 capsize=3, label=name, color=f"C{offset}")
    finite = [v for label in labels
              for v in by_seed([r for r in members if r.label == label], "test_acc", 100).values()]
    if finite:
        axis.set_ylim(min(finite) - 3, max(finite) + 2)
    axis.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    axis.set(ylabel="final test accuracy (%)", title=f"{setting}: final accuracy, 95% Student-t intervals")
    axis.legend(fontsize=8)
    return save(figure, path)


def _plasticity(members: list[Run], labels: list[str], setting: str):
    """The whole-network plasticity metrics (effective rank, dormant fraction, ...) at each phase end."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = sorted({k for r in members for row in r.rows if row.get("phase_end")
                   for k in row if k.startswith("metrics/") and k.count("/") == 1})
    if not keys:
        return None
    columns = min(4, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        for colour, label in zip(colours(labels), labels):
            runs = [r for r in members if r.label == label]
            ends = [[row for row in r.rows if row.get("phase_end")] for r in runs]
            phases = min(len(e) for e in ends)
            if phases and all(key in e[p] for e in ends for p in range(phases)):
                values = np.array([[e[p][key] for p in range(phases)] for e in ends])
                mean, low, high = t_means(values)
                # markers only while they stay apart (a 200-task sequence has 200 phase ends)
                axis.plot(range(phases), mean, marker="o" if phases <= 20 else None, color=colour, label=label)
                axis.fill_between(range(phases), low, high, color=colour, alpha=0.15, linewidth=0)
        axis.set(title=key.removeprefix("metrics/").replace("_", " "), xlabel="phase")
        axis.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))  # readable ticks for 2 or 200 phases
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(f"{setting}: plasticity metrics at the end of each phase (trained network)")
    return figure
