"""Writers for small dataset files in the real on-disk formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

IDX_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise an array as IDX: zero bytes, type code, ndim, big-endian dims and data."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def cifar_bytes(images_nhwc: np.ndarray, labels: np.ndarray) -> bytes:
    """Serialise NHWC uint8 images as CIFAR-10 binary records (label, R plane, G plane, B plane)."""
    planes = images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1)
    return records.astype(np.uint8).tobytes()


def random_images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def balanced_labels(rng, n, k=10):
    return rng.permutation(np.arange(n) % k).astype(np.uint8)


def make_mnist_folder(folder: Path, n_train=40, n_test=20, gz=False, seed=0) -> dict:
    """Write the four MNIST files; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": random_images(rng, n_train, (28, 28)),
        "train_labels": balanced_labels(rng, n_train),
        "test_images": random_images(rng, n_test, (28, 28)),
        "test_labels": balanced_labels(rng, n_test),
    }
    for key, array in arrays.items():
        name = MNIST_NAMES[key] + (".gz" if gz else "")
        write_idx(folder / name, array, gz=gz)
    return arrays


def make_cifar_folder(folder: Path, per_batch=10, n_test=10, seed=0) -> dict:
    """Write the six CIFAR-10 binary batches; return the NHWC arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in [*CIFAR_TRAIN, "test_batch.bin"]:
        n = n_test if name == "test_batch.bin" else per_batch
        images = random_images(rng, n, (32, 32, 3))
        labels = balanced_labels(rng, n)
        (folder / name).write_bytes(cifar_bytes(images, labels))
        arrays[name] = (images, labels)
    return arrays


@pytest.fixture
def no_data_env(monkeypatch):
    """Make sure $NEURAL_NETWORKS_DATA does not leak into a test."""
    monkeypatch.delenv("NEURAL_NETWORKS_DATA", raising=False)


@pytest.fixture(scope="session")
def formats():
    """The writers above, as a fixture so tests need no import of this conftest."""
    from types import SimpleNamespace

    return SimpleNamespace(
        idx_bytes=idx_bytes,
        write_idx=write_idx,
        cifar_bytes=cifar_bytes,
        random_images=random_images,
        balanced_labels=balanced_labels,
        make_mnist_folder=make_mnist_folder,
        make_cifar_folder=make_cifar_folder,
        MNIST_NAMES=MNIST_NAMES,
        CIFAR_TRAIN=CIFAR_TRAIN,
    )
