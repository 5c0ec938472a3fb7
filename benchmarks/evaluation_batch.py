"""Evaluation batch: the test accuracy of a fresh model of each CPU preset in the batch the engine picks
(`evaluation.evaluation_batch`) against batches of 4,096, timed in turns in one process, with the page faults each
evaluation takes (memory the C library mapped and the kernel zeroed afresh). Target: never slower."""

from __future__ import annotations

import torch

from hare_tortoise.data.batches import Inputs
from hare_tortoise.evaluation import EVAL_BATCH, accuracy, evaluation_batch
from hare_tortoise.nn import models
from hare_tortoise.presets import resolve
from hare_tortoise.train import prepare_dataset


def run() -> list[dict]:
    from common import figure, interleaved, page_faults

    def faults_of(function) -> int:
        before = page_faults()
        function()
        return page_faults() - before

    figures = []
    for preset in ("mnist1d-cold", "fashion-cold"):
        config = resolve(preset, "base", 1, None, [])
        dataset = prepare_dataset(config)
        torch.manual_seed(0)
        model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm)
        inputs = Inputs(dataset.mean, dataset.std)
        chosen = evaluation_batch(model, inputs(dataset.x_test[:1]), config.batch_size)
        evaluate = {batch: (lambda batch=batch: accuracy(model, dataset.x_test, dataset.y_test, inputs, batch))
                    for batch in (EVAL_BATCH, chosen)}
        seconds = interleaved(evaluate, rounds=3)
        faults = {batch: faults_of(function) for batch, function in evaluate.items()}
        figures.append(figure(f"evaluation_batch/{preset}", seconds[EVAL_BATCH] / seconds[chosen], 1.0,
                              "x faster than batches of 4,096", True,
                              f"{config.model}, {len(dataset.y_test):,} test samples: batches of {chosen:,} "
                              f"{seconds[chosen]:.3f} s and {faults[chosen]:,} page faults, batches of 4,096 "
                              f"{seconds[EVAL_BATCH]:.3f} s and {faults[EVAL_BATCH]:,} page faults (medians of 3 "
                              "turns)"))
    return figures
