"""A classification dataset held in tensors, and where readers look for files."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys

import torch

from ..errors import InvalidInput


@dataclasses.dataclass
class Dataset:
    """Train and test splits as tensors: images as uint8 (N, C, H, W), other inputs as float32 (N, D)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor  # int64 class indices
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] | None = None  # per-channel statistics of images scaled to [0, 1], for normalisation
    std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, x_train, y_train, x_test, y_test, num_classes: int | None = None, name: str = "custom",
           mean=None, std=None) -> Dataset:
        """A dataset from a user's own tensors or numpy arrays: images as uint8 (N, C, H, W) (give mean/std per
        channel of the [0, 1]-scaled pixels) or any float inputs (N, ...) used as they are; integer labels."""
        x_train, x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
        y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
        if len(x_train) != len(y_train) or len(x_test) != len(y_test):
            raise InvalidInput(f"inputs and labels differ in length: {len(x_train)}/{len(y_train)} train, "
                             f"{len(x_test)}/{len(y_test)} test")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise InvalidInput(f"train and test inputs differ in shape: {tuple(x_train.shape[1:])} and "
                               f"{tuple(x_test.shape[1:])}")
        if x_train.dtype != torch.uint8:
            x_train, x_test = x_train.float(), x_test.float()
        classes = num_classes or int(max(y_train.max(), y_test.max())) + 1
        if y_train.min() < 0 or max(y_train.max(), y_test.max()) >= classes:
            raise InvalidInput(f"labels must be class indices in [0, {classes})")
        return cls(name, x_train, y_train, x_test, y_test, classes, mean, std)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on `device` (the whole dataset lives there, batches are slices)."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("x_train", "y_train", "x_test", "y_test"):
            moved[key] = moved[key].to(device)
        return Dataset(**moved)


class DataError(InvalidInput):
    """Missing or corrupt data: the message says which file, where it was looked for and how to get it."""


DEFAULT_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "hare-tortoise"


def search_dirs(data_dir: str | os.PathLike | None, *extra: str | os.PathLike) -> list[pathlib.Path]:
    """Where to look, in order: `data_dir`, $HARE_TORTOISE_DATA, then `extra` (e.g. a Debian package's folder)."""
    dirs = [data_dir, os.environ.get("HARE_TORTOISE_DATA"), *extra]
    return [pathlib.Path(d).expanduser() for d in dirs if d]


def find(names: list[str], dirs: list[pathlib.Path], how_to_get: str) -> pathlib.Path:
    """The first of `names` (files or folders) found in `dirs`; a DataError that says where it looked otherwise."""
    for directory in dirs:
        for name in names:
            if (directory / name).exists():
                return directory / name
    looked = ", ".join(str(d) for d in dirs) or "(no folder given)"
    raise DataError(f"none of {', '.join(names)} found in: {looked}. {how_to_get}")


CACHE_KEYS = ("x", "y", "x_test", "y_test")  # what a dataset cache file holds


def read_cache(path: pathlib.Path) -> dict | None:
    """The tensors of a dataset cache file, or None where it is missing or damaged (cut short, overwritten, or
    not such a file): the caller makes it again, and a damaged one is said on stderr."""
    if not path.exists():
        return None
    try:
        tensors = torch.load(path, weights_only=True)
        if not (isinstance(tensors, dict) and all(torch.is_tensor(tensors.get(k)) for k in CACHE_KEYS)
                and len(tensors["x"]) == len(tensors["y"]) and len(tensors["x_test"]) == len(tensors["y_test"])):
            raise ValueError("it is not a dataset cache")
    except Exception as error:  # torch raises several kinds for a damaged file
        print(f"hare-tortoise: the cache {path} is damaged ({type(error).__name__}); making it again", file=sys.stderr)
        return None
    return tensors


def write_cache(path: pathlib.Path, tensors: dict) -> None:
    """Write a dataset cache atomically: a reader, or a run killed meanwhile, sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save(tensors, partial)
    partial.replace(path)
