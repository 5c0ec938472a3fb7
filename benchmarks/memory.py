"""Memory: the peak memory of a run with H&T against the same run with base; the extra should be one copy of the
parameters and buffers (the Tortoise), nothing more. Each run is measured in its own process (peak resident set
size (VmHWM, Linux) on CPU, peak allocated memory on CUDA)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

RUN = r"""
import json, sys, tempfile, torch
from hare_tortoise.config import Config
from hare_tortoise.data import Dataset
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer
g = torch.Generator().manual_seed(0)
images = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
labels = lambda n: torch.randint(0, 10, (n,), generator=g)
dataset = Dataset.of(images(512), labels(512), images(256), labels(256), 10, mean=(0.5,) * 3, std=(0.25,) * 3)
config = Config(dataset="cifar10", model="resnet18", protocol="cold", epochs=1, batch_size=64, method=sys.argv[1],
                probe_size=64)
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(config, RunStore(out), dataset, progress=False)
    trainer.run()
    cuda = torch.cuda.is_available()
    # VmHWM is this process's own high-water mark; ru_maxrss also counts the parent's resident size at the fork,
    # which in `make bench` (after the other benchmarks) exceeded both runs' peaks and hid the Tortoise
    peak = (torch.cuda.max_memory_allocated() if cuda
            else int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024)
    copy = sum(t.numel() * t.element_size() for t in [*trainer.model.parameters(), *trainer.model.buffers()])
    print(json.dumps({"peak": peak, "copy": copy}))
"""


def peak(method: str) -> dict:
    # glibc returns every block of 64 KiB or more to the system when freed, so the peak resident size is the peak
    # of what was in use, not of what the allocator kept after an earlier peak
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run([sys.executable, "-c", RUN, method], capture_output=True, text=True, check=True,
                            env=environment)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run() -> list[dict]:
    from common import figure

    base, ht = peak("base"), peak("hare_tortoise")
    extra = ht["peak"] - base["peak"]
    return [figure("memory/hare_tortoise_extra_over_one_copy", extra / base["copy"], 1.1, "x one copy of the weights",
                   False, f"ResNet-18 run, batch 64: peak base {base['peak'] / 2**20:.0f} MiB, H&T "
                   f"{ht['peak'] / 2**20:.0f} MiB, extra {extra / 2**20:.1f} MiB, one copy of parameters and buffers "
                   f"{base['copy'] / 2**20:.1f} MiB")]
