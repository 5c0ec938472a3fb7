"""Tortoise cost: HareTortoise.update() plus the amortised reset_hare(), against one training step, against the
bytes it moves at this machine's copy bandwidth, and against a plain Python loop of per-tensor updates; for both
layouts, timed in the same turns: the default, which leaves the user's model as it is (a kernel per tensor), and
`share_storage=True`, which the library's own loops use (each network's tensors in one buffer, one lerp)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from common import figure, interleaved
from hare_tortoise import HareTortoise
from hare_tortoise.nn import models

RESET_EVERY = 1960  # the paper's CIFAR-10 reset interval, in steps (10 epochs x 196)
# (name, input shape, batch): MNIST-1D MLP and Fashion-MNIST CNN at the presets' batch size; ResNet-18 on CIFAR
# inputs at batch 64, a quarter of the paper's 256: a shorter step, so a larger (more conservative) fraction
MODELS = [("mlp", (40,), 256), ("cnn", (1, 28, 28), 256), ("resnet18", (3, 32, 32), 64)]


def large_copy(megabytes: int = 256) -> tuple[Callable[[], object], int]:
    """A copy of a tensor too large for the caches, and the bytes it moves (the read and the write): timed in the
    same turns as the update, it gives the copy bandwidth of the same minutes of this noisy machine."""
    source = torch.ones(megabytes * 2**20 // 4)
    target = torch.empty_like(source)
    return (lambda: target.copy_(source)), 2 * source.numel() * source.element_size()


def moved_bytes(ht: HareTortoise) -> int:
    """An update reads the tortoise and the hare and writes the tortoise: 3 passes over the averaged tensors,
    2 over the copied ones."""
    average, copied = ht._pairs["average"][0], ht._pairs["copy"][0]
    size = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    return 3 * size(average) + 2 * size(copied)


def repeated(function: Callable[[], object], times: int) -> Callable[[], None]:
    """`function` called `times` times in one call."""
    def calls() -> None:
        for _ in range(times):
            function()
    return calls


LAYOUTS = {"": {}, "_shared_storage": {"share_storage": True}}  # figure-name suffix -> HareTortoise settings


def run() -> list[dict]:
    copy, copied_bytes = large_copy()
    figures = []
    for name, shape, batch in MODELS:
        torch.manual_seed(0)
        model = models.build(name, shape, 10)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
        x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
        pairs = {suffix: HareTortoise(models.build(name, shape, 10), momentum=0.999, **settings)
                 for suffix, settings in LAYOUTS.items()}
        tortoise, hare = pairs[""]._pairs["average"]  # parameters and BN statistics, as the update averages them

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        flat_tortoise = torch.zeros(sum(t.numel() for t in tortoise))
        flat_hare = torch.ones_like(flat_tortoise)

        def flat_lerp():  # what the update would cost without a dispatch per tensor: one buffer of the same size
            flat_tortoise.lerp_(flat_hare, 0.001)

        def python_loop():
            with torch.no_grad():
                for t, h in zip(tortoise, hare):
                    t.mul_(0.999).add_(h, alpha=0.001)

        heavy = name == "resnet18"
        timed = {"loop": python_loop, "copy": copy, "flat": flat_lerp}
        for suffix, ht in pairs.items():
            timed |= {f"update{suffix}": ht.update, f"reset{suffix}": ht.reset_hare}
        # the step in the same turns as the updates, so that a slow spell of the machine falls on both; each light
        # function runs `inner` times a turn (a step takes milliseconds to seconds, an update microseconds)
        inner = 5 if heavy else 50
        light = interleaved({"step": train_step, **{k: repeated(f, inner) for k, f in timed.items()}},
                            rounds=5 if heavy else 15)
        step = light.pop("step")
        light = {k: v / inner for k, v in light.items()}
        bandwidth = copied_bytes / light["copy"]
        bound = moved_bytes(pairs[""]) / bandwidth
        parameters = sum(p.numel() for p in model.parameters())
        for suffix, ht in pairs.items():
            update, reset = light[f"update{suffix}"], light[f"reset{suffix}"]
            layout = "one buffer per network" if suffix else "the model left as it is"
            figures += [
                figure(f"tortoise_cost{suffix}/{name}", 100 * (update + reset / RESET_EVERY) / step, 1.0,
                       "% of a training step", False,
                       f"{layout}; {parameters:,} parameters, batch {batch}: update {update * 1e6:.0f} us + reset "
                       f"{reset * 1e6:.0f} us / {RESET_EVERY} steps vs step {step * 1e3:.1f} ms"),
                figure(f"tortoise_vs_bandwidth{suffix}/{name}", update / bound, 1.5, "x the copy-bandwidth bound",
                       False,
                       f"{layout}; {moved_bytes(ht) / 2**20:.1f} MiB moved, bound {bound * 1e6:.0f} us at "
                       f"{bandwidth / 1e9:.1f} GB/s; {len(tortoise)} averaged tensors, one lerp over a flat buffer of "
                       f"their size {light['flat'] * 1e6:.0f} us"),
            ]
        figures.append(figure(f"tortoise_vs_python_loop/{name}", light["loop"] / light["update"], 1.0, "x faster", True,
                              f"the model left as it is; per-tensor loop {light['loop'] * 1e6:.0f} us"))
    return figures
