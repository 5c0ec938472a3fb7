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
class TaskTest:
    """What a task is tested on: the test set (all of it, or only the samples of `classes`, with the true labels
    mapped through `label_map`), or, for tasks of random labels, where there is nothing to generalise, the task's
    own training samples `train_indices` with its labels `train_labels`. The phase's input permutation applies."""

    classes: torch.Tensor | None = None         # class_incremental: the classes seen so far
    label_map: torch.Tensor | None = None       # shuffled_labels: true class -> the task's class
    train_indices: torch.Tensor | None = None   # random_labels: test on these training samples...
    train_labels: torch.Tensor | None = None    # ...with these labels


@dataclasses.dataclass
class Phase:
    """One phase (task): which training samples, with which labels, for how many epochs, and what it is tested on."""

    name: str
    indices: torch.Tensor                       # int64 indices into the training set
    labels: torch.Tensor                        # int64 labels for those samples (noisy where the protocol says)
    epochs: int
    input_permutation: torch.Tensor | None = None  # permuted_inputs: a fixed permutation of the input features
    test: TaskTest = dataclasses.field(default_factory=TaskTest)


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
        labels = corrupt(y[indices], noise_schedule[k], num_classes, generator)
        phases.append(Phase(f"chunk{k}", indices, labels, epochs))
    return phases


def permuted_inputs(y, num_classes, num_features, epochs, generator, tasks: int = 10) -> list[Phase]:
    """Permuted inputs (Goodfellow et al. 2013; Dohare et al., Nature 2024): every task applies its own fixed random
    permutation to the input features (pixels), on the full training set and its test set; the first task is
    unpermuted."""
    phases = []
    for k in range(tasks):
        permutation = torch.arange(num_features) if k == 0 else torch.randperm(num_features, generator=generator)
        phases.append(Phase(f"task{k}", torch.arange(len(y)), y.clone(), epochs, permutation))
    return phases


def shuffled_labels(y, num_classes, num_features, epochs, generator, tasks: int = 10) -> list[Phase]:
    """Shuffled labels (Lyle et al. 2023): every task maps the classes through its own fixed random permutation
    of the labels, on the full training set, and tests on the test set mapped the same way; the first task keeps
    the true labels."""
    phases = []
    for k in range(tasks):
        mapping = torch.arange(num_classes) if k == 0 else torch.randperm(num_classes, generator=generator)
        phases.append(Phase(f"task{k}", torch.arange(len(y)), mapping[y], epochs, test=TaskTest(label_map=mapping)))
    return phases


def random_labels(y, num_classes, num_features, epochs, generator, tasks: int = 10,
                  task_size: int = 1000) -> list[Phase]:
    """Random labels (Lyle et al. 2023, arXiv:2303.01486; Kumar et al. 2023, arXiv:2308.11958): the same
    `task_size` training samples in every task, their labels drawn afresh and uniformly for each. There is nothing
    to generalise, so a task is tested on its own samples and labels: the sequence measures trainability."""
    if task_size > len(y):
        raise InvalidInput(f"task_size={task_size} is more than the {len(y)} training samples; lower task_size")
    rows = torch.randperm(len(y), generator=generator)[:task_size]
    phases = []
    for k in range(tasks):
        labels = torch.randint(0, num_classes, (task_size,), generator=generator)
        phases.append(Phase(f"task{k}", rows, labels, epochs, test=TaskTest(train_indices=rows, train_labels=labels)))
    return phases


def class_incremental(y, num_classes, num_features, epochs, generator, first_classes: int = 2,
                      classes_per_task: int = 2) -> list[Phase]:
    """Class-incremental (Dohare et al., Nature 2024, incremental CIFAR-100: 5 classes, then 5 more per task):
    the classes in a random order; task k trains on every training sample of the first
    first_classes + k * classes_per_task of them and tests on the test samples of those classes, until all are in."""
    if not 0 < first_classes <= num_classes or classes_per_task < 1:
        raise InvalidInput(f"first_classes must be in [1, {num_classes}] and classes_per_task >= 1, got "
                           f"{first_classes} and {classes_per_task}")
    order = torch.randperm(num_classes, generator=generator)
    counts = range(first_classes, num_classes + classes_per_task, classes_per_task)
    phases = []
    for k, count in enumerate(counts):
        seen = order[: min(count, num_classes)].sort().values
        indices = torch.isin(y, seen).nonzero().flatten()
        phases.append(Phase(f"task{k}", indices, y[indices], epochs, test=TaskTest(classes=seen)))
    return phases


# the protocols whose tasks each have their own test: their runs record the task-accuracy matrix
SEQUENCES = ("permuted_inputs", "shuffled_labels", "random_labels", "class_incremental")


PROTOCOLS = {f.__name__: f for f in (cold, warm_start, ash_adams, continual, permuted_inputs, shuffled_labels,
                                     random_labels, class_incremental)}


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
