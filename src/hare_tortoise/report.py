"""Reports over run directories or a sweep: tables of final results with 95% bootstrap intervals over seeds and
paired differences against `base` (Markdown and CSV), and plots (curves with shaded intervals and phase
boundaries, final accuracies with intervals, plasticity metrics over phases). RL runs: see `rl/report.py`."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib

import numpy as np

from .config import Config
from .rl.config import RLConfig
from .runs import RunStore
from .stats import (MIN_SEEDS, Interval, bootstrap_means, differences, mean_interval, paired_difference,
                    ratio_of_means)

CURVE_REPS = 1000  # bootstrap replicates per curve point: the bands are drawn, not tabulated


@dataclasses.dataclass
class Run:
    path: pathlib.Path
    config: dict
    rows: list[dict]
    finished: bool
    variant: str = ""  # the settings that set this run apart from others of its setting and method (a sweep axis)

    @property
    def is_rl(self) -> bool:
        return "agent" in self.config

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def final(self) -> dict:
        return self.rows[-1]

    @property
    def setting(self) -> str:
        c = self.config
        if self.is_rl:
            return f"{c['env']}/{c['game']}/{c['agent']}"
        extra = ("+aug" if c["augment"] else "") + (f"+{c['memory']}" if c["protocol"] == "continual" else "")
        return f"{c['dataset']}/{c['model']}/{c['protocol']}{extra}"

    @property
    def label(self) -> str:
        method = self.config["method"]
        if self.is_rl:
            name = method
        elif self.config["protocol"] == "cold":
            name = "cold" if method == "base" else f"cold+{method}"
        else:
            name = "warm" if method == "base" and self.config["protocol"] == "warm_start" else method
        return f"{name} [{self.variant}]" if self.variant else name


IDENTITY_KEYS = ("seed", "data_dir", "device")  # differ between runs of one cell without making another cell


def _flat(config: dict) -> dict:
    flat = {k: v for k, v in config.items() if k not in IDENTITY_KEYS and not isinstance(v, dict)}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key.removesuffix('_settings')}.{k}": v for k, v in value.items()})
    return flat


def mark_variants(runs: list[Run]) -> None:
    """Name each run's variant: the config values in which runs of the same setting and method differ (e.g. the
    momentum of a sensitivity sweep), so that they form separate cells."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.config["method"]), []).append(run)
    for members in groups.values():
        flats = [_flat(r.config) for r in members]
        keys = sorted({k for f in flats for k in f})
        varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
        for run, flat in zip(members, flats):
            run.variant = ",".join(f"{k}={flat.get(k)}" for k in varying)


def load_runs(directories: list[str | pathlib.Path]) -> list[Run]:
    """Every run directory (one holding config.json) under `directories`."""
    runs = []
    for directory in directories:
        root = pathlib.Path(directory)
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist; give the run directories (or their parents) to report")
        for config_path in sorted(root.rglob("config.json")):
            store = RunStore(config_path.parent)
            stored = json.loads(config_path.read_text())
            # fields added since a run was made get their defaults: old and new runs of a setting share one cell
            config = (RLConfig if "agent" in stored else Config).completed(stored)
            runs.append(Run(store.dir, config, store.rows(), store.summary() is not None))
    if not runs:
        raise FileNotFoundError(f"no run directories (with config.json) under {', '.join(map(str, directories))}")
    mark_variants(runs)
    return runs


@dataclasses.dataclass
class Cell:
    """One table row: a setting and method, its columns as intervals over seeds, and how many seeds it has."""

    setting: str
    label: str
    columns: dict[str, Interval]
    seeds: int
    unfinished: int = 0


def group(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.label), []).append(run)
    return dict(sorted(groups.items()))


def by_seed(members: list[Run], key: str, scale: float = 1.0) -> dict[int, float]:
    """Final `key` of each finished run, keyed by seed."""
    return {r.seed: scale * r.final[key] for r in members if r.finished and r.rows and key in r.final}


def baseline_label(runs: list[Run], setting: str) -> str | None:
    """The label of the `base` runs of a setting (cold, warm or base), if the setting has any."""
    return next((r.label for r in runs if r.setting == setting and r.config["method"] == "base"), None)


def _cold_reference(runs: list[Run], like: Run) -> list[Run]:
    """Finished cold-start base runs of the same dataset, model and augmentation as `like`."""
    same = ("dataset", "model", "augment")
    return [r for r in runs if not r.is_rl and r.finished and r.config["protocol"] == "cold"
            and r.config["method"] == "base" and all(r.config[k] == like.config[k] for k in same)]


def largest_fall(run: Run, key: str = "test_acc") -> float:
    """The largest drop of `key` from one evaluation to the next (0 if it only rose), from the first phase's last
    evaluation on: a reset's drop at a phase boundary or within a phase counts, the first phase's own rise and fall
    on its (noisy) data does not. A run of one phase counts throughout."""
    evaluated = [row for row in run.rows if key in row]
    later = [i for i, row in enumerate(evaluated) if row.get("phase", 0) > 0]
    values = [row[key] for row in evaluated[later[0] - 1 if later else 0:]]
    return max([0.0] + [before - after for before, after in zip(values, values[1:])])


def _is_warm(run: Run) -> bool:
    return run.config["protocol"] == "warm_start"


def supervised_cells(runs: list[Run]) -> list[Cell]:
    """Per setting and method: final test accuracy (in %) of the reported network and of the hare, train accuracy,
    the paired difference to the setting's base; for warm starts the gap to cold start (cold minus this: the
    accuracy the warm start still costs) and the share of base's gap the method closes; the largest fall of test
    accuracy between two evaluations after the first phase (a reset's drop, seen when evaluating every epoch). An
    EMA shadow, where kept, gets its own row."""
    supervised = [r for r in runs if not r.is_rl]
    cells, gap_is_open = [], {}  # per setting: whether base's warm-start gap interval lies above 0
    for (setting, label), members in group(supervised).items():
        finished = [r for r in members if r.finished and r.rows]
        test = by_seed(members, "test_acc", 100)
        columns = {"test acc": mean_interval(test.values()),
                   "hare test acc": mean_interval(by_seed(members, "test_acc_hare", 100).values()),
                   "train acc": mean_interval(by_seed(members, "train_acc", 100).values())}
        base = baseline_label(supervised, setting)
        base_test = by_seed([r for r in supervised if r.setting == setting and r.label == base], "test_acc", 100)
        columns["Δ vs base"] = paired_difference(test, base_test) if base and base != label else mean_interval([])
        cold = by_seed(_cold_reference(supervised, members[0]), "test_acc", 100) if _is_warm(members[0]) else {}
        columns["warm-start gap"] = paired_difference(cold, test) if cold else mean_interval([])
        gap = differences(cold, base_test)
        if setting not in gap_is_open:
            gap_is_open[setting] = mean_interval(gap.values()).low > 0
        # a share of a gap that may be 0 means nothing: shown only where base's gap interval lies above 0
        columns["gap closed"] = (ratio_of_means(differences(test, base_test), gap)
                                 if base != label and gap_is_open[setting] else mean_interval([]))
        columns["largest fall"] = mean_interval(100 * largest_fall(r) for r in finished)
        seeds = len({r.seed for r in finished})  # a run repeated in two sweeps counts once
        cells.append(Cell(setting, label, columns, seeds, len(members) - len(finished)))
        shadow = by_seed(members, "test_acc_shadow", 100)
        if shadow:
            cells.append(Cell(setting, f"{label} EMA (shadow)", {"test acc": mean_interval(shadow.values())},
                              len(shadow)))
    return cells


def averaging_and_resets(runs: list[Run]) -> list[Cell]:
    """Where H&T's gain in a warm start comes from. The paper compares the Tortoise with the cold-start network
    only (Lee et al. 2024, section 5); here, per warm-start setting with `warm`, `ema` and `hare_tortoise` runs,
    paired by seed, in points of test accuracy: the Tortoise's gain over warm-started base, the gain of EMA alone
    (averaging without resets), what the resets add (Tortoise minus EMA), the share of the gain averaging alone
    gives, and the Tortoise against cold start and against an EMA of the cold-start run (its shadow)."""
    supervised = [r for r in runs if not r.is_rl]
    cells = []
    for setting in sorted({r.setting for r in supervised if _is_warm(r)}):
        members = [r for r in supervised if r.setting == setting]
        final = {label: by_seed([r for r in members if r.label == label], "test_acc", 100)
                 for label in ("warm", "ema", "hare_tortoise")}
        if not all(final.values()):
            continue
        tortoise, ema, warm = final["hare_tortoise"], final["ema"], final["warm"]
        cold = _cold_reference(supervised, members[0])
        gain = differences(tortoise, warm)
        columns = {"H&T − warm": mean_interval(gain.values()), "EMA − warm": paired_difference(ema, warm),
                   "H&T − EMA": paired_difference(tortoise, ema),
                   "share from averaging": ratio_of_means(differences(ema, warm), gain),
                   "H&T − cold": paired_difference(tortoise, by_seed(cold, "test_acc", 100)),
                   "H&T − cold EMA": paired_difference(tortoise, by_seed(cold, "test_acc_shadow", 100))}
        cells.append(Cell(setting, "hare_tortoise", columns, len(tortoise)))
    return cells


def markdown(cells: list[Cell], scale_note: str = "") -> str:
    """The cells as a Markdown table: a column per interval, then the seeds (flagged below MIN_SEEDS)."""
    names = list(dict.fromkeys(name for cell in cells for name in cell.columns))
    lines = ["| setting | method | " + " | ".join(names) + " | seeds |", "|---" * (len(names) + 3) + "|"]
    for cell in cells:
        values = [cell.columns[n].format() if n in cell.columns else "-" for n in names]
        seeds = f"{cell.seeds}" + (f" (+{cell.unfinished} unfinished)" if cell.unfinished else "")
        seeds += " ⚠" if cell.seeds < MIN_SEEDS else ""
        lines.append(f"| {cell.setting} | {cell.label} | " + " | ".join(values) + f" | {seeds} |")
    few = [f"{c.setting} {c.label}" for c in cells if c.seeds < MIN_SEEDS]
    if few:
        lines += ["", f"⚠ fewer than {MIN_SEEDS} finished seeds (intervals unreliable or absent): " + "; ".join(few)]
    return (scale_note + "\n\n" if scale_note else "") + "\n".join(lines)


def write_csv(cells: list[Cell], path: pathlib.Path) -> None:
    """One line per cell and column: setting, method, quantity, mean, low, high, seeds."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["setting", "method", "quantity", "mean", "ci_low", "ci_high", "seeds"])
        for cell in cells:
            for name, value in cell.columns.items():
                if value.n:
                    writer.writerow([cell.setting, cell.label, name, value.mean, value.low, value.high, value.n])


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
    mean, low, high = bootstrap_means(np.array([by_point[p] for p in points]).T, reps=CURVE_REPS)
    return points, mean, low, high


def draw(axis, members: list[Run], key: str, colour: str, label: str, linestyle="-", x: str | None = None) -> None:
    """The mean curve of `key` with its 95% bootstrap band over seeds."""
    points, mean, low, high = curve(members, key, x)
    if points:
        axis.plot(points, mean, color=colour, linestyle=linestyle, label=label)
        axis.fill_between(points, low, high, color=colour, alpha=0.15, linewidth=0)


def save(figure, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

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
    cold = _cold_reference(runs, like)
    found = [(label, mean_interval(by_seed(cold, key).values()).mean)
             for key, label in (("test_acc", "cold (final)"), ("test_acc_shadow", "cold EMA (final)"))]
    return [(label, value) for label, value in found if math.isfinite(value)]


def supervised_plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """Per setting: test accuracy over epochs (reported network solid, hare dotted, EMA shadow dashed; bands are
    95% bootstrap intervals over seeds) with phase boundaries and cold-start references, whole run and last phase;
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
    """Final test accuracy of the reported network and of the hare per method, with 95% bootstrap intervals."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 4))
    width = 0.4
    for offset, (key, name) in enumerate((("test_acc", "reported network"), ("test_acc_hare", "hare"))):
        intervals = [mean_interval(by_seed([r for r in members if r.label == label], key, 100).values())
                     for label in labels]
        positions = np.arange(len(labels)) + (offset - 0.5) * width
        axis.bar(positions, [i.mean for i in intervals], width, yerr=np.array([i.error_bar() for i in intervals]).T,
                 capsize=3, label=name, color=f"C{offset}")
    finite = [v for label in labels for v in by_seed([r for r in members if r.label == label], "test_acc", 100).values()]
    if finite:
        axis.set_ylim(min(finite) - 3, max(finite) + 2)
    axis.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    axis.set(ylabel="final test accuracy (%)", title=f"{setting}: final accuracy, 95% bootstrap intervals")
    axis.legend(fontsize=8)
    return save(figure, path)


def _plasticity(members: list[Run], labels: list[str], setting: str):
    """The whole-network plasticity metrics (effective rank, dormant fraction, ...) at each phase end."""
    import matplotlib.pyplot as plt

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
                mean, low, high = bootstrap_means(values, reps=CURVE_REPS)
                axis.plot(range(phases), mean, marker="o", color=colour, label=label)
                axis.fill_between(range(phases), low, high, color=colour, alpha=0.15, linewidth=0)
        axis.set(title=key.removeprefix("metrics/").replace("_", " "), xlabel="phase", xticks=range(phases))
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(f"{setting}: plasticity metrics at the end of each phase (trained network)")
    return figure


def report(directories: list[str | pathlib.Path], out: str | pathlib.Path) -> tuple[str, list[pathlib.Path]]:
    """Write report.md (tables and plots), report.csv and the plots into `out`; returns the text and the plots."""
    import matplotlib

    matplotlib.use("Agg")
    from .rl import report as rl_report

    runs = load_runs(directories)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, cells = [], []
    if any(not r.is_rl for r in runs):
        supervised = supervised_cells(runs)
        cells += supervised
        sections += [markdown(supervised, "Final accuracy in %: mean over seeds [95% percentile-bootstrap interval]. "
                              "Δ vs base: paired by seed. Warm-start gap: cold-start base minus this, paired. Gap "
                              "closed: Δ vs base over base's warm-start gap, where that gap's interval lies above 0. "
                              "Largest fall: the largest drop of test accuracy between two evaluations, from the end "
                              "of the first phase on."), ""]
        decomposition = averaging_and_resets(runs)
        cells += decomposition
        if decomposition:
            sections += [markdown(decomposition, "Averaging or resets: H&T's Tortoise against warm-started base, "
                                  "EMA alone, cold start and the EMA shadow of cold start; differences in points, "
                                  "paired by seed. Share from averaging: (EMA − warm) / (H&T − warm)."), ""]
    if any(r.is_rl for r in runs):
        text, rl_cells = rl_report.tables(runs)
        cells += rl_cells
        sections += [text, ""]
    write_csv(cells, out / "report.csv")
    figures = supervised_plots(runs, out) + rl_report.plots(runs, out)
    text = "\n".join(sections).strip()
    body = ["# Report", "", text, ""] + [f"![{p.stem}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(body) + "\n")
    return text, figures
