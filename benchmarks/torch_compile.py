"""Does `torch.compile` pay here? Two copies of one cold-start run, eager and compiled (`compile=true`), train in
turns, epoch by epoch, their places alternating, so that the machine's drift falls on both. Printed: each one's
steady epoch (the median over the epochs between the first and the last, which evaluates) and the page faults
taken in those epochs (memory the C library mapped afresh), the compilation's cost
(the compiled copy's first epoch less an eager epoch), the epochs it takes to earn that back, and whether the two
copies end with the same training loss (compiled kernels may round differently).

Not in `make bench`: it has no target; it checks the default (`compile=false`), which the CPU presets keep.
    .venv/bin/python benchmarks/torch_compile.py                              # mnist1d-cold (MLP), 10 epochs, CPU
    .venv/bin/python benchmarks/torch_compile.py --preset fashion-cold --epochs 4
Inductor's cache goes to a fresh folder, so compilation is timed cold; pass the same `--cache-dir` twice to time it
as a sweep's later runs pay it (warm)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from common import page_faults, steady
from hare_tortoise.config import ConfigError
from hare_tortoise.presets import resolve
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer, prepare_dataset


def compare(preset: str, epochs: int, device: str, scratch: str) -> dict:
    """Seconds of every epoch of the eager and the compiled copy, trained in turns, and their last rows."""
    overrides = [f"epochs={epochs}", f"eval_every={epochs}", f"device={device}", "ema_shadow=None"]
    configs = {name: resolve(preset, "hare_tortoise", 1, None, [*overrides, f"compile={flag}"])
               for name, flag in (("eager", "false"), ("compiled", "true"))}
    dataset = prepare_dataset(configs["eager"])
    trainers = {name: Trainer(config, RunStore(os.path.join(scratch, name)), dataset, progress=False)
                for name, config in configs.items()}
    optimizers = {name: trainer._optimizer() for name, trainer in trainers.items()}
    for name, trainer in trainers.items():
        trainer.method.on_phase_start(0, optimizers[name])
    seconds, faults, rows = {name: [] for name in trainers}, {name: [] for name in trainers}, {}
    for epoch in range(epochs):
        for name in (trainers if epoch % 2 == 0 else reversed(list(trainers))):
            began, faulted = time.perf_counter(), page_faults()
            rows[name] = trainers[name]._epoch(0, epoch, optimizers[name])
            seconds[name].append(time.perf_counter() - began)
            faults[name].append(page_faults() - faulted)
    return {"seconds": seconds, "faults": faults, "rows": rows, "config": configs["eager"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist1d-cold", help="a cold-start preset (default: mnist1d-cold)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each copy (at least 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--cache-dir", help="inductor's cache (default: a fresh one, so compilation is timed cold)")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: the first and the last epochs are not steady")
    try:
        preset = resolve(args.preset, "hare_tortoise", 1, None, [])
    except ConfigError as error:
        parser.error(str(error))
    if preset.protocol != "cold":
        parser.error(f"{args.preset} is a {preset.protocol} preset; pick a cold-start one (one phase), "
                     "e.g. mnist1d-cold")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache_dir or os.path.join(scratch, "inductor")
        measured = compare(args.preset, args.epochs, args.device, scratch)
    seconds, rows, config = measured["seconds"], measured["rows"], measured["config"]
    steady_epoch = {name: steady(s) for name, s in seconds.items()}
    compilation = seconds["compiled"][0] - steady_epoch["eager"]
    saved = steady_epoch["eager"] - steady_epoch["compiled"]
    break_even = f"earned back after {compilation / saved:.0f} epochs" if saved > 0 else "never earned back"
    same = rows["eager"]["train_loss"] == rows["compiled"]["train_loss"]
    print(f"{args.preset} + hare_tortoise, batch {config.batch_size}, {args.epochs} epochs of each copy in turns, on "
          f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| copy | first epoch (s) | steady epoch (s) | final training loss | every epoch (s) | page faults, steady "
          "epochs |")
    print("|---|---|---|---|---|---|")
    for name in seconds:
        every = " ".join(f"{s:.2f}" for s in seconds[name])
        print(f"| {name} | {seconds[name][0]:.2f} | {steady_epoch[name]:.3f} | {rows[name]['train_loss']:.6f} | "
              f"{every} | {sum(measured['faults'][name][1:-1]):,} |")
    print(f"\ncompiled / eager steady epoch: {steady_epoch['compiled'] / steady_epoch['eager']:.3f}; compilation "
          f"{compilation:.1f} s, {break_even} (the preset trains {preset.epochs} epochs); "
          f"the same final training loss: {'yes' if same else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
