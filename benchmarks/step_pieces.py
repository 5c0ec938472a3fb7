"""Where the engine's time goes on the MNIST-1D MLP: each piece of work it adds to a bare training step, timed alone
with `timeit`, and the once-per-run work of one `mnist1d-cold` + H&T run. Not a ratio, so not in `make bench`:
`.venv/bin/python benchmarks/step_pieces.py` (about a minute); benchmarks/README.md explains the engine figures
with it. Also: how often the recipe's clip scales the gradients, and the bare loop on one random batch against the
run's own batches."""

from __future__ import annotations

import tempfile
import timeit
from unittest import mock

import torch
import torch.nn.functional as F

from hare_tortoise import HareTortoise
from hare_tortoise import train as training
from hare_tortoise.data.batches import Inputs
from hare_tortoise.flat import FlatGradients
from hare_tortoise.nn import models
from hare_tortoise.presets import resolve
from hare_tortoise.runs import RunStore


def microseconds(function, number: int = 2000) -> float:
    """The fastest of 5 repeats, per call: the piece's own cost, without the machine's slow spells."""
    function()
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def per_step(config, dataset) -> dict[str, float]:
    torch.manual_seed(0)
    model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm)
    x, y = dataset.x_train[:256], dataset.y_train[:256]
    parameters, gradients = list(model.parameters()), FlatGradients(model.parameters())
    gradients.zero()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    ht, inputs = HareTortoise(model), Inputs(dataset.mean, dataset.std)
    rows, generator = torch.randperm(len(dataset.y_train))[:256], torch.Generator().manual_seed(0)
    correct, loss_sum, loss = torch.zeros((), dtype=torch.long), torch.zeros(()), torch.ones(())

    def disabled_autocast():
        with torch.autocast("cpu", enabled=False):
            pass

    return {
        "the Tortoise update (HareTortoise.update)": microseconds(ht.update),
        "gathering and normalising one batch (the engine: a chunk of batches at once)": microseconds(
            lambda: inputs(dataset.x_train.index_select(0, rows), generator)),
        "counting correct answers per step (the engine: once an epoch)": microseconds(
            lambda: correct.add_((logits.detach().argmax(1) == y).sum())),
        "summing the loss": microseconds(lambda: loss_sum.add_(loss, alpha=256)),
        "a disabled torch.autocast (no longer entered on the CPU)": microseconds(disabled_autocast),
        "our gradient clipping (FlatGradients.clip: one buffer)": microseconds(lambda: gradients.clip(1e9)),
        "torch's clip_grad_norm_": microseconds(lambda: torch.nn.utils.clip_grad_norm_(parameters, 1e9)),
    }


def bare_loops(config, dataset, steps: int = 200) -> dict[str, float]:
    """Microseconds per step of the bare loop (forward, backward, AdamW) on one random batch, which it memorises,
    and on the run's own batches, timed in turns: the check behind benchmarks/engine.py's bare loop training on the
    run's data (the fairer comparison; on the MLP the two showed no steady difference, benchmarks/README.md)."""
    from common import interleaved
    from engine import bare_loop, own_batches

    real = own_batches(config, dataset)
    random = [(torch.randn_like(real[0][0]), torch.randint(0, dataset.num_classes, real[0][1].shape))]
    loops = {"one random batch": bare_loop(config, dataset, random),
             "the run's batches": bare_loop(config, dataset, real)}
    timed = interleaved({name: (lambda train=train: train(steps)) for name, train in loops.items()}, rounds=7)
    return {name: seconds / steps * 1e6 for name, seconds in timed.items()}


def per_run(config, dataset) -> tuple[dict[str, tuple[float, int]], list[float]]:
    """Milliseconds and calls of the Trainer's once-per-epoch and once-per-run work over one whole run, and the
    global gradient norm before clipping at every step."""
    from common import time_inside

    norms, original_clip = [], FlatGradients.clip

    def clip(gradients, max_norm):
        norms.append(float(gradients.norm()))
        original_clip(gradients, max_norm)

    patches = [(training, "plasticity_metrics", "plasticity metrics"), (training, "shuffled_batches", "epoch shuffles"),
               (training.Trainer, "_evaluate", "evaluation"), (training.Trainer, "_checkpoint", "checkpoints"),
               (RunStore, "append", "metric rows")]
    with (mock.patch.object(FlatGradients, "clip", clip), time_inside(patches) as (spent, calls),
          tempfile.TemporaryDirectory() as out):
        training.Trainer(config, RunStore(out), dataset, progress=False).run()
    return {label: (spent[label] * 1e3, calls[label]) for label in spent}, norms


def main() -> None:
    config = resolve("mnist1d-cold", "hare_tortoise", 1, None, ["eval_every=50", "ema_shadow=None"])
    dataset = training.prepare_dataset(config)
    print(f"per step (MLP, batch 256, {torch.get_num_threads()} threads):")
    for name, value in per_step(config, dataset).items():
        print(f"  {value:7.1f} us  {name}")
    print("per run (mnist1d-cold + hare_tortoise, 3,150 steps):")
    pieces, norms = per_run(config, dataset)
    for name, (milliseconds, count) in pieces.items():
        print(f"  {milliseconds:7.1f} ms  {name} ({count} calls)")
    norms = torch.tensor(norms)
    scaled = (norms > config.grad_clip).float().mean()
    print(f"  the clip at {config.grad_clip} scaled {scaled:.1%} of {len(norms)} steps "
          f"(median gradient norm {norms.median():.2f})")
    print("the bare loop, per step, in turns:")
    for name, value in bare_loops(config, dataset).items():
        print(f"  {value:7.0f} us  on {name}")


if __name__ == "__main__":
    main()
