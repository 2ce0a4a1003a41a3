"""Readers for dataset files the user already has on disk.

Two formats are supported:

* **IDX** (MNIST, Fashion-MNIST): a 4-byte magic number (two zero bytes, a
  type code, the number of dimensions), one big-endian int32 per dimension,
  then the big-endian data.  Files may be gzipped.
* **CIFAR-10, binary version**: files of 3073-byte records, one label byte
  followed by 32x32 red, then green, then blue pixel bytes.

The library never downloads anything and never unpickles anything (a pickle
file can run arbitrary code when loaded), which is why only the *binary*
CIFAR-10 version is read.  Every problem with a file raises a
:class:`~neural_networks.datasets.errors.DatasetError` naming the file.

Where files are looked for
--------------------------
The functions take a ``data_dir``.  When it is None, the environment variable
``NEURAL_NETWORKS_DATA`` is used, and when that is unset too, ``./data``
(relative to the working directory).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DatasetError, DatasetNotFoundError

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "DATA_DIR_ENV_VAR",
    "FASHION_MNIST_CLASS_NAMES",
    "MNIST_CLASS_NAMES",
    "OfficialSplit",
    "load_cifar10",
    "load_mnist",
    "read_cifar10_batch",
    "read_idx",
    "resolve_data_dir",
]

#: Environment variable naming the default data folder.
DATA_DIR_ENV_VAR = "NEURAL_NETWORKS_DATA"

MNIST_CLASS_NAMES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes -> big-endian numpy dtypes, as in the format description.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class OfficialSplit(NamedTuple):
    """A file dataset as published: its official train/test split.

    Attributes
    ----------
    X_train, X_test : numpy.ndarray
        ``uint8`` images in NHWC layout.
    y_train, y_test : numpy.ndarray
        ``int64`` class ids, shape ``(N,)``.
    class_names : list of str
        Name of each class id.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder datasets are read from.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit folder.  When None, ``$NEURAL_NETWORKS_DATA`` is used, and
        when that is unset or empty, ``./data``.

    Returns
    -------
    pathlib.Path
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return Path("data")


# --------------------------------------------------------------------------
# Low-level file access
# --------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    """Read a whole file, turning OS errors into dataset errors that name it."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _gunzip_if_needed(raw: bytes, path: Path) -> bytes:
    """Decompress ``raw`` when it starts with the gzip magic bytes.

    The content decides, not the file name: a ``.gz`` name on a plain file or
    a gzipped file without the suffix both load.
    """
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (as used by MNIST), gzipped or not.

    Parameters
    ----------
    path : str or path-like
        The file.  Gzip compression is detected from the content.

    Returns
    -------
    numpy.ndarray
        The data in native byte order with the shape stored in the header;
        dtype ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
        ``float64`` according to the type code.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    DatasetError
        The file is not a valid IDX file: bad magic number, unknown type
        code, truncated header or data, or bytes after the data.
    """
    path = Path(path)
    content = _gunzip_if_needed(_read_bytes(path), path)
    return _parse_idx(content, path)


def _parse_idx(buf: bytes, path: Path) -> np.ndarray:
    """Validate an IDX byte string and convert it to an array."""
    if len(buf) < 4:
        raise DatasetError(
            f"{path}: truncated IDX header: {len(buf)} bytes, "
            "but the magic number alone takes 4 bytes"
        )
    if buf[0] != 0 or buf[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: the magic number must start with two zero "
            f"bytes, found {buf[:4].hex(' ')}"
        )
    type_code, ndim = buf[2], buf[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise DatasetError(f"{path}: the IDX header declares zero dimensions")

    header_size = 4 + 4 * ndim
    if len(buf) < header_size:
        raise DatasetError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_size} "
            f"header bytes, the file has {len(buf)}"
        )
    shape = struct.unpack_from(f">{ndim}i", buf, 4)
    if any(size < 0 for size in shape):
        raise DatasetError(f"{path}: negative dimension in the IDX header: {shape}")

    dtype = _IDX_DTYPES[type_code]
    count = math.prod(shape)  # Python ints: a hostile header cannot overflow
    expected = count * dtype.itemsize
    found = len(buf) - header_size
    if found < expected:
        raise DatasetError(
            f"{path}: truncated IDX data: shape {shape} of {dtype.itemsize}-byte "
            f"values needs {expected} bytes after the header, found {found}"
        )
    if found > expected:
        raise DatasetError(
            f"{path}: {found - expected} unexpected bytes after the IDX data "
            f"(shape {shape} needs {expected} bytes)"
        )

    native = dtype.newbyteorder("=")
    if count == 0:
        return np.empty(shape, dtype=native)
    values = np.frombuffer(buf, dtype=dtype, count=count, offset=header_size)
    # astype copies into native byte order and a writable array of our own.
    return values.astype(native).reshape(shape)


# --------------------------------------------------------------------------
# MNIST and Fashion-MNIST
# --------------------------------------------------------------------------

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_MNIST_VARIANTS = {
    "mnist": {
        "title": "MNIST",
        "class_names": MNIST_CLASS_NAMES,
        "torchvision_folder": "MNIST",
        "source": "the MNIST database page on Yann LeCun's website "
                  "(yann.lecun.com/exdb/mnist) or one of its mirrors",
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "class_names": FASHION_MNIST_CLASS_NAMES,
        "torchvision_folder": "FashionMNIST",
        "source": "the Fashion-MNIST repository of Zalando Research on GitHub "
                  "(github.com/zalandoresearch/fashion-mnist, folder data/fashion)",
    },
}


def load_mnist(data_dir: str | os.PathLike | None = None, variant: str = "mnist") -> OfficialSplit:
    """Load MNIST or Fashion-MNIST from the four official IDX files.

    The files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or
    with a ``.gz`` suffix) are looked for, in this order, in ``data_dir``,
    ``data_dir/<variant>`` (``mnist`` or ``fashion_mnist``) and torchvision's
    layout ``data_dir/MNIST/raw`` or ``data_dir/FashionMNIST/raw``.  The first
    folder holding all four files is used.

    Parameters
    ----------
    data_dir : str or path-like, optional
        See :func:`resolve_data_dir`.
    variant : {"mnist", "fashion_mnist"}
        Which dataset the files are; only the class names depend on it.

    Returns
    -------
    OfficialSplit
        ``uint8`` images of shape ``(N, 28, 28, 1)`` and ``int64`` labels,
        60000 training and 10000 test samples for the real datasets.

    Raises
    ------
    DatasetNotFoundError
        No searched folder holds all four files.
    DatasetError
        A file is corrupt, images are not 28x28 bytes, labels are outside
        0..9 or a label file does not match its image file in length.
    """
    if variant not in _MNIST_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(_MNIST_VARIANTS)}, got {variant!r}")
    info = _MNIST_VARIANTS[variant]
    root = resolve_data_dir(data_dir)
    folders = [root, root / variant, root / info["torchvision_folder"] / "raw"]
    paths = _find_mnist_files(folders, info)

    X_train, y_train = _read_mnist_pair(paths["train_images"], paths["train_labels"])
    X_test, y_test = _read_mnist_pair(paths["test_images"], paths["test_labels"])
    return OfficialSplit(X_train, y_train, X_test, y_test, list(info["class_names"]))


def _existing_variant(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` or ``folder/name.gz``, whichever exists (plain first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_mnist_files(folders: list[Path], info: dict) -> dict[str, Path]:
    """Return the paths of the four files from the first folder holding them all."""
    partial = []
    for folder in folders:
        found = {key: _existing_variant(folder, name) for key, name in _MNIST_FILES.items()}
        if all(found.values()):
            return found
        present = [_MNIST_FILES[key] for key, path in found.items() if path is not None]
        if present:
            missing = [_MNIST_FILES[key] for key, path in found.items() if path is None]
            partial.append(f"{folder.absolute()} lacks {', '.join(missing)}")

    searched = ", ".join(str(folder.absolute()) for folder in folders)
    details = f" ({'; '.join(partial)})" if partial else ""
    raise DatasetNotFoundError(
        f"{info['title']} files not found. Expected {', '.join(_MNIST_FILES.values())} "
        f"(each optionally gzipped with a .gz suffix) together in one of these folders: "
        f"{searched}{details}. This library never downloads data: get the four files "
        f"from {info['source']}, put them in one of those folders, and pass "
        f"data_dir=... or set ${DATA_DIR_ENV_VAR} if the folder is not ./data."
    )


def _read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one images file and its labels file."""
    images = _check_mnist_images(read_idx(images_path), images_path)
    labels = _check_mnist_labels(read_idx(labels_path), labels_path)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels"
        )
    return images, labels


def _check_mnist_images(images: np.ndarray, path: Path) -> np.ndarray:
    """Check for ``(N, 28, 28)`` unsigned bytes and add the channel axis."""
    if images.dtype != np.uint8:
        raise DatasetError(f"{path}: expected unsigned-byte images (type 0x08), found {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{path}: expected images of shape (N, 28, 28), found {images.shape}")
    return images[..., np.newaxis]


def _check_mnist_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Check for a 1-D vector of unsigned bytes in 0..9; return it as int64."""
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{path}: expected a 1-D vector of unsigned-byte labels, "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    _check_label_range(labels, path, n_classes=10)
    return labels.astype(np.int64)


def _check_label_range(labels: np.ndarray, path: Path, n_classes: int) -> None:
    """Raise if a label is not a class id below ``n_classes``."""
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DatasetError(
            f"{path}: {bad.size} labels outside 0..{n_classes - 1}, the first is "
            f"{int(labels[bad[0]])} at position {int(bad[0])}"
        )


# --------------------------------------------------------------------------
# CIFAR-10 (binary version)
# --------------------------------------------------------------------------

_CIFAR_FOLDER = "cifar-10-batches-bin"
_CIFAR_PICKLE_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
_CIFAR_TEST_FILE = "test_batch.bin"
_CIFAR_META_FILE = "batches.meta.txt"
_CIFAR_IMAGE_SHAPE = (3, 32, 32)  # channel-major as stored
_CIFAR_RECORD_BYTES = 1 + math.prod(_CIFAR_IMAGE_SHAPE)
_CIFAR_SOURCE = (
    "download the 'CIFAR-10 binary version (suitable for C programs)', "
    "cifar-10-binary.tar.gz, from Alex Krizhevsky's CIFAR page "
    "(www.cs.toronto.edu/~kriz/cifar.html) and extract it"
)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> OfficialSplit:
    """Load the binary version of CIFAR-10.

    The six batch files ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
    ``test_batch.bin`` are looked for in ``data_dir/cifar-10-batches-bin``
    and then in ``data_dir`` itself (when it *is* that folder).  Class names
    come from ``batches.meta.txt`` when present.

    Parameters
    ----------
    data_dir : str or path-like, optional
        See :func:`resolve_data_dir`.

    Returns
    -------
    OfficialSplit
        ``uint8`` images of shape ``(N, 32, 32, 3)`` (NHWC) and ``int64``
        labels; 50000 training and 10000 test samples for the real dataset.

    Raises
    ------
    DatasetNotFoundError
        The files are missing, or only the Python (pickle) version is there.
    DatasetError
        A file is empty, its size is not a multiple of 3073 bytes, a label
        exceeds 9, or ``batches.meta.txt`` does not list ten names.
    """
    root = resolve_data_dir(data_dir)
    folder = _find_cifar_folder(root)
    train = [read_cifar10_batch(folder / name) for name in _CIFAR_TRAIN_FILES]
    X_test, y_test = read_cifar10_batch(folder / _CIFAR_TEST_FILE)
    X_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return OfficialSplit(X_train, y_train, X_test, y_test, _cifar_class_names(folder))


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file.

    Parameters
    ----------
    path : str or path-like
        A file of 3073-byte records: one label byte, then 1024 red, 1024
        green and 1024 blue pixel bytes, each plane row-major 32x32.

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``(N, 32, 32, 3)`` (NHWC, C-contiguous).
    labels : numpy.ndarray
        ``int64``, shape ``(N,)``.

    Raises
    ------
    DatasetError
        Empty file, size not a multiple of 3073, or a label above 9.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if not raw:
        raise DatasetError(f"{path}: empty file, expected CIFAR-10 records")
    if len(raw) % _CIFAR_RECORD_BYTES:
        raise DatasetError(
            f"{path}: size {len(raw)} bytes is not a multiple of the "
            f"{_CIFAR_RECORD_BYTES}-byte CIFAR-10 record (1 label byte + 3072 pixel "
            "bytes); the file is truncated or not a CIFAR-10 binary batch"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    _check_label_range(labels, path, n_classes=10)
    planes = records[:, 1:].reshape(-1, *_CIFAR_IMAGE_SHAPE)
    # Channel-major on disk, NHWC in the library; copy so the result is
    # contiguous and independent of the immutable bytes buffer.
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
    return images, labels


def _find_cifar_folder(root: Path) -> Path:
    """Return the folder holding all binary batches, or explain what is wrong."""
    folders = [root / _CIFAR_FOLDER, root]
    required = [*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE]
    partial = []
    for folder in folders:
        missing = [name for name in required if not (folder / name).is_file()]
        if not missing:
            return folder
        if len(missing) < len(required):
            partial.append(f"{folder.absolute()} lacks {', '.join(missing)}")

    pickle_folder = _find_cifar_pickle_folder(root)
    if pickle_folder is not None:
        raise DatasetNotFoundError(
            f"{pickle_folder.absolute()} holds the Python (pickle) version of CIFAR-10 "
            "(data_batch_1 without .bin); only the binary version is supported, because "
            "loading a pickle file can run arbitrary code and this library never "
            f"unpickles files. Instead, {_CIFAR_SOURCE} so that {(root / _CIFAR_FOLDER).absolute()} "
            "exists."
        )
    searched = ", ".join(str(folder.absolute()) for folder in folders)
    details = f" ({'; '.join(partial)})" if partial else ""
    raise DatasetNotFoundError(
        f"CIFAR-10 binary files not found. Expected {', '.join(required)} in one of "
        f"these folders: {searched}{details}. This library never downloads data: "
        f"{_CIFAR_SOURCE} into {root.absolute()}, or pass data_dir=... or set "
        f"${DATA_DIR_ENV_VAR}."
    )


def _find_cifar_pickle_folder(root: Path) -> Path | None:
    """Return a folder that holds the pickle version of CIFAR-10, if any."""
    for folder in (root / _CIFAR_PICKLE_FOLDER, root / _CIFAR_FOLDER, root):
        if (folder / "data_batch_1").is_file():
            return folder
    return None


def _cifar_class_names(folder: Path) -> list[str]:
    """Class names from ``batches.meta.txt`` (one a line), or the standard ten."""
    path = folder / _CIFAR_META_FILE
    if not path.is_file():
        return list(CIFAR10_CLASS_NAMES)
    try:
        text = _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file ({exc})") from exc
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 10:
        raise DatasetError(f"{path}: expected 10 class names, one a line, found {len(names)}")
    return names
