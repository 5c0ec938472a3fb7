"""Engine overhead: images per second of the full training loop (batching, method hooks, gradient clipping,
metrics, logging, checkpoints at the default interval) against a bare loop of forward, backward and AdamW step on
pre-made tensors (one epoch of the same data, batched in advance), same model and batch, and against the same bare
loop with the recipe's gradient clipping (torch's `clip_grad_norm_`, and the engine's own `FlatGradients`). The
bare loops train between the engine's epochs, so that all are timed over the same minutes. Evaluation and
plasticity metrics run once, at the end, as for a final accuracy; the preset's evaluation-only EMA shadow is off."""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from hare_tortoise.config import Config
from hare_tortoise.data import Dataset
from hare_tortoise.data.batches import Inputs
from hare_tortoise.flat import FlatGradients
from hare_tortoise.nn import models
from hare_tortoise.optim import adamw
from hare_tortoise.presets import resolve
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer, prepare_dataset


def own_batches(config: Config, dataset: Dataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of the run's own data, batched and normalised before any clock starts, so that a bare loop trains
    as the run does rather than memorising one random batch (step_pieces.py times both: no steady difference)."""
    order = torch.randperm(len(dataset.y_train), generator=torch.Generator().manual_seed(config.seed))
    return [(Inputs(dataset.mean, dataset.std)(dataset.x_train[rows]), dataset.y_train[rows])
            for rows in order.split(config.batch_size)]


def bare_loop(config: Config, dataset: Dataset, batches: list,
              clip: Literal["torch", "engine"] | None = None) -> Callable[[int], None]:
    """A fresh model and the engine's own optimizer; the returned function trains them for n more steps of forward,
    backward, (gradient clipping at the config's norm: torch's `clip_grad_norm_`, or the engine's gradients in one
    buffer, `FlatGradients`,) AdamW, cycling through `batches`."""
    torch.manual_seed(1)
    model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm)
    parameters = list(model.parameters())
    optimizer = adamw(parameters, config.lr, config.weight_decay)
    gradients = FlatGradients(parameters) if clip == "engine" else None
    position = itertools.count()

    def train(n: int) -> None:
        for _ in range(n):
            x, y = batches[next(position) % len(batches)]
            gradients.zero() if gradients else optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if gradients:
                gradients.clip(config.grad_clip)
            elif clip == "torch":
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
    return train


class _Interleaved(Trainer):
    """The engine, unchanged, with bare loops run between its epochs: after each engine epoch every bare loop trains
    as many steps, timed on its own, so that the machine's slow spells fall on all of them alike rather than on
    whichever ran whole during one (benchmarks/README.md: whole runs in turns read 0.80-0.97 for the same code)."""

    def __init__(self, *args, bare: dict[str, Callable[[int], None]], **kwargs):
        super().__init__(*args, **kwargs)
        self.bare, self.bare_seconds, self.bare_steps = bare, dict.fromkeys(bare, 0.0), 0

    def _epoch(self, index: int, epoch: int, optimizer) -> dict:
        before = self.step
        row = super()._epoch(index, epoch, optimizer)
        # each loop's place in the turn alternates, so that none always runs just after the engine's epoch
        for name, train in (self.bare.items() if epoch % 2 else reversed(self.bare.items())):
            began = time.perf_counter()
            train(self.step - before)
            self.bare_seconds[name] += time.perf_counter() - began
        self.bare_steps += self.step - before
        return row


def rates(config: Config, dataset: Dataset, rounds: int = 3) -> tuple[list[dict[str, float]], int]:
    """The images/s of each loop in each of `rounds` engine runs, and the steps per run. Between the epochs of each
    run train a bare loop and, if the config clips gradients, a bare loop that clips them with torch's
    `clip_grad_norm_` and one that clips as the engine does (`FlatGradients`: one norm over one buffer).
    The engine's time is its whole run (checkpoints, rows, the final evaluation included) less the bare loops'."""
    batches = own_batches(config, dataset)
    images = config.epochs * len(dataset.y_train)
    turns = []
    for _ in range(rounds):
        bare = {"bare": bare_loop(config, dataset, batches)}
        if config.grad_clip is not None:
            bare["bare_torch_clipping"] = bare_loop(config, dataset, batches, "torch")
            bare["bare_engine_clipping"] = bare_loop(config, dataset, batches, "engine")
        with tempfile.TemporaryDirectory() as out:
            trainer = _Interleaved(config, RunStore(out), dataset, progress=False, bare=bare)
            began = time.perf_counter()
            trainer.run()
            total = time.perf_counter() - began
        seconds = {"engine": total - sum(trainer.bare_seconds.values()), **trainer.bare_seconds}
        turns.append({name: images / s for name, s in seconds.items()})
    return turns, trainer.bare_steps


def median_ratio(turns: list[dict[str, float]], numerator: str, denominator: str) -> float:
    """The median over runs of one loop's images/s over another's, each ratio from loops timed in the same run."""
    return statistics.median(t[numerator] / t[denominator] for t in turns)


def run() -> list[dict]:
    from common import figure

    # the whole mnist1d-cold run (50 epochs) with H&T: the smallest model, where per-step overhead weighs most.
    # With the recipe's gradient clipping: against the bare loop without it (the bare loop), and against
    # bare loops that clip too (the same arithmetic: what the engine adds around it); then both without clipping.
    figures = []
    for overrides, what in (([], "with gradient clipping (the presets' recipe)"),
                            (["grad_clip=None"], "without gradient clipping")):
        config = resolve("mnist1d-cold", "hare_tortoise", 1, None, ["eval_every=50", "ema_shadow=None", *overrides])
        turns, steps = rates(config, prepare_dataset(config))
        speed = {name: f"{statistics.median(t[name] for t in turns):,.0f} images/s" for name in turns[0]}
        timing = "medians of 3 runs, the loops in turns epoch by epoch"
        common = (f"mnist1d-cold (MLP) + hare_tortoise {what}, {steps} steps of {config.batch_size}: "
                  f"engine {speed['engine']}")
        if config.grad_clip is None:
            figures.append(figure("engine/images_per_second_vs_bare_loop_without_clipping",
                                  median_ratio(turns, "engine", "bare"), 0.9, "fraction of the bare loop", True,
                                  f"{common}, bare loop (forward, backward, AdamW) {speed['bare']} ({timing})"))
            continue
        clipping = 1 - median_ratio(turns, "bare_engine_clipping", "bare")
        figures.append(figure("engine/images_per_second_vs_bare_loop", median_ratio(turns, "engine", "bare"), 0.9,
                              "fraction of the bare loop", True,
                              f"{common}, bare loop (forward, backward, AdamW) {speed['bare']}; the recipe's "
                              f"clipping alone takes {clipping:.1%} of the bare loop's time ({timing})"))
        for loop, label, clip in (("bare_engine_clipping", "the_engines", "the engine's FlatGradients clipping"),
                                  ("bare_torch_clipping", "torch", "torch's clip_grad_norm_")):
            figures.append(figure(f"engine/images_per_second_vs_bare_loop_with_{label}_clipping",
                                  median_ratio(turns, "engine", loop), 0.9, "fraction of the bare loop", True,
                                  f"{common}, bare loop (forward, backward, {clip}, AdamW) {speed[loop]} ({timing})"))
    return figures
