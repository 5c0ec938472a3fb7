"""Each reader on small files it did not write itself, in the exact formats of the real archives."""

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import pytest
import torch

import cifar_writer
from hare_tortoise import data
from hare_tortoise.data import DataError
from hare_tortoise.data import download as downloads


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 ndim, big-endian dimensions, then the data."""
    return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def write_fashion(folder, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    arrays = write_fashion(tmp_path, gz=gz)
    dataset = data.load("fashion_mnist", tmp_path)
    assert dataset.x_train.shape == (5, 1, 28, 28) and dataset.x_train.dtype == torch.uint8
    assert torch.equal(dataset.x_train[:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(dataset.y_test, torch.from_numpy(arrays["t10k"][1]).long())
    assert dataset.num_classes == 10 and dataset.mean[0] == pytest.approx(arrays["train"][0].mean() / 255, rel=1e-5)


def test_fashion_mnist_errors_name_the_file_and_the_fix(tmp_path):
    write_fashion(tmp_path)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is truncated or corrupt.*dataset-fashion-mnist"):
        data.load("fashion_mnist", tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00\x09\x03garbage")
    with pytest.raises(DataError, match="not an IDX file of unsigned bytes"):
        data.load("fashion_mnist", tmp_path)


def test_missing_files_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr("hare_tortoise.data.idx.DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setenv("HARE_TORTOISE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError, match=f"found in: {tmp_path / 'mine'}, {tmp_path / 'env'}, {tmp_path / 'debian'}"):
        data.load("fashion_mnist", tmp_path / "mine")


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's dataset-fashion-mnist")
def test_the_real_fashion_mnist_of_the_debian_package(monkeypatch):
    monkeypatch.delenv("HARE_TORTOISE_DATA")
    dataset = data.load("fashion_mnist")
    assert dataset.x_train.shape == (60000, 1, 28, 28) and dataset.x_test.shape == (10000, 1, 28, 28)
    assert torch.equal(dataset.y_train.bincount(), torch.full((10,), 6000))


def write_cifar(folder, name, extracted=False):
    """A CIFAR archive of 3 images per batch file in the real format; returns the images and labels written."""
    files, classes = (6, 10) if name == "cifar10" else (2, 100)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (3 * files, 3, 32, 32), dtype=np.uint8), rng.integers(0, classes, 3 * files)
    cifar_writer.write_archive(folder, name, cifar_writer.members(name, x[:-3], y[:-3], x[-3:], y[-3:]), extracted)
    return x, y


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_the_cifar_writer_writes_the_real_format(name):
    """Checked with the standard library, not our reader: Python 2 pickles (bytes as BINSTRING, no _codecs call)
    of bytes-keyed dicts whose rows of 3,072 bytes are the red, green and blue planes, labels as a list."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), np.array([1, 0, 3, 2])
    files = cifar_writer.members(name, x[:2], y[:2], x[2:], y[2:])
    key = b"labels" if name == "cifar10" else b"fine_labels"
    assert sorted(files) == sorted([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10"
                                   else ["train", "test"])
    raw = files["test_batch" if name == "cifar10" else "test"]
    opcodes = {op.name for op, _, _ in pickletools.genops(raw)}
    assert "BINSTRING" in opcodes and not opcodes & {"BINBYTES", "SHORT_BINBYTES"} and b"_codecs" not in raw
    batch = pickle.loads(raw, encoding="bytes")
    assert set(batch) == {b"batch_label", key, b"data", b"filenames"} and batch[key] == [3, 2]
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (2, 3072)
    assert (batch[b"data"][0, :1024] == x[2, 0].ravel()).all() and (batch[b"data"][0, 2048:] == x[2, 2].ravel()).all()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("extracted", [False, True])
def test_cifar_reads_the_python_pickle_archives(tmp_path, name, extracted):
    x, y = write_cifar(tmp_path, name, extracted)
    dataset = data.load(name, tmp_path)
    n_train = 15 if name == "cifar10" else 3
    assert dataset.x_train.shape == (n_train, 3, 32, 32) and dataset.x_test.shape == (3, 3, 32, 32)
    assert torch.equal(dataset.x_train, torch.from_numpy(x[:-3])) and torch.equal(dataset.x_test, torch.from_numpy(x[-3:]))
    assert dataset.y_train.tolist() == y[:-3].tolist() and dataset.y_test.tolist() == y[-3:].tolist()
    assert dataset.num_classes == (10 if name == "cifar10" else 100)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch exploited",))


def test_cifar_refuses_pickles_that_build_anything_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / "cifar-10-batches-py" / member).write_bytes(cifar_writer.python2_pickle({b"data": Exploit()}))
    with pytest.raises(DataError, match="not a valid CIFAR batch.*(posix|os).system is not allowed"):
        data.load("cifar10", tmp_path)
    assert not (tmp_path / "exploited").exists()


def test_cifar_missing_or_incomplete_archive(tmp_path):
    with pytest.raises(DataError, match="hare-tortoise data download cifar10"):
        data.load("cifar10", tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="not a complete CIFAR archive"):
        data.load("cifar10", tmp_path)


def write_tiny_imagenet(folder, extracted=False):
    """A 2-class Tiny-ImageNet in the real layout: wnids.txt, train/<wnid>/images/*.JPEG, val annotations."""
    from PIL import Image

    files = {"tiny-imagenet-200/wnids.txt": b"n01\nn02\n"}
    colours = {"n01": (250, 0, 0), "n02": (0, 0, 250)}
    for wnid, colour in colours.items():
        for i in range(2):
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), colour).save(buffer, "JPEG", quality=95)
            files[f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{i}.JPEG"] = buffer.getvalue()
    lines = []
    for i, wnid in enumerate(["n02", "n01", "n02"]):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), colours[wnid]).save(buffer, "JPEG", quality=95)
        files[f"tiny-imagenet-200/val/images/val_{i}.JPEG"] = buffer.getvalue()
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    files["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(lines).encode()
    if extracted:
        for name, raw in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(raw)
    else:
        with zipfile.ZipFile(folder / "tiny-imagenet-200.zip", "w") as archive:
            for name, raw in files.items():
                archive.writestr(name, raw)


@pytest.mark.parametrize("extracted", [False, True])
def test_tiny_imagenet_reads_zip_or_folder_and_caches(tmp_path, extracted):
    write_tiny_imagenet(tmp_path, extracted)
    dataset = data.load("tiny_imagenet", tmp_path)
    assert dataset.x_train.shape == (4, 3, 64, 64) and dataset.num_classes == 2
    assert dataset.y_train.tolist() == [0, 0, 1, 1] and dataset.y_test.tolist() == [1, 0, 1]
    red = dataset.x_train[0].float().mean(dim=(1, 2))
    assert red[0] > 200 and red[2] < 50  # class n01 is red
    assert (tmp_path / "tiny-imagenet-200.pt").exists()
    again = data.load("tiny_imagenet", tmp_path)  # from the decoded cache
    assert torch.equal(again.x_test, dataset.x_test)


def test_mnist1d_is_generated_cached_and_deterministic(tmp_path):
    first = data.load("mnist1d", tmp_path, train_size=100, test_size=50)
    assert first.x_train.shape == (100, 40) and first.x_test.shape == (50, 40) and first.num_classes == 10
    assert (tmp_path / "mnist1d-100-50-seed42.pt").exists()
    assert torch.equal(data.load("mnist1d", tmp_path, train_size=100, test_size=50).x_train, first.x_train)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def test_download_verifies_the_checksum_and_keeps_nothing_unverified(tmp_path, monkeypatch):
    payload = b"an archive"
    monkeypatch.setattr(downloads.urllib.request, "urlopen", lambda url, timeout: FakeResponse(payload))
    good = hashlib.md5(payload).hexdigest()
    monkeypatch.setitem(downloads.ARCHIVES, "cifar10", ("http://example.invalid/c.tgz", "cifar-10-python.tar.gz", good))
    path = downloads.download("cifar10", tmp_path)
    assert path.read_bytes() == payload
    monkeypatch.setitem(downloads.ARCHIVES, "cifar100", ("http://example.invalid/c.tgz", "cifar-100-python.tar.gz", "0" * 32))
    with pytest.raises(DataError, match="not the published 0000"):
        downloads.download("cifar100", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]
    with pytest.raises(DataError, match="nothing to download for 'mnist1d'"):
        downloads.download("mnist1d", tmp_path)


def write_image_folder(root, classes=("cat", "dog", "eel"), train=3, test=2, size=(20, 12)):
    """A small image folder of real JPEG and PNG files: each class one solid colour plus noise, train/ and val/."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", test)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(60 + 80 * c, 5, (*size[::-1], 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_an_image_folder_is_read_by_class_folder_resized_and_cached(tmp_path, monkeypatch):
    from hare_tortoise import data

    root = write_image_folder(tmp_path / "images")
    dataset = data.load("imagefolder", root, image_size=8)
    assert dataset.x_train.shape == (9, 3, 8, 8) and dataset.x_train.dtype == torch.uint8
    assert dataset.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and dataset.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert dataset.num_classes == 3 and dataset.is_image
    # the classes' colours survive decoding and resizing: each class's mean pixel near 60 + 80 c
    means = [dataset.x_train[dataset.y_train == c].float().mean().item() for c in range(3)]
    assert all(abs(m - (60 + 80 * c)) < 6 for c, m in enumerate(means))
    assert dataset.mean[0] == pytest.approx(dataset.x_train[:, 0].float().div(255).mean().item(), abs=1e-5)
    assert (tmp_path / "images-8px.pt").exists()
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = data.load("imagefolder", root, image_size=8)  # from the cache, without decoding
    assert torch.equal(again.x_train, dataset.x_train) and torch.equal(again.y_test, dataset.y_test)


def test_an_image_folder_with_a_damaged_image_or_an_empty_class_is_refused_by_name(tmp_path):
    from hare_tortoise import data

    root = write_image_folder(tmp_path / "damaged")
    (root / "train" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    with pytest.raises(DataError, match=r"cannot decode .*train/dog/1\.png .*: replace or delete the file"):
        data.load("imagefolder", root, image_size=8)
    root = write_image_folder(tmp_path / "empty")
    (root / "train" / "fox").mkdir()
    with pytest.raises(DataError, match=r"train/fox holds no JPEG or PNG image: remove the empty class folder"):
        data.load("imagefolder", root)
    root = write_image_folder(tmp_path / "stray")
    (root / "val" / "owl").mkdir()
    (root / "val" / "dog" / "0.jpg").rename(root / "val" / "owl" / "0.jpg")
    with pytest.raises(DataError, match="has class folders that train/ lacks: owl"):
        data.load("imagefolder", root)
    with pytest.raises(DataError, match="no image folder with a train/ sub-folder"):
        data.load("imagefolder", tmp_path / "nowhere")


def test_an_image_folder_cache_is_made_again_when_a_class_folder_changes(tmp_path):
    import os

    from hare_tortoise import data

    root = write_image_folder(tmp_path / "images")
    assert len(data.load("imagefolder", root, image_size=8).y_train) == 9
    cache = tmp_path / "images-8px.pt"
    os.utime(cache, (1, 1))  # as if made long before the folder changed
    (root / "train" / "eel" / "2.jpg").unlink()
    assert len(data.load("imagefolder", root, image_size=8).y_train) == 8
