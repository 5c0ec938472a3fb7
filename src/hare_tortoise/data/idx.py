"""Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747) from its IDX files."""

from __future__ import annotations

import gzip
import pathlib

import torch

from .dataset import DataError, Dataset, find, search_dirs

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
HOW_TO_GET = ("Install the Debian package `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), or put "
              "the four IDX files (train-images-idx3-ubyte.gz, ...) in --data-dir or $HARE_TORTOISE_DATA.")


def read_idx(path: pathlib.Path) -> torch.Tensor:
    """An IDX file (gzipped or not) of unsigned bytes as a uint8 tensor of the shape its header declares."""
    raw = path.read_bytes()
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a valid gzip file ({error}). {HOW_TO_GET}") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number). {HOW_TO_GET}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or corrupt: header says {expected} bytes, file has {len(raw)}. "
                        f"{HOW_TO_GET}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def load_fashion_mnist(data_dir=None) -> Dataset:
    """Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale images of 10 classes, as uint8 (N, 1, 28, 28)."""
    dirs = search_dirs(data_dir, DEBIAN_DIR)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(find([f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"], dirs, HOW_TO_GET))
        labels = read_idx(find([f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte"], dirs, HOW_TO_GET))
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise DataError(f"Fashion-MNIST {split} images {tuple(images.shape)} and labels {tuple(labels.shape)} "
                            f"do not match. {HOW_TO_GET}")
        arrays[split] = (images.unsqueeze(1).contiguous(), labels.long())
    x_train = arrays["train"][0]
    scaled = x_train.float() / 255
    return Dataset("fashion_mnist", x_train, arrays["train"][1], *arrays["test"], num_classes=10,
                   mean=(scaled.mean().item(),), std=(scaled.std().item(),))
