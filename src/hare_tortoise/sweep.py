"""Sweeps: the grid of a preset's runs (methods x seeds x games x every override given several values), each run in
its own directory named after its coordinates, run by a pool of local processes, as Ray tasks or as SLURM jobs.

Each run is the `hare-tortoise run` command in a child process, so a run that crashes, diverges or is killed takes
nothing else down, and every backend runs exactly the same thing. A sweep is idempotent: finished runs
(with summary.json) are skipped, unfinished ones resume from their checkpoints. A failed run is retried once (it
resumes too), then reported at the end with the tail of its log.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import time
import typing
from collections.abc import Sequence

from . import presets
from .config import Config, ConfigError
from .rl.config import GAMES, RLConfig, game_id

LOG_TAIL = 2000  # characters of a failed run's log shown in the final report


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the `hare-tortoise run` arguments and the directory it writes."""

    preset: str
    method: str
    seed: int
    game: str | None
    overrides: tuple[str, ...]  # key=value, one value each
    out: str                    # the run directory (absolute)
    name: str                   # its path under the sweep directory: the run's coordinates
    data_dir: str | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "hare_tortoise", "run", self.preset, "--method", self.method,
                   "--seed", str(self.seed), "--out", self.out, "--no-progress"]
        command += ["--env", self.game] if self.game else []
        command += ["--data-dir", self.data_dir] if self.data_dir else []
        return command + list(self.overrides)

    def finished(self) -> bool:
        return (pathlib.Path(self.out) / "summary.json").exists()


def parse_seeds(text: str) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' -> [1, 3, 7]; both may mix ('1-3,10')."""
    seeds = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            seeds += list(range(int(low), int(high) + 1)) if dash else [int(low)]
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: write seeds as 1-5 or 1,3,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} gives no seeds, or a seed twice")
    return seeds


def parse_games(text: str | None, preset: str) -> list[str | None]:
    """The games of an RL sweep: a comma-separated list, or 'all' for every game of the preset's suite."""
    if text is None:
        return [None]
    config = presets.get(preset)
    if config.kind != "rl":
        raise ConfigError(f"--env picks the games of an RL preset; {preset} is not one")
    env = config.config["env"]
    return list(GAMES[env]) if text == "all" else [game_id(env, g.strip()) for g in text.split(",")]


TUPLE_KEYS = {f.name for cls in (Config, RLConfig) for f in dataclasses.fields(cls)
              if typing.get_origin(typing.get_type_hints(cls)[f.name]) is tuple}  # written [v1,v2,...] in a sweep


def split_values(text: str) -> list[str]:
    """The grid values of `key=v1,v2,...`: split at the commas outside brackets, so that `[0.5,0.0],[0.3,0.3]` is
    two values of a tuple-valued key."""
    values, depth, start = [], 0, 0
    for position, character in enumerate(text):
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == "," and depth == 0:
            values.append(text[start:position])
            start = position + 1
    return values + [text[start:]]


def grid(preset: str, methods: list[str], seeds: list[int], overrides: list[str], out: str | os.PathLike,
         games: Sequence[str | None] = (None,), data_dir: str | None = None) -> list[RunSpec]:
    """Every combination of games, methods, the values of overrides written key=v1,v2, and seeds; each checked as
    `hare-tortoise run` would check it, so bad input stops the sweep before anything runs.

    A run's directory is OUT/[GAME/]METHOD/[KEY=VALUE,...]/seedN, naming only the keys that vary."""

    axes: list[list[tuple[str, str]]] = []
    for override in overrides:
        key, equals, values = override.partition("=")
        if not equals or not key or not values:
            raise ConfigError(f"override {override!r} is not key=value (several values: key=v1,v2)")
        if key in TUPLE_KEYS and not values.startswith("["):
            raise ConfigError(f"{key} takes several numbers: in a sweep write each of its values in brackets, e.g. "
                              f"{key}=[0.5,0.0],[0.3,0.3]")
        if key == "method":  # the run directories are named by --methods: an override must not contradict them
            raise ConfigError(f"method=... cannot be swept as an override: list the methods in --methods "
                              f"(--methods {values})")
        axes.append([(key, value) for value in split_values(values)])
    root = pathlib.Path(out).resolve()
    specs = []
    for game, method, chosen in itertools.product(games, methods, itertools.product(*axes)):
        varying = ",".join(f"{k}={v}" for (k, v), axis in zip(chosen, axes) if len(axis) > 1)
        for seed in seeds:
            pairs = tuple(f"{k}={v}" for k, v in chosen)
            presets.resolve(preset, method, seed, data_dir, list(pairs), game)
            name = "/".join(part for part in (game, method, varying, f"seed{seed}") if part)
            specs.append(RunSpec(preset, method, seed, game, pairs, str(root / name), name, data_dir))
    return specs


def execute(spec: RunSpec, threads: int, log: str) -> int:
    """Run `spec` in a child process with `threads` CPU threads, appending its output to `log`; its exit code."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pathlib.Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        output.write(f"$ {' '.join(spec.command())}\n".encode())
        output.flush()
        return subprocess.run(spec.command(), stdout=output, stderr=subprocess.STDOUT, env=environment).returncode


class Backend(typing.Protocol):
    """Where the runs of a sweep run: up to `workers` at a time, each submitted as a future of its exit code."""

    workers: int

    def submit(self, spec: RunSpec, log: str) -> concurrent.futures.Future: ...
    def close(self) -> None: ...


class LocalBackend:
    """`workers` child processes at a time on this machine."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)  # threads that wait on the child processes

    def submit(self, spec: RunSpec, log: str) -> concurrent.futures.Future:
        return self.pool.submit(execute, spec, self.threads, log)

    def close(self) -> None:
        self.pool.shutdown()


class RayBackend:
    """The runs as Ray tasks, on a local Ray instance or the cluster at `address`, each declaring `threads` CPUs
    and `gpus` GPUs; the sweep directory must be on storage every node sees."""

    def __init__(self, workers: int | None, threads: int, gpus: float, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'hare-tortoise[ray]'") from None
        self.ray = ray
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 num_cpus=None if address else os.cpu_count())
        self.remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(execute)
        self.threads = threads
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))

    def submit(self, spec: RunSpec, log: str) -> concurrent.futures.Future:
        return self.remote.remote(spec, self.threads, log).future()

    def close(self) -> None:
        self.ray.shutdown()


class SlurmBackend:
    """Each run a SLURM job, submitted with submitit (Meta's library for it) with `threads` CPUs, `gpus` GPUs, a
    partition and a time limit; the sweep directory must be on storage the nodes share. With `local=True` the jobs
    are local processes (submitit's LocalExecutor): the same submission path on a machine without SLURM."""

    def __init__(self, workers: int | None, threads: int, gpus: float, folder: pathlib.Path,
                 partition: str | None = None, minutes: int = 24 * 60, local: bool = False):
        try:
            import submitit
        except ImportError:
            raise ConfigError("--backend slurm needs submitit: pip install 'hare-tortoise[slurm]'") from None
        if gpus != int(gpus):
            raise ConfigError(f"--gpus-per-run {gpus}: a SLURM job takes whole GPUs")
        self.executor: submitit.Executor
        if local:
            self.executor = submitit.LocalExecutor(folder)
            self.executor.update_parameters(timeout_min=minutes, gpus_per_node=int(gpus))
        else:
            if shutil.which("sbatch") is None:
                raise ConfigError("--backend slurm submits with sbatch, which is not on this machine: run the sweep "
                                  "on a SLURM login node, or use --backend local")
            self.executor = submitit.AutoExecutor(folder, cluster="slurm")
            self.executor.update_parameters(timeout_min=minutes, cpus_per_task=threads, gpus_per_node=int(gpus),
                                            slurm_partition=partition, name="hare-tortoise")
        self.threads = threads
        self.workers = workers or 1000  # the queue is SLURM's: submit the whole grid unless told otherwise
        self.waiting = concurrent.futures.ThreadPoolExecutor(min(self.workers, 64))  # threads that wait on jobs

    def submit(self, spec: RunSpec, log: str) -> concurrent.futures.Future:
        job = self.executor.submit(execute, spec, self.threads, log)
        return self.waiting.submit(job.result)

    def close(self) -> None:
        self.waiting.shutdown()


@dataclasses.dataclass
class Outcome:
    """What happened to the runs of one sweep."""

    skipped: list[RunSpec] = dataclasses.field(default_factory=list)   # finished before this sweep
    finished: list[RunSpec] = dataclasses.field(default_factory=list)  # finished by this sweep
    failed: list[tuple[RunSpec, int, str]] = dataclasses.field(default_factory=list)  # spec, exit code, log tail
    seconds: float = 0.0


def log_path(out: str | os.PathLike, spec: RunSpec) -> str:
    return str(pathlib.Path(out).resolve() / "logs" / (spec.name.replace("/", "__") + ".log"))


def run_sweep(specs: list[RunSpec], out: str | os.PathLike, backend: Backend, retries: int = 1,
              progress=None) -> Outcome:
    """Run every unfinished spec on `backend` (at most backend.workers at a time), retrying a failed run `retries`
    times; `progress(line)` is called after every change."""
    done_before = [s.finished() for s in specs]
    outcome = Outcome(skipped=[s for s, done in zip(specs, done_before) if done])
    queue = collections.deque(s for s, done in zip(specs, done_before) if not done)
    attempts: collections.Counter = collections.Counter()
    running: dict[concurrent.futures.Future, RunSpec] = {}
    total, last = len(queue), [""]

    def report():
        line = (f"sweep: {len(outcome.finished)}/{total} done, {len(running)} running, {len(outcome.failed)} failed, "
                f"{len(queue)} queued ({len(outcome.skipped)} finished before)")
        if progress and line != last[0]:
            progress(line)
            last[0] = line

    report()
    try:
        while queue or running:
            while queue and len(running) < backend.workers:
                spec = queue.popleft()
                attempts[spec] += 1
                running[backend.submit(spec, log_path(out, spec))] = spec
            report()
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                spec = running.pop(future)
                try:
                    code = future.result()
                except Exception as error:  # the backend itself failed (e.g. a Ray worker died)
                    code = f"{type(error).__name__}: {error}"
                if code == 0 and spec.finished():
                    outcome.finished.append(spec)
                elif attempts[spec] <= retries:
                    queue.append(spec)  # it resumes from its last checkpoint
                else:
                    text = pathlib.Path(log_path(out, spec))
                    tail = text.read_text(errors="replace")[-LOG_TAIL:] if text.exists() else ""
                    outcome.failed.append((spec, code, tail))
    finally:
        backend.close()
    report()
    return outcome


def summary_text(outcome: Outcome, out: str | os.PathLike) -> str:
    lines = [f"sweep {out}: {len(outcome.finished)} runs finished, {len(outcome.skipped)} were finished before, "
             f"{len(outcome.failed)} failed ({outcome.seconds:.0f} s)"]
    for spec, code, tail in outcome.failed:
        lines += [f"\nFAILED {spec.name} (exit {code}, after a retry); log {log_path(out, spec)}:", tail.rstrip()]
    if outcome.finished or outcome.skipped:
        lines.append(f"\ntables and plots: hare-tortoise report {out}")
    return "\n".join(lines)


def sweep(preset: str, methods: list[str], seeds: list[int], overrides: list[str], out: str | os.PathLike,
          games: Sequence[str | None] = (None,), backend: str = "local", workers: int | None = None,
          threads_per_run: int | None = None, address: str | None = None, gpus_per_run: float = 0.0,
          data_dir: str | None = None, progress=None, partition: str | None = None,
          minutes: int = 24 * 60) -> Outcome:
    """Expand the grid and run it; see the module's docstring. By default a local sweep runs one run per CPU core
    with one thread each, or `workers` runs sharing the cores."""
    specs = grid(preset, methods, seeds, overrides, out, games, data_dir)
    cpus = os.cpu_count() or 1
    for name, value in (("--workers", workers), ("--threads-per-run", threads_per_run)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    threads = threads_per_run or max(1, cpus // (workers or cpus))
    runner: Backend
    if backend == "local":
        runner = LocalBackend(workers or max(1, cpus // threads), threads)
    elif backend == "ray":
        runner = RayBackend(workers, threads, gpus_per_run, address)
    elif backend in ("slurm", "slurm-local"):
        folder = pathlib.Path(out).resolve() / "slurm"  # submitit's job files: pickled calls, results, job logs
        runner = SlurmBackend(workers, threads, gpus_per_run, folder, partition, minutes,
                              local=backend == "slurm-local")
    else:
        raise ConfigError(f"--backend {backend!r}: choose local, ray, slurm or slurm-local")
    began = time.perf_counter()
    outcome = run_sweep(specs, out, runner, progress=progress)
    outcome.seconds = time.perf_counter() - began
    return outcome
