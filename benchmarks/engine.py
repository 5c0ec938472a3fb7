"""Engine overhead: images per second of the full training loop (batching, method hooks, gradient clipping,
metrics, logging, checkpoints at the default interval) against a bare loop of forward, backward and AdamW step on
pre-made tensors, same model and batch. Evaluation and plasticity metrics run once, at the end, as for a final
accuracy; the preset's evaluation-only EMA shadow is off."""

from __future__ import annotations

import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from hare_tortoise.cli import resolve
from hare_tortoise.config import Config
from hare_tortoise.data import Dataset
from hare_tortoise.nn import models
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer, prepare_dataset


def rates(config: Config, dataset: Dataset, rounds: int = 4) -> tuple[float, float, float, int]:
    """Over `rounds` turns of an engine run then a bare run: the median ratio of their images/s (each ratio from
    two runs next to each other in time, so that the machine's slow spells fall on both), the median images/s of
    each, and the steps per run."""
    steps = config.epochs * -(-len(dataset.y_train) // config.batch_size)

    def engine() -> float:
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, RunStore(out), dataset, progress=False)
            began = time.perf_counter()
            trainer.run()
            return time.perf_counter() - began

    def bare() -> float:
        torch.manual_seed(1)
        model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        x = torch.randn(config.batch_size, *dataset.input_shape)
        y = torch.randint(0, dataset.num_classes, (config.batch_size,))
        began = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return time.perf_counter() - began

    images = config.epochs * len(dataset.y_train)
    pairs = [(images / engine(), images / bare()) for _ in range(rounds)]
    return (statistics.median(e / b for e, b in pairs), statistics.median(e for e, _ in pairs),
            statistics.median(b for _, b in pairs), steps)


def run() -> list[dict]:
    from common import figure

    # the whole mnist1d-cold run (50 epochs) with H&T: the smallest model, where per-step overhead weighs most;
    # then the same without the recipe's gradient clipping (grad_clip=None), which the bare loop does not do
    figures = []
    for overrides, name, what in (([], "", "with gradient clipping (the presets' recipe)"),
                                  (["grad_clip=None"], "_without_clipping", "without gradient clipping")):
        config = resolve("mnist1d-cold", "hare_tortoise", 1, None, ["eval_every=50", "ema_shadow=None", *overrides])
        ratio, engine, bare, steps = rates(config, prepare_dataset(config))
        figures.append(figure(f"engine/images_per_second_vs_bare_loop{name}", ratio, 0.9,
                              "fraction of the bare loop", True,
                              f"mnist1d-cold (MLP) + hare_tortoise {what}, {steps} steps of {config.batch_size}: "
                              f"engine {engine:,.0f} images/s, bare loop (forward, backward, AdamW) {bare:,.0f} images/s "
                              "(medians of 4 turns)"))
    return figures
