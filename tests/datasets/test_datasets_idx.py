"""IDX reader and MNIST / Fashion-MNIST loader, on small files written in the real format."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural_networks.datasets import (
    FASHION_MNIST_CLASS_NAMES,
    DatasetError,
    DatasetNotFoundError,
    load_mnist,
    read_idx,
)

fixture_ok = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, formats, dtype, gz):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True, dtype=dtype)
    else:
        array = rng.standard_normal((3, 4, 5)).astype(dtype)
    path = formats.write_idx(tmp_path / ("x.idx.gz" if gz else "x.idx"), array, gz=gz)

    loaded = read_idx(path)

    assert loaded.dtype == np.dtype(dtype)  # native byte order, same kind
    assert loaded.dtype.isnative
    assert loaded.shape == (3, 4, 5)
    np.testing.assert_array_equal(loaded, array)


def test_big_endian_bytes_are_decoded(tmp_path):
    # One int16 value 0x0102 = 258 written by hand, big-endian.
    path = tmp_path / "one"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02]))
    np.testing.assert_array_equal(read_idx(path), np.array([258], dtype=np.int16))


def test_gzip_detected_by_content_not_name(tmp_path, formats):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    gz_without_suffix = formats.write_idx(tmp_path / "plain-name", array, gz=True)
    plain_with_suffix = formats.write_idx(tmp_path / "fake.gz", array, gz=False)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(plain_with_suffix), array)


def test_empty_dimension_is_valid(tmp_path, formats):
    path = formats.write_idx(tmp_path / "empty", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(path).shape == (0, 28, 28)


VALID = bytes([0, 0, 0x08, 2]) + struct.pack(">2i", 2, 3) + bytes(range(6))

BROKEN_FILES = {
    "empty": (b"", "truncated IDX header"),
    "short magic": (b"\x00\x00\x08", "truncated IDX header"),
    "wrong magic": (b"\x01" + VALID[1:], "magic number"),
    "wrong magic 2nd byte": (VALID[:1] + b"\x07" + VALID[2:], "magic number"),
    "unknown type": (VALID[:2] + b"\x0a" + VALID[3:], "unknown IDX type code 0x0A"),
    "zero dims": (bytes([0, 0, 8, 0]), "zero dimensions"),
    "truncated dims": (VALID[:9], "truncated IDX header"),
    "truncated data": (VALID[:-1], "truncated IDX data"),
    "trailing bytes": (VALID + b"\x00\x00", "2 unexpected bytes"),
    "negative dim": (bytes([0, 0, 8, 1]) + struct.pack(">i", -1), "negative dimension"),
    "corrupt gzip": (gzip.compress(VALID)[:-6], "corrupt gzip"),
    "gzip of garbage": (gzip.compress(b"\x07" + VALID), "magic number"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_idx_raises_dataset_error_naming_file(tmp_path, case):
    content, reason = BROKEN_FILES[case]
    path = tmp_path / "broken-file-idx"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=reason) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_valid_reference_file_loads(tmp_path):
    # Guards the table above: the unmodified bytes are a valid file.
    path = tmp_path / "ok"
    path.write_bytes(VALID)
    np.testing.assert_array_equal(read_idx(path), np.arange(6, dtype=np.uint8).reshape(2, 3))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        read_idx(tmp_path / "nope")
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(tmp_path)  # a directory


@fixture_ok
@given(cut=st.integers(min_value=0), gz=st.booleans())
def test_any_truncation_raises_dataset_error(tmp_path, formats, cut, gz):
    content = formats.idx_bytes(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    if gz:
        content = gzip.compress(content)
    path = tmp_path / "cut"
    path.write_bytes(content[: cut % len(content)])
    with pytest.raises(DatasetError):
        read_idx(path)


@fixture_ok
@given(position=st.integers(0, 15), value=st.integers(0, 255), dtype_code=st.sampled_from([8, 9, 11, 12, 13, 14]))
def test_mutated_header_loads_or_raises_dataset_error(tmp_path, formats, position, value, dtype_code):
    dtype = {8: np.uint8, 9: np.int8, 11: np.int16, 12: np.int32, 13: np.float32, 14: np.float64}[dtype_code]
    content = bytearray(formats.idx_bytes(np.ones((2, 3, 4), dtype=dtype)))
    content[position] = value  # header is 4 + 3 * 4 = 16 bytes
    path = tmp_path / "mutated"
    path.write_bytes(bytes(content))
    try:
        array = read_idx(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(array, np.ndarray)  # some mutations keep the file valid


@fixture_ok
@given(content=st.binary(max_size=64))
def test_arbitrary_bytes_load_or_raise_dataset_error(tmp_path, content):
    path = tmp_path / "random"
    path.write_bytes(content)
    try:
        read_idx(path)
    except DatasetError:
        pass


# ---------------------------------------------------------------- load_mnist

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("subfolder", ["", "mnist", "MNIST/raw"])
def test_load_mnist_round_trip(tmp_path, formats, gz, subfolder):
    written = formats.make_mnist_folder(tmp_path / subfolder, n_train=30, n_test=12, gz=gz)

    data = load_mnist(tmp_path)

    assert data.X_train.shape == (30, 28, 28, 1) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (12, 28, 28, 1)
    assert data.y_train.dtype == np.int64 and data.y_train.shape == (30,)
    np.testing.assert_array_equal(data.X_train[..., 0], written["train_images"])
    np.testing.assert_array_equal(data.y_train, written["train_labels"])
    np.testing.assert_array_equal(data.X_test[..., 0], written["test_images"])
    np.testing.assert_array_equal(data.y_test, written["test_labels"])
    assert data.class_names == [str(d) for d in range(10)]


def test_load_fashion_mnist_uses_its_folder_and_names(tmp_path, formats):
    formats.make_mnist_folder(tmp_path / "fashion_mnist")
    data = load_mnist(tmp_path, variant="fashion_mnist")
    assert data.class_names == FASHION_MNIST_CLASS_NAMES
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    # The digits folder is not searched for Fashion-MNIST and vice versa.
    with pytest.raises(DatasetNotFoundError):
        load_mnist(tmp_path, variant="mnist")


def test_data_dir_defaults_to_env_var_then_cwd(tmp_path, formats, monkeypatch):
    formats.make_mnist_folder(tmp_path / "env")
    monkeypatch.setenv("NEURAL_NETWORKS_DATA", str(tmp_path / "env"))
    assert load_mnist().X_train.shape[0] == 40
    monkeypatch.delenv("NEURAL_NETWORKS_DATA")
    formats.make_mnist_folder(tmp_path / "cwd" / "data" / "mnist", n_train=20)
    monkeypatch.chdir(tmp_path / "cwd")
    assert load_mnist().X_train.shape[0] == 20


def test_missing_mnist_names_files_folders_and_source(tmp_path, no_data_env):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "absent")
    message = str(info.value)
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
        assert name in message
    assert str(tmp_path / "absent") in message
    assert str(tmp_path / "absent" / "mnist") in message
    assert "yann.lecun.com" in message and "never downloads" in message


def test_partial_mnist_folder_lists_missing_file(tmp_path, formats):
    formats.make_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="lacks t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="variant"):
        load_mnist(tmp_path, variant="kmnist")


def _overwrite(tmp_path, formats, key, array):
    path = tmp_path / formats.MNIST_NAMES[key]
    formats.write_idx(path, array)
    return path


def test_count_mismatch(tmp_path, formats):
    formats.make_mnist_folder(tmp_path, n_train=30)
    path = _overwrite(tmp_path, formats, "train_labels", np.zeros(29, np.uint8))
    with pytest.raises(DatasetError, match="30 images.*29 labels") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_label_out_of_range(tmp_path, formats):
    formats.make_mnist_folder(tmp_path, n_train=30)
    labels = np.zeros(30, np.uint8)
    labels[7] = 10
    path = _overwrite(tmp_path, formats, "train_labels", labels)
    with pytest.raises(DatasetError, match=r"outside 0\.\.9.*10 at position 7") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "key, array, reason",
    [
        ("test_images", np.zeros((20, 27, 28), np.uint8), r"shape \(N, 28, 28\)"),
        ("test_images", np.zeros((20, 784), np.uint8), r"shape \(N, 28, 28\)"),
        ("test_images", np.zeros((20, 28, 28), np.int16), "unsigned-byte images"),
        ("test_labels", np.zeros((20, 1), np.uint8), "1-D vector"),
        ("test_labels", np.zeros(20, np.int32), "1-D vector"),
    ],
)
def test_wrong_mnist_contents(tmp_path, formats, key, array, reason):
    formats.make_mnist_folder(tmp_path, n_test=20)
    path = _overwrite(tmp_path, formats, key, array)
    with pytest.raises(DatasetError, match=reason) as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)
