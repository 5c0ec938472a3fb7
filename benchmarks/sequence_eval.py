"""Evaluation's share of a long task sequence: the seconds a run spends testing (each epoch's own-task test,
`Trainer._evaluate`, and each task's accuracy-matrix row, `Trainer._matrix_row`) against the seconds it spends on
everything else (training, metrics, checkpoints), in one run of `mnist1d-permuted-long` and of
`fashion-permuted-long` (200 tasks each) with H&T, whose matrix holds two networks: the costliest case."""

from __future__ import annotations

import tempfile
import time

from hare_tortoise.config import Config
from hare_tortoise.presets import resolve
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer, prepare_dataset


def evaluation_share(config: Config) -> tuple[float, dict[str, int], float]:
    """Testing seconds over the other seconds of one whole run of `config`, the calls of each testing function,
    and the run's seconds."""
    from common import time_inside

    dataset = prepare_dataset(config)
    targets = [(Trainer, name, name) for name in ("_evaluate", "_matrix_row")]
    with time_inside(targets) as (spent, calls), tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        Trainer(config, RunStore(out), dataset, progress=False).run()
        total = time.perf_counter() - began
    testing = sum(spent.values())
    return testing / (total - testing), dict(calls), total


def run() -> list[dict]:
    from common import figure

    figures = []
    for preset in ("mnist1d-permuted-long", "fashion-permuted-long"):
        config = resolve(preset, "hare_tortoise", 1, None, [])
        share, calls, total = evaluation_share(config)
        figures.append(figure(f"sequence_eval/{preset}", share, 0.2, "of the training time", False,
                              f"{config.tasks} tasks, hare_tortoise (both networks in the matrix), matrix of "
                              f"{config.task_test_size} test samples x (the task, the next, {config.matrix_tasks} "
                              f"earlier); {calls.get('_evaluate', 0)} own-task tests and {calls.get('_matrix_row', 0)} "
                              f"matrix rows; run {total:.0f} s"))
    return figures
