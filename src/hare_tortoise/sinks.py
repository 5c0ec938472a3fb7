"""Where a run's metrics rows go besides its `metrics.jsonl`, chosen per run (`log=tensorboard,wandb`): TensorBoard
event files and Weights & Biases in offline mode. Each gets the same rows under the same names (every finite number
of a row, at the row's `step`); a resumed run sends again the rows it makes again. Each needs its own package (an
extra), checked before the run writes anything."""

from __future__ import annotations

import math
import pathlib
from typing import Protocol

from .errors import InvalidInput


class Sink(Protocol):
    """What a sink is: the package it needs and its extra, then one call per row and one at the end."""

    package: str
    extra: str

    def __init__(self, directory: pathlib.Path, config: dict) -> None: ...
    def write(self, step: int, scalars: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class TensorBoard:
    """Event files in RUN_DIR/tensorboard (`tensorboard --logdir RUN_DIR`)."""

    package, extra = "tensorboard", "tensorboard"

    def __init__(self, directory: pathlib.Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(directory / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """A Weights & Biases run in offline mode, in RUN_DIR/wandb (`wandb sync` uploads it when you choose)."""

    package, extra = "wandb", "wandb"

    def __init__(self, directory: pathlib.Path, config: dict):
        import wandb

        self.run = wandb.init(mode="offline", dir=str(directory), name=directory.name, config=config,
                              reinit="create_new")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        import wandb

        self.run.finish()
        # finish() can return before W&B's service has written the run's file; teardown waits for it, so that the
        # run is whole on disk when the run returns (the service's atexit hook would come only at interpreter exit).
        # Not while another W&B run of the caller's is active: teardown would finish it too
        if wandb.run is None:
            wandb.teardown()


SINKS: dict[str, type[Sink]] = {"tensorboard": TensorBoard, "wandb": WandB}


def check(names: tuple[str, ...]) -> None:
    """Refuse an unknown sink, or one whose package is not installed, naming the fix."""
    import importlib.util

    for name in names:
        if name not in SINKS:
            raise InvalidInput(f"log={name!r} is not a metrics sink; the sinks: {', '.join(SINKS)} "
                               "(metrics.jsonl is always written)")
        sink = SINKS[name]
        if importlib.util.find_spec(sink.package) is None:
            raise InvalidInput(f"log={name} needs the {sink.package} package: "
                               f"pip install 'hare-tortoise[{sink.extra}]'")


def scalars(row: dict) -> dict[str, float]:
    """The finite numbers of a metrics row, by name (lists, strings and flags stay in metrics.jsonl only)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "step"}


class Sinks:
    """The sinks of one run: `write(row)` sends a row to each, `close()` ends them."""

    def __init__(self, names: tuple[str, ...], directory: pathlib.Path, config: dict):
        # `names` were checked when the config was validated, before anything was written
        self.sinks = [SINKS[name](directory, config) for name in names]

    def write(self, row: dict) -> None:
        if self.sinks and "step" in row:
            values = scalars(row)
            for sink in self.sinks:
                sink.write(int(row["step"]), values)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
