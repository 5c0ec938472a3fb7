"""The expected cost of one run of each paper-scale preset on this machine: the measured seconds per training image
of its model (forward, backward, AdamW step at the given batch, median of timed steps after a warm-up) times the
images the preset trains on. Evaluation, metrics and data handling are not counted, so this is a lower bound.

    .venv/bin/python benchmarks/preset_cost.py [--batch 32] [--steps 5]
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F

from common import interleaved
from hare_tortoise import presets
from hare_tortoise.config import Config
from hare_tortoise.nn import models

SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "tiny_imagenet": ((3, 64, 64), 200)}


def seconds_per_image(config: Config, batch: int, steps: int, device: torch.device) -> float:
    """Median time of one training step of the preset's model on random inputs of its dataset's shape, per image."""
    shape, classes = SHAPES[config.dataset]
    torch.manual_seed(0)
    model = models.build(config.model, shape, classes, config.width, config.norm).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x, y = torch.randn(batch, *shape, device=device), torch.randint(0, classes, (batch,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return interleaved({"step": step}, rounds=steps)["step"] / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="images per timed step (the presets train with 256)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.machine()} CPU, " \
        f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {where}; batch {args.batch}, median of {args.steps} steps\n")
    print("| preset | model | training images per run | s per image (measured) | hours per run |")
    print("|---|---|---|---|---|")
    timed: dict[tuple, float] = {}
    for name in presets.paper_scale():
        preset = presets.get(name)
        config = Config(**preset.config)
        key = (config.dataset, config.model)
        if key not in timed:
            timed[key] = seconds_per_image(config, args.batch, args.steps, device)
        images = presets.training_images(preset)
        print(f"| {name} | {config.model} | {images:,} | {timed[key]:.4f} | {images * timed[key] / 3600:,.1f} |")


if __name__ == "__main__":
    main()
