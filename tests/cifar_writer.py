"""Writes CIFAR-10 / CIFAR-100 archives in the real format (Krizhevsky 2009: a tar.gz of Python 2 pickles of
bytes-keyed dicts), for the readers' tests and for benchmarks that need an archive of the real size offline (a test
fixture: not part of the installed package)."""

from __future__ import annotations

import io
import pathlib
import pickle
import struct
import tarfile

import numpy as np

from hare_tortoise.data.cifar import SPECS


class _Python2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 `str` (SHORT_BINSTRING / BINSTRING), as the real archives hold them; Python 3's
    protocol 2 would write a call of `_codecs.encode` instead, which no CIFAR file contains."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes}


def python2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def batch_dict(images: np.ndarray, labels: np.ndarray, label_key: bytes, name: bytes) -> dict:
    """One batch file's dict: uint8 images (N, 3, 32, 32) as rows of 3,072 bytes (red, green, blue planes)."""
    return {b"batch_label": name, label_key: [int(y) for y in labels],
            b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), 3072),
            b"filenames": [b"image_%d.png" % i for i in range(len(images))]}


def members(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
            ) -> dict[str, bytes]:
    """The batch files of `name` ('cifar10' or 'cifar100') holding these images: CIFAR-10's training set split
    over its five batch files (10,000 each in the real one), CIFAR-100's in one."""
    _, _, train_names, test_name, label_key, *_ = SPECS[name]
    parts = np.array_split(np.arange(len(x_train)), len(train_names))
    files = {member: batch_dict(x_train[part], y_train[part], label_key, b"training batch %d" % (i + 1))
             for i, (member, part) in enumerate(zip(train_names, parts))}
    files[test_name] = batch_dict(x_test, y_test, label_key, b"testing batch 1")
    return {member: python2_pickle(batch) for member, batch in files.items()}


def write_archive(folder: str | pathlib.Path, name: str, files: dict[str, bytes], extracted: bool = False
                  ) -> pathlib.Path:
    """Write `files` (from `members`) as `<archive>.tar.gz` in `folder`, or as its extracted folder."""
    archive, top, *_ = SPECS[name]
    folder = pathlib.Path(folder)
    if extracted:
        (folder / top).mkdir(parents=True, exist_ok=True)
        for member, raw in files.items():
            (folder / top / member).write_bytes(raw)
        return folder / top
    with tarfile.open(folder / archive, "w:gz") as tar:
        for member, raw in files.items():
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return folder / archive


def random_archive(folder: str | pathlib.Path, name: str = "cifar10", train: int = 50_000, test: int = 10_000,
                   seed: int = 0) -> pathlib.Path:
    """An archive of uniformly random images and labels, of the real one's size by default: for timing runs where
    the real data cannot be fetched. Nothing can be learnt from it."""
    rng = np.random.default_rng(seed)
    classes = SPECS[name][5]
    images = rng.integers(0, 256, (train + test, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, classes, train + test)
    return write_archive(folder, name, members(name, images[:train], labels[:train], images[train:], labels[train:]))
