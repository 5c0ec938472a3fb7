"""Reports over run directories: a Markdown table of final accuracies per setting and method, and plots."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics

import numpy as np

from .runs import RunStore


@dataclasses.dataclass
class Run:
    path: pathlib.Path
    config: dict
    rows: list[dict]
    finished: bool

    @property
    def is_rl(self) -> bool:
        return "agent" in self.config

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
            return method
        if self.config["protocol"] == "cold":
            return "cold" if method == "base" else f"cold+{method}"
        return "warm" if method == "base" and self.config["protocol"] == "warm_start" else method


def load_runs(directories: list[str | pathlib.Path]) -> list[Run]:
    """Every run directory (one holding config.json) under `directories`."""
    runs = []
    for directory in directories:
        root = pathlib.Path(directory)
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist; give the run directories (or their parents) to report")
        for config_path in sorted(root.rglob("config.json")):
            store = RunStore(config_path.parent)
            runs.append(Run(store.dir, json.loads(config_path.read_text()), store.rows(), store.summary() is not None))
    if not runs:
        raise FileNotFoundError(f"no run directories (with config.json) under {', '.join(map(str, directories))}")
    return runs


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}{spread}"


def table(runs: list[Run]) -> str:
    """Markdown: per setting and method, final test accuracy (mean ± std over seeds, in %) of the reported network,
    of the trained network (hare), the EMA shadow where kept, and the final train accuracy."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if not run.is_rl:
            groups.setdefault((run.setting, run.label), []).append(run)
    lines = ["| setting | method | test acc | hare test acc | train acc | seeds |", "|---|---|---|---|---|---|"]
    for (setting, label), members in sorted(groups.items()):
        finals = [r.rows[-1] for r in members if r.finished and r.rows]
        unfinished = len(members) - len(finals)
        seeds = f"{len(finals)}" + (f" (+{unfinished} unfinished)" if unfinished else "")
        column = lambda key: _mean_std([100 * f[key] for f in finals if key in f])  # noqa: E731
        lines.append(f"| {setting} | {label} | {column('test_acc')} | {column('test_acc_hare')} | "
                     f"{column('train_acc')} | {seeds} |")
        if any("test_acc_shadow" in f for f in finals):
            lines.append(f"| {setting} | {label} EMA (shadow) | {column('test_acc_shadow')} | - | - | {seeds} |")
    return "\n".join(lines)


def rl_table(runs: list[Run]) -> str:
    """Markdown: per game and method, the final evaluation return (mean ± std over seeds) of the network the method
    reports and of the online network, agent steps per second and the share of time in network updates."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.is_rl:
            groups.setdefault((run.setting, run.label), []).append(run)
    lines = ["| setting | method | eval return | online eval return | steps/s | update share | seeds |",
             "|---|---|---|---|---|---|---|"]
    for (setting, label), members in sorted(groups.items()):
        finals = [r.rows[-1] for r in members if r.finished and r.rows]
        column = lambda key: [f[key] for f in finals]  # noqa: E731
        share = _mean_std([100 * v for v in column("update_share")])
        lines.append(f"| {setting} | {label} | {_mean_std(column('eval_return'))} | "
                     f"{_mean_std(column('eval_return_online'))} | {_mean_std(column('steps_per_second'))} | "
                     f"{share}% | {len(finals)} |")
    return "\n".join(lines)


def atari_tables(runs: list[Run], reps: int = 2000) -> str:
    """For Atari-100k runs: per game and method the human-normalised score (HNS) of the reported network and, for
    DrQ(eps), where its return falls among the 100 published DrQ(eps) runs; then per method the aggregates over
    games (IQM, median, mean, optimality gap) with 95% stratified-bootstrap intervals, over as many seeds as every
    game has."""
    from .rl import scores

    finals: dict[str, dict[str, list[float]]] = {}
    lines = ["| game | method | eval return | HNS | percentile among published DrQ(eps) runs | seeds |",
             "|---|---|---|---|---|---|"]
    for run in sorted((r for r in runs if r.is_rl and r.config["env"] == "atari100k" and r.finished),
                      key=lambda r: (r.config["game"], r.label)):
        game = scores.reference_name(run.config["game"])
        finals.setdefault(run.label, {}).setdefault(game, []).append(run.rows[-1]["eval_return"])
    for label, games in sorted(finals.items()):
        for game, returns in sorted(games.items()):
            hns = [float(scores.human_normalized(game, r)) for r in returns]
            percentile = _mean_std([scores.percentile_in_published(game, r) for r in returns])
            lines.append(f"| {game} | {label} | {_mean_std(returns)} | {_mean_std(hns)} | {percentile} | {len(returns)} |")
    if not finals:
        return ""
    lines += ["", "| method | games | seeds per game | IQM | median | mean | optimality gap |",
              "|---|---|---|---|---|---|---|"]
    for label, games in sorted(finals.items()):
        seeds = min(len(r) for r in games.values())
        matrix = np.stack([scores.human_normalized(g, r[:seeds]) for g, r in sorted(games.items())], axis=1)
        cells = [f"{point:.3f} [{low:.3f}, {high:.3f}]" for point, low, high in scores.aggregate_table(matrix, reps).values()]
        lines.append(f"| {label} | {len(games)} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _curves(members: list[Run], key: str) -> tuple[list[int], list[float]]:
    """Epoch index (over all phases) and the mean of `key` over the runs at the epochs where all have it."""
    by_epoch: dict[int, list[float]] = {}
    for run in members:
        for index, row in enumerate(run.rows):
            if key in row and math.isfinite(row[key]):
                by_epoch.setdefault(index + 1, []).append(row[key])
    epochs = sorted(e for e, v in by_epoch.items() if len(v) == len(members))
    return epochs, [statistics.fmean(by_epoch[e]) for e in epochs]


def _cold_references(runs: list[Run], setting_run: Run) -> list[tuple[str, float]]:
    """Final test accuracies (mean over seeds) of cold-start runs of the same dataset and model, and their shadows."""
    cold = [r for r in runs if r.finished and r.config["protocol"] == "cold" and r.config["method"] == "base"
            and r.config["dataset"] == setting_run.config["dataset"] and r.config["model"] == setting_run.config["model"]]
    references = []
    for key, label in (("test_acc", "cold (final)"), ("test_acc_shadow", "cold EMA (final)")):
        values = [r.rows[-1][key] for r in cold if key in r.rows[-1]]
        if values:
            references.append((label, statistics.fmean(values)))
    return references


def _test_curves(axis, members: list[Run], labels: list[str], references) -> None:
    for colour, label in enumerate(labels):
        group = [r for r in members if r.label == label]
        axis.plot(*_curves(group, "test_acc"), color=f"C{colour}", label=label)
        if group[0].config["method"] in ("hare_tortoise", "ema"):
            axis.plot(*_curves(group, "test_acc_hare"), color=f"C{colour}", linestyle=":", label=f"{label} (hare)")
        epochs, values = _curves(group, "test_acc_shadow")
        if values:
            axis.plot(epochs, values, color=f"C{colour}", linestyle="--", label=f"{label} EMA (shadow)")
    for style, (label, value) in zip(("-.", (0, (1, 3))), references):
        axis.axhline(value, color="black", linewidth=0.9, linestyle=style, label=label)


def _save(figure, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plots(runs: list[Run], out: pathlib.Path) -> list[pathlib.Path]:
    """Per setting: test accuracy of the reported network (solid), the hare (dotted) and any EMA shadow (dashed)
    over epochs, with phase boundaries and cold-start references, whole run and last phase side by side; and
    train against test accuracy. PNG files in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for setting in sorted({r.setting for r in runs if r.is_rl}):
        members = [r for r in runs if r.setting == setting]
        figure, axis = plt.subplots(figsize=(8, 4.5))
        for colour, label in enumerate(sorted({r.label for r in members})):
            group = [r for r in members if r.label == label]
            by_step: dict[int, list[float]] = {}
            for run in group:
                for row in run.rows:
                    if "recent_return" in row:
                        by_step.setdefault(row["step"], []).append(row["recent_return"])
            steps = sorted(s for s, v in by_step.items() if len(v) == len(group))
            axis.plot(steps, [statistics.fmean(by_step[s]) for s in steps], color=f"C{colour}", label=label)
        axis.set(xlabel="agent step", ylabel="return (mean of the last 100 training episodes)", title=setting)
        axis.legend(fontsize=8)
        written.append(_save(figure, out / f"{setting.replace('/', '_')}-returns.png"))
    for setting in sorted({r.setting for r in runs if not r.is_rl}):
        members = [r for r in runs if r.setting == setting]
        labels = sorted({r.label for r in members})
        name = setting.replace("/", "_")
        longest = max(members, key=lambda r: len(r.rows))
        boundaries = [i + 1 for i, row in enumerate(longest.rows) if row.get("phase_end")]
        references = [] if longest.config["protocol"] == "cold" else _cold_references(runs, longest)

        figure, (whole, last) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
        for axis in (whole, last):
            _test_curves(axis, members, labels, references)
            for boundary in boundaries[:-1]:
                axis.axvline(boundary, color="grey", linewidth=0.8, linestyle="--")
        whole.set(xlabel="epoch (all phases)", ylabel="test accuracy", title=f"{setting}: test accuracy")
        start = boundaries[-2] if len(boundaries) > 1 else 0
        last.set_xlim(start, boundaries[-1] if boundaries else None)
        finals = [v for label in labels for v in _curves([r for r in members if r.label == label], "test_acc")[1][-1:]]
        if finals:
            last.set_ylim(min(finals + [v for _, v in references]) - 0.05, max(finals + [v for _, v in references]) + 0.02)
        last.set(xlabel="epoch", title="last phase")
        last.legend(fontsize=7, loc="lower right")
        written.append(_save(figure, out / f"{name}-test.png"))

        figure, axis = plt.subplots(figsize=(8, 4.5))
        for colour, label in enumerate(labels):
            group = [r for r in members if r.label == label]
            axis.plot(*_curves(group, "train_acc"), color=f"C{colour}", linestyle="--", label=f"{label} train")
            axis.plot(*_curves(group, "test_acc_hare"), color=f"C{colour}", label=f"{label} test (hare)")
        for boundary in boundaries[:-1]:
            axis.axvline(boundary, color="grey", linewidth=0.8, linestyle="--")
        axis.set(xlabel="epoch (all phases)", ylabel="accuracy", title=f"{setting}: train vs test accuracy")
        axis.legend(fontsize=8)
        written.append(_save(figure, out / f"{name}-train-vs-test.png"))
    return written


def report(directories: list[str | pathlib.Path], out: str | pathlib.Path) -> tuple[str, list[pathlib.Path]]:
    """Write `report.md` (the table and links to the plots) and the plots into `out`; returns the table and plots."""
    runs = load_runs(directories)
    out = pathlib.Path(out)
    sections = []
    if any(not r.is_rl for r in runs):
        sections += ["Final test accuracy in %, mean ± standard deviation over seeds.", "", table(runs), ""]
    if any(r.is_rl for r in runs):
        sections += ["Final evaluation return, mean ± standard deviation over seeds.", "", rl_table(runs), ""]
        atari = atari_tables(runs)
        if atari:
            sections += ["Atari-100k: human-normalised scores; aggregates with 95% stratified-bootstrap intervals.", "",
                         atari, ""]
    text = "\n".join(sections).strip()
    figures = plots(runs, out)
    body = ["# Report", "", text, ""]
    body += [f"![{p.stem}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(body) + "\n")
    return text, figures
