"""Runs as a pandas DataFrame, for notebooks: one row per run and metrics row (each evaluation, each RL log
interval, the final row), the run's resolved config as columns beside the row's own fields, so that any sweep can
be sliced with pandas (`frame[frame["method.momentum"] == 0.99]`)."""

from __future__ import annotations

import pathlib

from .runs import Run, flat_config, read_runs

RUN_COLUMNS = ("run", "setting", "label", "variant", "finished")  # what the report calls each run, first


def runs_frame(runs: list[Run]):
    """The DataFrame of `runs` (see the module docstring); a row's field that is also a config key keeps the row's
    value (the config's stays under `config.<key>`)."""
    try:
        import pandas
    except ImportError:
        raise ImportError("a DataFrame of runs needs pandas: pip install 'hare-tortoise[frames]'") from None
    records = []
    for run in runs:
        about = {"run": str(run.path), "setting": run.setting, "label": run.label, "variant": run.variant,
                 "finished": run.finished, "seed": run.seed}
        config = flat_config(run.config)
        for row in run.rows:
            record = {**about, **config, **{f"config.{k}": v for k, v in config.items() if k in row}}
            record.update(row)
            records.append(record)
    frame = pandas.DataFrame.from_records(records)
    first = [c for c in RUN_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def load_runs(*paths: str | pathlib.Path):
    """Every run under `paths` (run directories, or folders holding them) as one DataFrame: see `runs_frame`."""
    return runs_frame(read_runs(list(paths)))
