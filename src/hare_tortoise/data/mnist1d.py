"""MNIST-1D (Greydanus & Kobak, 2024, arXiv:2011.14439): 40-sample 1-D signals of 10 digits, generated offline."""

from __future__ import annotations

import torch

from ..errors import InvalidInput
from .dataset import DEFAULT_CACHE, Dataset, read_cache, search_dirs, write_cache


def load_mnist1d(train_size: int = 4000, test_size: int = 1000, seed: int = 42, data_dir=None) -> Dataset:
    """Generate MNIST-1D with the `mnist1d` package (its default transformations), cached as a tensor file.

    Inputs are standardised over the whole set, as the package does. Generation takes seconds per 10,000
    samples, so the result is cached under `data_dir` (or $HARE_TORTOISE_DATA, or ~/.cache/hare-tortoise).
    """
    if train_size < 10 or test_size < 10:
        raise InvalidInput(f"mnist1d needs at least 10 train and 10 test samples, got {train_size} and {test_size}")
    cache = search_dirs(data_dir, DEFAULT_CACHE)[0] / f"mnist1d-{train_size}-{test_size}-seed{seed}.pt"
    tensors = read_cache(cache)
    if tensors is None:
        tensors = _generate(train_size, test_size, seed)
        write_cache(cache, tensors)
    return Dataset("mnist1d", tensors["x"], tensors["y"], tensors["x_test"], tensors["y_test"], num_classes=10)


def _generate(train_size: int, test_size: int, seed: int) -> dict[str, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    total = train_size + test_size
    # The package makes num_samples // 10 per class: round up, then cut to the exact sizes.
    args.num_samples = -(-total // 10) * 10
    args.train_split = 1.0
    args.seed = seed
    data = make_dataset(args)
    x = torch.as_tensor(data["x"], dtype=torch.float32)
    y = torch.as_tensor(data["y"], dtype=torch.int64)
    return {"x": x[:train_size].clone(), "y": y[:train_size].clone(),
            "x_test": x[train_size:total].clone(), "y_test": y[train_size:total].clone()}
