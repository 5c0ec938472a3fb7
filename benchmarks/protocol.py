"""Protocol construction: time to build the continual stream (10 chunks, label noise, accumulated data) for 50,000
and 500,000 samples; it must grow linearly."""

from __future__ import annotations

import math
import time

import torch

from hare_tortoise.data import streams


def build_seconds(samples: int) -> float:
    labels = torch.randint(0, 10, (samples,), generator=torch.Generator().manual_seed(0))
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        streams.build("continual", labels, 10, 3 * 32 * 32, 100, 1)
        best = min(best, time.perf_counter() - began)
    return best


def run() -> list[dict]:
    from common import figure

    small, large = build_seconds(50_000), build_seconds(500_000)
    # the exponent of the growth: 1 is linear, 2 quadratic; n log n over this range would be 1.08
    slope = math.log(large / small) / math.log(10)
    return [figure("protocol/continual_build_growth_exponent", slope, 1.25, "log-log slope (1 = linear)", False,
                   f"50,000 samples {small * 1e3:.1f} ms ({small / 5e4 * 1e9:.0f} ns/sample), 500,000 samples "
                   f"{large * 1e3:.1f} ms ({large / 5e5 * 1e9:.0f} ns/sample)")]
