"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the standard python-pickle archives, read without trusting them."""

from __future__ import annotations

import io
import pathlib
import pickle
import tarfile

import numpy as np
import torch

from .dataset import DataError, Dataset, find, search_dirs

# What the CIFAR pickles hold: dicts of bytes, lists and uint8 arrays. Nothing else may be built while reading.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR archive")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # any failure here means the file is not a CIFAR batch
        raise DataError(f"{where} is not a valid CIFAR batch ({error}); delete it and fetch the archive again "
                        "(hare-tortoise data download cifar10|cifar100).") from None


# name -> (archive, extracted folder, training members, test member, label key, classes, mean, std from docs/METHODS.md)
SPECS = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                "test_batch", b"labels", 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", ["train"], "test", b"fine_labels", 100,
                 (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _members(path: pathlib.Path, folder: str, names: list[str]) -> dict[str, bytes]:
    """The raw bytes of the named batch files, from the archive or from its extracted folder."""
    if path.is_dir():
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}; the folder is incomplete: extract the archive again.")
        return {n: (path / n).read_bytes() for n in names}
    try:
        with tarfile.open(path, "r:gz") as archive:
            found = {}
            for name in names:
                member = archive.extractfile(f"{folder}/{name}")
                if member is None:  # a directory or a link of that name, not the file
                    raise KeyError(name)
                found[name] = member.read()
            return found
    except (tarfile.TarError, KeyError, OSError, EOFError) as error:
        raise DataError(f"{path} is not a complete CIFAR archive ({error}); delete it and download it again.") from None


def load_cifar(name: str, data_dir=None) -> Dataset:
    """CIFAR-10 or CIFAR-100 as uint8 (N, 3, 32, 32), from `<archive>.tar.gz` or its extracted folder."""
    archive, folder, train_names, test_name, label_key, classes, mean, std = SPECS[name]
    how = (f"Put {archive} (or its extracted {folder}/) in --data-dir or $HARE_TORTOISE_DATA, or run "
           f"`hare-tortoise data download {name} --data-dir DIR`.")
    path = find([folder, archive], search_dirs(data_dir), how)
    raw = _members(path, folder, train_names + [test_name])

    def split(names):
        xs, ys = [], []
        for member in names:
            batch = _unpickle(raw[member], f"{path}:{member}")
            data, labels = batch.get(b"data"), batch.get(label_key)
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
                    or labels is None or len(labels) != len(data):
                labels = len(data) if data is not None else 0
                raise DataError(f"{path}:{member} does not hold CIFAR data (uint8 N x 3072 and {labels} labels)")
            xs.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
            ys.append(torch.as_tensor(list(labels), dtype=torch.int64))
        return torch.cat(xs), torch.cat(ys)

    x_train, y_train = split(train_names)
    x_test, y_test = split([test_name])
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes=classes, mean=mean, std=std)
