"""Cells as tables: Markdown (intervals, the method's actions, the seeds, flagged below MIN_SEEDS) and CSV."""

from __future__ import annotations

import csv
import pathlib

from ..stats import METHODS, MIN_SEEDS
from .runs import Cell

MARKS = {"t": "t", "bootstrap": "boot"}  # interval method -> its mark in a column header
LEGEND = "[t]: 95% Student-t interval over seeds; [boot]: 95% percentile-bootstrap interval over seeds."


def seeds_text(seeds: int, unfinished: int = 0) -> str:
    """A seed count as every table shows it: the unfinished runs beside it, flagged below MIN_SEEDS."""
    return f"{seeds}" + (f" (+{unfinished} unfinished)" if unfinished else "") + (" ⚠" if seeds < MIN_SEEDS else "")


def _header(cells: list[Cell], name: str) -> str:
    """A column's name with the mark of the interval method(s) its cells use, e.g. 'test acc [t]'."""
    used = sorted({cell.columns[name].method for cell in cells if name in cell.columns and cell.columns[name].n > 0})
    return f"{name} [{'/'.join(MARKS[m] for m in used)}]" if used else name


def markdown(cells: list[Cell], scale_note: str = "") -> str:
    """The cells as a Markdown table: a column per interval, its header marked with the interval's method, what the
    methods did (where any kept counters), then the seeds (flagged below MIN_SEEDS); the legend of the marks last."""
    names = list(dict.fromkeys(name for cell in cells for name in cell.columns))
    acted = any(cell.actions for cell in cells)
    header = [_header(cells, n) for n in names] + (["method actions (mean per run)"] if acted else [])
    lines = ["| setting | method | " + " | ".join(header) + " | seeds |", "|---" * (len(header) + 3) + "|"]
    for cell in cells:
        values = [cell.columns[n].format() if n in cell.columns else "-" for n in names]
        values += [cell.actions or "-"] if acted else []
        seeds = seeds_text(cell.seeds, cell.unfinished)
        lines.append(f"| {cell.setting} | {cell.label} | " + " | ".join(values) + f" | {seeds} |")
    lines += ["", LEGEND]
    few = [f"{c.setting} {c.label}" for c in cells if c.seeds < MIN_SEEDS]
    if few:
        lines += ["", f"⚠ fewer than {MIN_SEEDS} finished seeds (intervals wide or absent): " + "; ".join(few)]
    return (scale_note + "\n\n" if scale_note else "") + "\n".join(lines)


def write_csv(cells: list[Cell], path: pathlib.Path) -> None:
    """One line per cell and column: setting, method, quantity, mean, low, high, the interval's method, seeds."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["setting", "method", "quantity", "mean", "ci_low", "ci_high", "interval", "seeds"])
        for cell in cells:
            for name, value in cell.columns.items():
                if value.n:
                    writer.writerow([cell.setting, cell.label, name, value.mean, value.low, value.high,
                                     f"95% {METHODS[value.method]}", value.n])
