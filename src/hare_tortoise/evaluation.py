"""Evaluation of a trained network: top-1 accuracy in eval mode, in batches sized so that evaluation on the CPU does
not page-fault its activations afresh every batch, with bf16 autocast on CUDA; and what each task of a sequence is
tested on, for the task-accuracy matrix."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

from .data import Dataset
from .data.streams import Phase
from .tensors import evaluating

EVAL_BATCH = 4096
EVAL_ACTIVATION_BYTES = 8 * 2**20  # on the CPU, see evaluation_batch


@torch.no_grad()
def evaluation_batch(model: torch.nn.Module, one_input: torch.Tensor, training_batch: int) -> int:
    """Samples per evaluation batch: 4096, except on the CPU where the batch's largest activation (measured by one
    forward pass of `one_input`, in eval mode) stays under 8 MB, but the batch not under the training batch, whose
    activations training allocates anyway. glibc hands blocks over its mmap threshold (32 MB at most) back to the
    kernel when they are freed, and the kernel maps and zeroes them again page by page at the next batch: the
    `fashion-cold` CNN evaluated 10,000 images in 4.4 s in batches of 4096 and in 1.7-1.9 s in batches of 256
    (benchmarks/evaluation_batch.py). The logits are the same at any batch size. CUDA's caching allocator keeps
    freed blocks, so there the batch stays 4096."""
    if one_input.device.type != "cpu":
        return EVAL_BATCH
    largest = 0

    def note(module, inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    handles = [module.register_forward_hook(note) for module in model.modules()]
    try:
        with evaluating(model):
            model(one_input)
    finally:
        for handle in handles:
            handle.remove()
    return max(training_batch, min(EVAL_BATCH, EVAL_ACTIVATION_BYTES // max(largest, 1)))


@torch.no_grad()
def accuracies(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
               inputs: Callable[[torch.Tensor], torch.Tensor], batch_size: int = EVAL_BATCH,
               bf16: bool = True) -> list[float]:
    """Top-1 accuracy of each of `models` in eval mode (their modes are restored afterwards) on the same inputs,
    made once per batch for all of them; `bf16`: autocast on CUDA."""
    correct = [torch.zeros((), dtype=torch.long, device=y.device) for _ in models]
    with autocast(y.device, bf16), contextlib.ExitStack() as modes:
        for model in models:
            modes.enter_context(evaluating(model))
        for start in range(0, len(y), batch_size):
            batch, labels = inputs(x[start:start + batch_size]), y[start:start + batch_size]
            for count, model in zip(correct, models):
                count += (model(batch).argmax(1) == labels).sum()
    return [count.item() / len(y) for count in correct]


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, inputs: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int = EVAL_BATCH, bf16: bool = True) -> float:
    """Top-1 accuracy of `model` in eval mode (its mode is restored afterwards); `bf16`: autocast on CUDA."""
    return accuracies([model], x, y, inputs, batch_size, bf16)[0]


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA; elsewhere no context at all (a disabled `torch.autocast` still costs 4-8 us a step)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def task_test(phase: Phase, data: Dataset, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs (before the phase's permutation) and labels that `phase`'s task is tested on (`Phase.test`):
    the test set, or its samples of the classes seen, with the task's labels, or the task's own training samples.
    `size`: a fixed subsample of that many (the same for every call), for the accuracy matrix."""
    test = phase.test
    if test.train_indices is not None:
        assert test.train_labels is not None  # set together (streams.TaskTest)
        x, y = data.x_train.index_select(0, test.train_indices.to(data.x_train.device)), test.train_labels
    else:
        x, y = data.x_test, data.y_test
        if test.classes is not None:
            keep = torch.isin(y, test.classes.to(y.device))
            x, y = x[keep], y[keep]
        if test.label_map is not None:
            y = test.label_map.to(y.device)[y]
    y = y.to(x.device)
    if size is not None and size < len(y):
        rows = _subsample(len(y), size).to(x.device)
        x, y = x.index_select(0, rows), y.index_select(0, rows)
    return x, y


@functools.lru_cache(maxsize=8)
def _subsample(count: int, size: int) -> torch.Tensor:
    """`size` of `count` rows drawn once (the tasks of a sequence share a test set: one draw for all)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(0))[:size]


def matrix_columns(task: int, tasks: int, earlier: int | None) -> list[int]:
    """The tasks tested after training `task` (of `tasks`) for the accuracy matrix R[task][j]: the task itself,
    the next one (forward transfer), and `earlier` of the ones before it spread evenly from the first (every one
    before it with None), so that the matrix costs O(tasks * earlier) evaluations rather than O(tasks^2)."""
    before = list(range(task))
    if earlier is not None and len(before) > earlier:
        before = sorted({round(k * (task - 1) / max(earlier - 1, 1)) for k in range(earlier)}) if earlier > 1 else [0]
    return before + [task] + ([task + 1] if task + 1 < tasks else [])
