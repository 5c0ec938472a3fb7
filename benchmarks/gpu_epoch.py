"""GPU epoch time: the paper-scale ResNet-18 / CIFAR-10 run (`cifar10-cold` with H&T) timed one epoch at a time,
with and without bf16 autocast and torch.compile, with the GPU's utilisation over each epoch (nvidia-smi).

Not part of `make bench`: it is meant for a GPU (CI has none) and its figures are times, not ratios.
    .venv/bin/python benchmarks/gpu_epoch.py                      # CIFAR-10 from --data-dir or $HARE_TORTOISE_DATA
The first epoch pays for start-up (and compilation), the last for the evaluation, so the figure is the median of
the epochs between. Without the real CIFAR-10 archive, a random one of the real size (50,000 + 10,000 images) is
written to a temporary folder: the same work per epoch, nothing to learn."""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch

from common import steady
from hare_tortoise import data
from hare_tortoise.presets import resolve
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer

HERE = pathlib.Path(__file__).resolve().parent


class EpochClock(RunStore):
    """A run directory that also notes when each metrics row (one per epoch) is written."""

    def __init__(self, out):
        super().__init__(out)
        self.ends: list[float] = []

    def append(self, row: dict) -> None:
        self.ends.append(time.monotonic())
        super().append(row)


class Utilisation:
    """GPU utilisation (%) sampled every 100 ms by `nvidia-smi` while in use; empty where there is none."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.process = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
            self.process = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip().isdigit():
                self.samples.append((time.monotonic(), float(line)))

    def __exit__(self, *_):
        if self.process:
            self.process.terminate()
            self.process.wait()

    def mean(self, start: float, end: float) -> float | None:
        inside = [u for t, u in self.samples if start <= t <= end]
        return statistics.fmean(inside) if inside else None


def time_epochs(data_dir: str | None, overrides: list[str], out: pathlib.Path) -> dict:
    """One run of cifar10-cold with H&T under `overrides`: seconds and GPU utilisation of every epoch."""
    config = resolve("cifar10-cold", "hare_tortoise", 0, data_dir, overrides)
    store = EpochClock(out)
    trainer = Trainer(config, store, progress=False)
    store.start(config)
    with Utilisation() as utilisation:
        began = time.monotonic()
        trainer.run()
    starts = [began, *store.ends[:-1]]
    device = trainer.device
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "train_images": len(trainer.data.y_train),
            "epoch_seconds": [end - start for start, end in zip(starts, store.ends)],
            "utilisation": [utilisation.mean(start, end) for start, end in zip(starts, store.ends)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where cifar-10-python.tar.gz is (default: the usual places)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (at least 3)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--random", action="store_true", help="time on a random archive even where CIFAR-10 is found")
    parser.add_argument("--random-size", type=int, nargs=2, default=(50_000, 10_000), metavar=("TRAIN", "TEST"),
                        help="images of the random archive (default: CIFAR-10's 50,000 and 10,000)")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu.json"), help="where the JSON results go")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: the first and the last epochs are not timed")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir, source = args.data_dir, "CIFAR-10"
        try:
            if args.random:
                raise data.DataError("asked for the random archive")
            data.load("cifar10", data_dir)
        except data.DataError as why:
            data_dir, source = scratch, f"a random CIFAR-10-format archive of {args.random_size[0]:,} + " \
                                        f"{args.random_size[1]:,} images ({why})"
            sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
            import cifar_writer  # the tests' archive writer (a fixture, not part of the package)

            cifar_writer.random_archive(scratch, "cifar10", *args.random_size)
        variants = [(bf16, compile_) for compile_ in ([False] if args.no_compile else [False, True])
                    for bf16 in (True, False)]
        results = []
        for bf16, compile_ in variants:
            overrides = [f"epochs={args.epochs}", f"bf16={str(bf16).lower()}", f"compile={str(compile_).lower()}",
                         f"device={args.device}", f"eval_every={args.epochs}", "checkpoint_every_seconds=1e9"]
            timed = time_epochs(data_dir, overrides, pathlib.Path(scratch) / f"bf16={bf16},compile={compile_}")
            busy = [u for u in timed["utilisation"][1:-1] if u is not None]
            results.append({"bf16": bf16, "compile": compile_, **timed,
                            "steady_epoch_seconds": steady(timed["epoch_seconds"]),
                            "images_per_second": timed["train_images"] / steady(timed["epoch_seconds"]),
                            "steady_utilisation": statistics.fmean(busy) if busy else None})
    where = results[0]["device"]
    print(f"cifar10-cold (ResNet-18, batch 256) + hare_tortoise on {where}, torch {torch.__version__}; "
          f"data: {source}\n")
    print("| bf16 | compile | first epoch (s) | steady epoch (s) | images/s | GPU utilisation (steady epochs) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        busy = "n/a" if r["steady_utilisation"] is None else f"{r['steady_utilisation']:.0f}%"
        print(f"| {r['bf16']} | {r['compile']} | {r['epoch_seconds'][0]:.1f} | {r['steady_epoch_seconds']:.2f} | "
              f"{r['images_per_second']:,.0f} | {busy} |")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "device": where, "torch": torch.__version__,
                               "data": source, "epochs": args.epochs, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
