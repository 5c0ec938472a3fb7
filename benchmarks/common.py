"""What every benchmark shares: interleaved timing (so that a noisy machine slows both sides of a ratio alike), the
steady epoch of a run timed epoch by epoch, the time spent inside chosen functions of a run, page-fault counts, and
the record of one figure."""

from __future__ import annotations

import collections
import contextlib
import resource
import statistics
import time
from collections.abc import Callable
from unittest import mock


def interleaved(functions: dict[str, Callable[[], object]], rounds: int = 7, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns (a, b, a, b, ...) after one warm-up call each."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            began = time.perf_counter()
            for _ in range(inner):
                function()
            times[name].append((time.perf_counter() - began) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def time_inside(targets: list[tuple[object, str, str]]):
    """Within the block, each `(owner, attribute, label)` function is replaced by a wrapper that adds its seconds
    and calls to the yielded (spent, calls) counters under `label`; the originals come back on exit."""
    spent, calls = collections.Counter(), collections.Counter()

    def timed(original, label: str):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - began
                calls[label] += 1
        return wrapper

    with contextlib.ExitStack() as stack:
        for owner, name, label in targets:
            stack.enter_context(mock.patch.object(owner, name, timed(getattr(owner, name), label)))
        yield spent, calls


def steady(epoch_seconds: list[float]) -> float:
    """The median of the epochs between the first (start-up, compilation) and the last (evaluation)."""
    return statistics.median(epoch_seconds[1:-1])


def page_faults() -> int:
    """This process's page faults so far: memory the kernel mapped (and zeroed) for it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def figure(name: str, value: float, target: float, unit: str, higher_is_better: bool, note: str = "") -> dict:
    """One benchmark figure and whether it meets its target."""
    met = value >= target if higher_is_better else value <= target
    return {"name": name, "value": round(value, 4), "target": target, "unit": unit,
            "target_is": "min" if higher_is_better else "max", "met": bool(met), "note": note}
