"""A run directory and the one lifecycle of every run in it (`execute`, shared by the supervised and the RL loop):
its resolved config, its metrics as JSON lines, and an atomically written checkpoint.

    config.json         the resolved Config
    metrics.jsonl       one JSON object per epoch, flushed as written
    checkpoint.pt       everything needed to continue after the last completed epoch (weights_only-loadable),
                        read back before it replaces the one before, and never holding a non-finite number
    checkpoint.prev.pt  the checkpoint before it: a damaged latest falls back to it
    summary.json        written last: the run is finished
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Protocol

import torch

from .config import Config, ConfigError
from .errors import InvalidInput
from .sinks import Sinks


def atomic_write(path: pathlib.Path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`.

    A reader, or a run killed at any moment, sees the old file or the new one, never a partial one. (No fsync:
    it would cost more than a small epoch, and a killed process loses nothing that was written.)
    """
    partial = path.with_name(path.name + ".tmp")
    with open(partial, "wb") as file:
        write(file)
    os.replace(partial, path)


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the run directory keeps everything up to the last checkpoint."""


def _tensors(value, name: str = "state"):
    """(name, tensor) for every tensor in a nested state of dicts, lists and tuples."""
    if torch.is_tensor(value):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{name}.{key}" if name != "state" else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{name}[{index}]")


def _said(error: Exception) -> str:
    """An exception as one short line for a message: its kind and the first line of what it says."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def counter_fields(method) -> dict[str, int]:
    """A method's counters as metrics-row fields, `method/<counter>` (resets, recycled units, ...)."""
    return {f"method/{name}": value for name, value in method.counts.items()}


class RunStore:
    """The files of one run, in `directory`."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = pathlib.Path(directory)
        self.config_path = self.dir / "config.json"
        self.metrics_path = self.dir / "metrics.jsonl"
        self.checkpoint_path = self.dir / "checkpoint.pt"
        self.previous_path = self.dir / "checkpoint.prev.pt"
        self.summary_path = self.dir / "summary.json"

    # Where a run reads its data and runs, and how often it checkpoints, do not change what it computes: a run may
    # resume elsewhere, or with another checkpoint interval.
    PLACE_KEYS = ("data_dir", "device", "checkpoint_every_seconds", "log")
    sinks: Sinks | None = None  # where rows go besides metrics.jsonl, while `execute` runs the job

    def check(self, config: Config) -> None:
        """Raise a ConfigError if the directory holds a run of another config."""
        if not self.config_path.exists():
            return
        existing = type(config).completed(self._json(self.config_path, "a run's config"))
        ours = json.loads(config.to_json())
        changed = sorted(k for k in ours if k not in self.PLACE_KEYS and existing[k] != ours[k])
        if changed:
            raise ConfigError(f"{self.dir} holds a run with a different config (differs in: {', '.join(changed)}); "
                              "resume it with the same settings, or choose another --out")

    def start(self, config: Config) -> None:
        """Create the directory and write `config`, unless it holds this run already."""
        self.check(config)
        if not self.config_path.exists():
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                atomic_write(self.config_path, lambda f: f.write(config.to_json().encode()))
            except OSError as error:  # no permission, a read-only or full disk: the user's to fix, not a bug
                raise InvalidInput(f"cannot write the run directory {self.dir} ({error.strerror or error}): choose "
                                   "an --out in a folder you can write to") from None

    def config(self, kind=Config):
        """The stored config, as an instance of `kind` (Config, or RLConfig for RL runs)."""
        return kind.from_dict(self._json(self.config_path, "a run's config"))

    def append(self, row: dict) -> None:
        """Add one metrics row and flush it to disk (and to the run's other sinks)."""
        with open(self.metrics_path, "a") as file:
            file.write(json.dumps(row) + "\n")
        if self.sinks is not None:
            self.sinks.write(row)

    def rows(self) -> list[dict]:
        """All complete metrics rows (a line cut short by a kill is ignored)."""
        if not self.metrics_path.exists():
            return []
        rows = []
        lines = self.metrics_path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # the last line, cut short by a kill: the run writes it again
                raise InvalidInput(f"{self.metrics_path} line {number} of {len(lines)} is damaged, and a resumed run "
                                   "re-creates only the rows after its checkpoint: restore the file from a copy, or "
                                   "start a new run directory") from None
        return rows

    def keep_rows(self, keep: Callable[[dict], bool]) -> None:
        """Drop the rows for which `keep(row)` is false (those written after the checkpoint a run resumes from), so
        a resumed run repeats none."""
        kept = [r for r in self.rows() if keep(r)]
        atomic_write(self.metrics_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))

    def clear_rows(self) -> None:
        """Drop every row: a run restarting from scratch (killed before its first checkpoint) repeats none."""
        self.metrics_path.unlink(missing_ok=True)

    def save_checkpoint(self, state: dict) -> None:
        """Write `state` beside the checkpoint, read it back, then make it the checkpoint and keep the one before as
        checkpoint.prev.pt. A state holding NaN or infinity is never written: TrainingDiverged instead."""
        bad = next((name for name, tensor in _tensors(state) if tensor.is_floating_point()
                    and not torch.isfinite(tensor).all()), None)
        if bad is not None:
            raise TrainingDiverged(f"the run's state holds NaN or infinite values (in {bad}), so it was not written: "
                                   f"{self.dir} keeps its last checkpoint, from before. Lower lr (or enable grad_clip) "
                                   "and start a new run directory.")
        written = self.checkpoint_path.with_name("checkpoint.new.pt")
        with open(written, "wb") as file:
            torch.save(state, file)
        torch.load(written, weights_only=True, map_location="cpu")  # what a resume will read, read once
        if self.checkpoint_path.exists():
            os.replace(self.checkpoint_path, self.previous_path)
        os.replace(written, self.checkpoint_path)

    def load_checkpoint(self) -> dict | None:
        """The latest checkpoint, or the one before it where the latest is missing or damaged (said on stderr);
        None where there is none; an InvalidInput where every checkpoint there is damaged."""
        damaged = []
        for path in (self.checkpoint_path, self.previous_path):
            if not path.exists():
                continue
            try:
                state = torch.load(path, weights_only=True, map_location="cpu")
            except Exception as error:  # torch raises several kinds for a damaged file
                damaged.append(f"{path.name} ({_said(error)})")
                continue
            if damaged:
                print(f"hare-tortoise: {self.dir}: {damaged[0]} is damaged; resuming from {path.name}", file=sys.stderr)
            return state
        if damaged:
            raise InvalidInput(f"{self.dir}: every checkpoint is damaged: {'; '.join(damaged)}. Delete them to start "
                               "the run again from its beginning, or choose another --out")
        return None

    def finish(self, summary: dict) -> None:
        atomic_write(self.summary_path, lambda f: f.write(json.dumps(summary, indent=2).encode()))

    def summary(self) -> dict | None:
        """The summary of a finished run, or None while it runs."""
        return self._json(self.summary_path, "the summary of a finished run") if self.summary_path.exists() else None

    def _json(self, path: pathlib.Path, what: str) -> dict:
        """The JSON object in `path`, or an InvalidInput that names the file and what to do."""
        try:
            value = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            reason = f"not valid JSON ({error})"
        else:
            if isinstance(value, dict):
                return value
            reason = f"JSON of the wrong kind ({type(value).__name__}, where {what} is an object)"
        fix = ("delete it and run the same command again: the run finishes again from its checkpoint"
               if path == self.summary_path else f"move {self.dir} away, or choose another --out")
        raise InvalidInput(f"{path} is damaged: {reason}; it should hold {what}. {fix}")


class ReadOnlyRunStore(RunStore):
    """The run directory as the ranks other than 0 of a distributed run see it: they read (the checkpoint to resume
    from, the rows for the summary) and never write."""

    def start(self, config: Config) -> None:
        self.check(config)

    def append(self, row: dict) -> None:
        pass

    def clear_rows(self) -> None:
        pass

    def keep_rows(self, keep: Callable[[dict], bool]) -> None:
        pass

    def save_checkpoint(self, state: dict) -> None:
        pass

    def finish(self, summary: dict) -> None:
        pass


class Job(Protocol):
    """What a training loop gives the run lifecycle: it builds everything before `execute` writes anything (so bad
    input leaves no run directory), then starts afresh or resumes, then runs to the end."""

    def fresh(self) -> None:
        """There is no checkpoint: start from the beginning (rows of a run killed before it are gone)."""

    def restore(self, state: dict) -> Callable[[dict], bool]:
        """Continue from the checkpoint `state`; returns which rows to keep (those written up to the checkpoint)."""

    def run(self) -> dict:
        """Train to the end, appending rows and checkpoints to the store; returns the summary."""


def execute(store: RunStore, config, build: Callable[[], Job]) -> dict:
    """Run (or resume, or return the finished) `config` in `store`: check that the directory holds this config or
    none, return the summary of a finished run, build the job (nothing written yet), write the config, resume from
    the checkpoint or start afresh, run, and write the summary last."""
    store.check(config)
    finished = store.summary()
    if finished is not None:
        return finished
    job = build()
    store.start(config)
    state = store.load_checkpoint()
    if state is None:
        store.clear_rows()
        job.fresh()
    else:
        try:
            keep = job.restore(state)
        except (RuntimeError, KeyError) as error:  # torch's load_state_dict, or a state without a field this run has
            raise InvalidInput(f"{store.dir}: its checkpoint does not fit this run ({_said(error)}); it was written "
                               "by another run or another version. Move the run "
                               "directory away, or delete its checkpoints to start the run again") from None
        store.keep_rows(keep)
    if not isinstance(store, ReadOnlyRunStore):
        store.sinks = Sinks(config.log, store.dir, json.loads(config.to_json()))
    try:
        summary = job.run()
    finally:
        if store.sinks is not None:
            store.sinks.close()
            store.sinks = None
    store.finish(summary)
    return summary
