"""The protocols: a training set turned into a stream of phases (tasks), each a subset with its labels.

Everything is built with vectorised index operations from one seeded generator: linear time, reproducible.
Label noise replaces a label by a uniformly random *different* class, for exactly round(noise * n) samples.
"""

from __future__ import annotations

import dataclasses
import inspect

import torch

from ..errors import InvalidInput

PAPER_NOISE_SCHEDULE = (0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1, 0.0)


@dataclasses.dataclass
class Phase:
    """One phase (task): which training samples, with which labels, for how many epochs."""

    name: str
    indices: torch.Tensor                       # int64 indices into the training set
    labels: torch.Tensor                        # int64 labels for those samples (noisy where the protocol says)
    epochs: int
    input_permutation: torch.Tensor | None = None  # permuted_inputs: a fixed permutation of the input features


def corrupt(labels: torch.Tensor, noise: float, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A copy of `labels` with round(noise * n) of them, chosen at random, moved to a random different class."""
    noisy = labels.clone()
    count = round(noise * len(labels))
    if count:
        where = torch.randperm(len(labels), generator=generator)[:count]
        shift = torch.randint(1, num_classes, (count,), generator=generator)  # 1..C-1: never the same class
        noisy[where] = (labels[where] + shift) % num_classes
    return noisy


def _epochs(base_epochs: int, fraction: float) -> int:
    """The paper's epoch budget for a phase on `fraction` of the data: int(B / fraction), at least 1."""
    return max(1, int(base_epochs / fraction))


def cold(y, num_classes, num_features, epochs, generator) -> list[Phase]:
    """Cold start (the reference): one phase on the full clean training set for B epochs."""
    return [Phase("cold", torch.arange(len(y)), y.clone(), epochs)]


def warm_start(y, num_classes, num_features, epochs, generator, warm_fraction: float = 0.1,
               warm_noise: float = 0.5) -> list[Phase]:
    """Warm start (Lee et al. 2024): a random `warm_fraction` with `warm_noise` label noise for int(B/fraction)
    epochs, then the full clean set for int(B/0.9) epochs (the paper's budget for the second phase)."""
    order = torch.randperm(len(y), generator=generator)
    first = order[: round(warm_fraction * len(y))]
    return [Phase("warm", first, corrupt(y[first], warm_noise, num_classes, generator), _epochs(epochs, warm_fraction)),
            Phase("full", torch.arange(len(y)), y.clone(), _epochs(epochs, 0.9))]


def ash_adams(y, num_classes, num_features, epochs, generator, warm_fraction: float = 0.5) -> list[Phase]:
    """The classic warm start of Ash & Adams (NeurIPS 2020): clean `warm_fraction` (50%), then 100%."""
    return warm_start(y, num_classes, num_features, epochs, generator, warm_fraction, 0.0)


def continual(y, num_classes, num_features, epochs, generator, chunks: int = 10, chunk_fraction: float = 0.1,
              noise_schedule: tuple[float, ...] = PAPER_NOISE_SCHEDULE, memory: str = "accumulate",
              replay_size: int = 5000) -> list[Phase]:
    """Continual learning with label noise (Lee et al. 2024): `chunks` disjoint random chunks of the training set.

    Chunk k trains on itself plus, with memory="accumulate", all earlier chunks, or with memory="replay", up to
    `replay_size` earlier samples drawn uniformly at random. Its label noise ratio noise_schedule[k] is drawn afresh
    over all the samples it trains on. B epochs per chunk.
    """
    if len(noise_schedule) != chunks:
        raise InvalidInput(f"noise_schedule has {len(noise_schedule)} entries for {chunks} chunks")
    if memory not in ("accumulate", "replay"):
        raise InvalidInput(f"memory must be 'accumulate' or 'replay', got {memory!r}")
    size = round(chunk_fraction * len(y))
    if size * chunks > len(y):
        raise InvalidInput(f"{chunks} chunks of {chunk_fraction:.0%} do not fit in the training set")
    parts = torch.randperm(len(y), generator=generator)[: size * chunks].view(chunks, size)
    phases = []
    for k in range(chunks):
        earlier = parts[:k].reshape(-1)
        if memory == "replay" and len(earlier) > replay_size:
            earlier = earlier[torch.randperm(len(earlier), generator=generator)[:replay_size]]
        indices = torch.cat([earlier, parts[k]])
        phases.append(Phase(f"chunk{k}", indices, corrupt(y[indices], noise_schedule[k], num_classes, generator), epochs))
    return phases


def permuted_inputs(y, num_classes, num_features, epochs, generator, tasks: int = 10) -> list[Phase]:
    """Permuted inputs (Goodfellow et al. 2013; Dohare et al. 2021): every task applies its own fixed random
    permutation to the input features (pixels), on the full training set; the first task is unpermuted."""
    phases = []
    for k in range(tasks):
        permutation = torch.arange(num_features) if k == 0 else torch.randperm(num_features, generator=generator)
        phases.append(Phase(f"task{k}", torch.arange(len(y)), y.clone(), epochs, permutation))
    return phases


def shuffled_labels(y, num_classes, num_features, epochs, generator, tasks: int = 10) -> list[Phase]:
    """Shuffled labels (Lyle et al. 2023): every task maps the classes through its own fixed random permutation
    of the labels, on the full training set; the first task keeps the true labels."""
    phases = []
    for k in range(tasks):
        mapping = torch.arange(num_classes) if k == 0 else torch.randperm(num_classes, generator=generator)
        phases.append(Phase(f"task{k}", torch.arange(len(y)), mapping[y], epochs))
    return phases


PROTOCOLS = {f.__name__: f for f in (cold, warm_start, ash_adams, continual, permuted_inputs, shuffled_labels)}


def options(protocol: str) -> set[str]:
    """The settings that `protocol` takes beyond the common ones."""
    return set(list(inspect.signature(PROTOCOLS[protocol]).parameters)[5:])


def build(protocol: str, labels: torch.Tensor, num_classes: int, num_features: int, epochs: int, seed: int,
          **settings) -> list[Phase]:
    """The phases of `protocol` over a training set with `labels` (CPU tensors), reproducible from `seed`.

    `settings` may name any option of any protocol; the ones this protocol does not take are ignored, so one
    config can hold them all.
    """
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"unknown protocol {protocol!r}; available: {', '.join(sorted(PROTOCOLS))}")
    generator = torch.Generator().manual_seed(seed)
    own = {k: v for k, v in settings.items() if k in options(protocol)}
    return PROTOCOLS[protocol](labels.cpu(), num_classes, num_features, epochs, generator, **own)
