"""Download the archives that cannot ship with the package, only when the user asks, checksums verified."""

from __future__ import annotations

import hashlib
import pathlib
import urllib.request

from .dataset import DataError

# name -> (URL, file name, published MD5)
ARCHIVES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
    "tiny_imagenet": ("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
                      "90528d7ca1a48142e341f4ef8d21d0de"),
}


def md5(path: pathlib.Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, data_dir: str | pathlib.Path, url: str | None = None) -> pathlib.Path:
    """Fetch the archive of `name` into `data_dir` and verify its MD5; an existing verified file is kept.

    The file is written under a temporary name and renamed only once its checksum matches, so a failed or
    interrupted download never leaves a file that looks complete. `url` replaces the official address (a mirror).
    """
    if name not in ARCHIVES:
        raise DataError(f"nothing to download for {name!r}; downloadable: {', '.join(ARCHIVES)} "
                        "(mnist1d is generated and fashion_mnist comes from the Debian package dataset-fashion-mnist)")
    official, filename, checksum = ARCHIVES[name]
    target = pathlib.Path(data_dir).expanduser() / filename
    if target.exists():
        if md5(target) == checksum:
            return target
        raise DataError(f"{target} exists but its MD5 is not the published {checksum}: delete it and download again")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(filename + ".part")
    try:
        with urllib.request.urlopen(url or official, timeout=60) as response, open(partial, "wb") as file:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                file.write(chunk)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {url or official} ({error}); fetch {filename} by hand into "
                        f"{target.parent}") from None
    actual = md5(partial)
    if actual != checksum:
        partial.unlink()
        raise DataError(f"{filename} from {url or official} has MD5 {actual}, not the published {checksum}; "
                        "nothing was kept")
    partial.replace(target)
    return target
