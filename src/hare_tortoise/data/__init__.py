"""Data: readers of real datasets (held in tensors), task streams (the protocols) and tensor-resident batches."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InvalidInput
from .cifar import load_cifar
from .dataset import DataError, Dataset
from .idx import load_fashion_mnist
from .imagefolder import load_imagefolder
from .mnist1d import load_mnist1d
from .tiny_imagenet import load_tiny_imagenet

SOURCES: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": lambda data_dir=None: load_cifar("cifar10", data_dir),
    "cifar100": lambda data_dir=None: load_cifar("cifar100", data_dir),
    "tiny_imagenet": load_tiny_imagenet,
    "imagefolder": load_imagefolder,  # a folder of class sub-folders (ImageNet-100 and the like), data_dir=ROOT
}


def available() -> list[str]:
    """The names of the datasets that `load` reads."""
    return sorted(SOURCES)


def load(name: str, data_dir=None, **options) -> Dataset:
    """Read dataset `name` (see `available()`), looking in `data_dir`, then $HARE_TORTOISE_DATA, then defaults."""
    if name not in SOURCES:
        raise InvalidInput(f"unknown dataset {name!r}; available: {', '.join(available())}")
    return SOURCES[name](data_dir=data_dir, **options)


def prepare(name: str, data_dir=None, train_size: int | None = None, test_size: int | None = None) -> Dataset:
    """Dataset `name` on the CPU, cut to `train_size` / `test_size` by a fixed (seed-independent) subset; MNIST-1D
    generates that many samples instead."""
    if name == "mnist1d":
        sizes = {k: v for k, v in (("train_size", train_size), ("test_size", test_size)) if v}
        return load("mnist1d", data_dir, **sizes)
    dataset = load(name, data_dir)
    subset = torch.Generator().manual_seed(0)  # the same subset for every seed and method
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if size is not None and size < len(y):
            keep = torch.randperm(len(y), generator=subset)[:size]
            setattr(dataset, f"x_{split}", x[keep])
            setattr(dataset, f"y_{split}", y[keep])
    return dataset


__all__ = ["DataError", "Dataset", "available", "load", "prepare"]
