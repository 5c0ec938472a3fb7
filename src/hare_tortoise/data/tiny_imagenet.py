"""Tiny-ImageNet (Le & Yang 2015): 200 classes of 64x64 images, from the standard zip or its extracted folder.

JPEGs are decoded once (with Pillow) and cached as a uint8 tensor file next to the data, so later runs load in
seconds. The validation split, labelled by `val/val_annotations.txt`, serves as the test set (the official test
split has no labels).
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import torch

from .dataset import DataError, Dataset, find, read_cache, search_dirs, write_cache

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HOW_TO_GET = ("Put tiny-imagenet-200.zip (or its extracted tiny-imagenet-200/) in --data-dir or $HARE_TORTOISE_DATA, "
              "or run `hare-tortoise data download tiny_imagenet --data-dir DIR`.")


class _Zip:
    """Read files of the archive by their path inside `tiny-imagenet-200/`."""

    def __init__(self, path: pathlib.Path):
        try:
            self.archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as error:
            raise DataError(f"{path} is not a valid zip file ({error}). {HOW_TO_GET}") from None
        self.names = set(self.archive.namelist())

    def read(self, name: str) -> bytes:
        return self.archive.read(f"tiny-imagenet-200/{name}")

    def list(self, prefix: str) -> list[str]:
        start = f"tiny-imagenet-200/{prefix}"
        return sorted(n[len("tiny-imagenet-200/"):] for n in self.names if n.startswith(start) and n.endswith(".JPEG"))


class _Folder:
    def __init__(self, path: pathlib.Path):
        self.root = path

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def list(self, prefix: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(f"{prefix}**/*.JPEG"))


def _decode(source, names: list[str]) -> torch.Tensor:
    from PIL import Image

    images = torch.empty(len(names), 3, 64, 64, dtype=torch.uint8)
    for i, name in enumerate(names):
        with Image.open(io.BytesIO(source.read(name))) as image:
            pixels = torch.frombuffer(bytearray(image.convert("RGB").resize((64, 64)).tobytes()), dtype=torch.uint8)
        images[i] = pixels.view(64, 64, 3).permute(2, 0, 1)
    return images


def load_tiny_imagenet(data_dir=None) -> Dataset:
    """Tiny-ImageNet as uint8 (N, 3, 64, 64): 100,000 train, 10,000 validation (used as test) images."""
    path = find(["tiny-imagenet-200", "tiny-imagenet-200.zip"], search_dirs(data_dir), HOW_TO_GET)
    cache = path.parent / "tiny-imagenet-200.pt"
    t = read_cache(cache) if cache.exists() and cache.stat().st_mtime >= path.stat().st_mtime else None
    if t is not None and "num_classes" in t:
        return Dataset("tiny_imagenet", t["x"], t["y"], t["x_test"], t["y_test"], int(t["num_classes"]),
                       IMAGENET_MEAN, IMAGENET_STD)
    source = _Folder(path) if path.is_dir() else _Zip(path)
    try:
        wnids = source.read("wnids.txt").decode().split()
        annotations = source.read("val/val_annotations.txt").decode().splitlines()
    except (KeyError, FileNotFoundError) as error:
        raise DataError(f"{path} lacks wnids.txt or val/val_annotations.txt ({error}). {HOW_TO_GET}") from None
    classes = {wnid: i for i, wnid in enumerate(wnids)}
    train = source.list("train/")
    try:
        y_train = torch.tensor([classes[name.split("/")[1]] for name in train])
        val = [line.split("\t")[:2] for line in annotations if line.strip()]
        y_test = torch.tensor([classes[wnid] for _, wnid in val])
    except (KeyError, IndexError) as error:
        raise DataError(f"{path}: a class or annotation line does not match wnids.txt ({error}). "
                        f"{HOW_TO_GET}") from None
    if not train or not val:
        raise DataError(f"{path} holds no training or validation images. {HOW_TO_GET}")
    x_train, x_test = _decode(source, train), _decode(source, [f"val/images/{file}" for file, _ in val])
    write_cache(cache, {"x": x_train, "y": y_train, "x_test": x_test, "y_test": y_test, "num_classes": len(wnids)})
    return Dataset("tiny_imagenet", x_train, y_train, x_test, y_test, len(wnids), IMAGENET_MEAN, IMAGENET_STD)
