"""Reports over run directories or a sweep: tables of final results with intervals over seeds and paired
differences against `base` (Markdown and CSV), the methods' counters, and plots. One module per job: `runs`
(reading and grouping), `frame` (runs as a pandas DataFrame: `load_runs`), `tables`, `supervised`, `sequences`
(task sequences), `rl`, `rl_sequences` (game sequences), `plots`, `grid` (heat maps of sweep grids)."""

from __future__ import annotations

import pathlib

from .frame import load_runs, runs_frame
from .grid import grid_plots
from .plots import supervised_plots
from .rl import plots as rl_plots
from .rl import tables as rl_tables
from .rl_sequences import game_sequence_cells, game_sequence_plots
from .runs import Cell, Run, mark_variants, read_runs
from .sequences import RANDOM_LABELS_NOTE, sequence_cells, sequence_plots
from .supervised import averaging_and_resets, largest_fall, supervised_cells
from .tables import markdown, write_csv

__all__ = ["Cell", "Run", "averaging_and_resets", "largest_fall", "load_runs", "mark_variants", "markdown",
           "read_runs", "report", "runs_frame", "supervised_cells", "write_csv"]


def report(directories: list[str | pathlib.Path], out: str | pathlib.Path) -> tuple[str, list[pathlib.Path]]:
    """Write report.md (tables and plots), report.csv and the plots into `out`; returns the text and the plots."""
    import matplotlib

    matplotlib.use("Agg")
    runs = read_runs(directories)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, cells = [], []
    if any(not r.is_rl for r in runs):
        supervised = supervised_cells(runs)
        cells += supervised
        sections += [markdown(supervised, "Final accuracy in %: mean over seeds [95% Student-t interval]. "
                              "P(> base): the probability that a run beats a base run of the setting (Agarwal et al. "
                              "2021) [95% percentile bootstrap]. "
                              "Δ vs base: paired by seed. Warm-start gap: cold-start base minus this, paired. Gap "
                              "closed: Δ vs base over base's warm-start gap, where that gap's interval lies above 0 "
                              "[95% percentile bootstrap]. "
                              "Largest fall: the largest drop of test accuracy between two evaluations, from the end "
                              "of the first phase on."), ""]
        decomposition = averaging_and_resets(runs)
        cells += decomposition
        if decomposition:
            sections += [markdown(decomposition, "Averaging or resets: H&T's Tortoise against warm-started base, "
                                  "EMA alone, cold start and the EMA shadow of cold start; differences in points, "
                                  "paired by seed. Share from averaging: (EMA − warm) / (H&T − warm)."), ""]
        sequences = sequence_cells(runs)
        cells += sequences
        if sequences:
            sections += [markdown(sequences, "Task sequences, in points: average accuracy (mean of the last row of "
                                  "the task-accuracy matrix R[i][j]), backward transfer (Lopez-Paz & Ranzato 2017; "
                                  "negative: forgetting), forgetting (Chaudhry et al. 2018), each task's own test "
                                  "accuracy at its end over the last tenth of the tasks, and that over a fresh "
                                  "network's on the same tasks (the setting's full_reset runs): the plasticity "
                                  "ratio. Entries of R not tested are skipped." + (RANDOM_LABELS_NOTE if any(
                                      "/random_labels" in cell.setting for cell in sequences) else "")), ""]
    if any(r.is_rl for r in runs):
        text, rl_cells = rl_tables(runs)
        cells += rl_cells
        sections += [text, ""]
        games = game_sequence_cells(runs)
        cells += games
        if games:
            sections += [markdown(games, "Game sequences: the return matrix R[i][j] (after stint i, the return on the "
                                  "game of stint j), divided by a fresh agent's final return on that game where the "
                                  "report holds single-game base runs of one stint (÷ fresh; raw returns "
                                  "otherwise): average return (mean of the last row), backward transfer (Lopez-Paz "
                                  "& Ranzato 2017), forgetting (Chaudhry et al. 2018), and each stint's own-game "
                                  "return over the last cycle of games (÷ fresh: the plasticity ratio). Δ vs base: "
                                  "a method's average and own-game returns minus base's, paired by seed; "
                                  "P(average > base): the probability that its average return beats a base "
                                  "run's (Agarwal et al. 2021) [95% percentile bootstrap]."), ""]
    write_csv(cells, out / "report.csv")
    figures = supervised_plots(runs, out) + sequence_plots(runs, out) + grid_plots(runs, out) + rl_plots(runs, out) + \
        game_sequence_plots(runs, out)
    text = "\n".join(sections).strip()
    body = ["# Report", "", text, ""] + [f"![{p.stem}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(body) + "\n")
    return text, figures
