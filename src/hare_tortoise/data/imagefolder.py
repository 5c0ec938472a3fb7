"""An image folder laid out as ImageNet and its subsets are: `root/train/<class>/<image>` and `root/val/<class>/...`
(or `root/test/`), JPEG or PNG files, one sub-folder per class.

The images are decoded once with Pillow, resized to `image_size` x `image_size` (bilinear, as torchvision's
`Resize`, after converting to RGB), and cached as a uint8 tensor file beside the folder, so later runs read them
without decoding again. The cache is made again when a class folder changes (a file added or removed), or when it is
damaged. The per-channel mean and std of the training images go with the dataset, for normalisation.
"""

from __future__ import annotations

import pathlib

import torch

from .dataset import DataError, Dataset, read_cache, search_dirs, write_cache

SUFFIXES = {".jpg", ".jpeg", ".png"}
HOW_TO = ("An image folder holds train/ and val/ (or test/), each with one sub-folder of JPEG or PNG files per "
          "class; give its path as --data-dir (or data.load('imagefolder', PATH)).")


def _root(data_dir) -> pathlib.Path:
    for directory in search_dirs(data_dir):
        if (directory / "train").is_dir():
            return directory
    looked = ", ".join(map(str, search_dirs(data_dir))) or "(no folder given)"
    raise DataError(f"no image folder with a train/ sub-folder in: {looked}. {HOW_TO}")


def _class_folders(split: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """Each class folder of `split` with its image files, sorted; an empty class folder is refused."""
    classes = {}
    for folder in sorted(p for p in split.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if not images:
            raise DataError(f"{folder} holds no JPEG or PNG image: remove the empty class folder, or fill it. {HOW_TO}")
        classes[folder.name] = images
    if not classes:
        raise DataError(f"{split} has no class sub-folders. {HOW_TO}")
    return classes


def _decode(files: list[pathlib.Path], size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise DataError(f"cannot decode {path} ({error}): replace or delete the file") from None
        images[i] = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
    return images


def _stamp(root: pathlib.Path, splits: list[pathlib.Path]) -> float:
    """The latest change of the folder, its splits and their class folders (adding a file to a class folder
    changes that folder's time)."""
    folders = [root, *splits, *(p for split in splits for p in split.iterdir() if p.is_dir())]
    return max(p.stat().st_mtime for p in folders)


def load_imagefolder(data_dir=None, image_size: int = 64) -> Dataset:
    """The folder's images as uint8 (N, 3, image_size, image_size), labels by class folder in sorted order."""
    if image_size < 1:
        raise DataError(f"image_size must be >= 1, got {image_size}")
    root = _root(data_dir)
    test_split = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if test_split is None:
        raise DataError(f"{root} has train/ but neither val/ nor test/. {HOW_TO}")
    cache = root.parent / f"{root.name}-{image_size}px.pt"
    fresh = cache.exists() and cache.stat().st_mtime >= _stamp(root, [root / "train", test_split])
    stored = read_cache(cache) if fresh else None
    if stored is None:
        train, test = _class_folders(root / "train"), _class_folders(test_split)
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise DataError(f"{test_split} has class folders that train/ lacks: {', '.join(unknown)}. {HOW_TO}")
        names = list(train)
        labels = {name: i for i, name in enumerate(names)}

        def split(classes):
            files = [f for name in classes for f in classes[name]]
            return _decode(files, image_size), torch.tensor([labels[n] for n in classes for _ in classes[n]])

        (x, y), (x_test, y_test) = split(train), split(test)
        scaled = x.float().div_(255)
        stored = {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "classes": names,
                  "mean": scaled.mean(dim=(0, 2, 3)), "std": scaled.std(dim=(0, 2, 3))}
        write_cache(cache, stored)
    return Dataset("imagefolder", stored["x"], stored["y"], stored["x_test"], stored["y_test"],
                   len(stored["classes"]), tuple(stored["mean"].tolist()), tuple(stored["std"].tolist()))
