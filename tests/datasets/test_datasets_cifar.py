"""CIFAR-10 binary reader, on small batch files written in the real record format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural_networks.datasets import (
    CIFAR10_CLASS_NAMES,
    DatasetError,
    DatasetNotFoundError,
    load_cifar10,
    read_cifar10_batch,
)


def test_batch_round_trip_and_channel_layout(tmp_path, formats):
    rng = np.random.default_rng(3)
    images = formats.random_images(rng, 4, (32, 32, 3))
    labels = np.array([0, 9, 3, 3], np.uint8)
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(formats.cifar_bytes(images, labels))

    loaded, loaded_labels = read_cifar10_batch(path)

    assert loaded.shape == (4, 32, 32, 3) and loaded.dtype == np.uint8
    assert loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, images)
    assert loaded_labels.dtype == np.int64
    np.testing.assert_array_equal(loaded_labels, labels)


def test_record_layout_by_hand(tmp_path):
    # One record: label 5, red plane all 1, green all 2, blue all 3; pixel (0, 1) of red is 7.
    red = np.ones(1024, np.uint8)
    red[1] = 7
    record = bytes([5]) + red.tobytes() + bytes([2]) * 1024 + bytes([3]) * 1024
    path = tmp_path / "one.bin"
    path.write_bytes(record)
    images, labels = read_cifar10_batch(path)
    assert labels.tolist() == [5]
    np.testing.assert_array_equal(images[0, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(images[0, 0, 1], [7, 2, 3])


@pytest.mark.parametrize("inside", [True, False])
def test_load_cifar10_round_trip(tmp_path, formats, inside):
    folder = tmp_path / "cifar-10-batches-bin" if inside else tmp_path
    written = formats.make_cifar_folder(folder, per_batch=6, n_test=5)

    data = load_cifar10(tmp_path)

    assert data.X_train.shape == (30, 32, 32, 3) and data.X_train.dtype == np.uint8
    assert data.X_test.shape == (5, 32, 32, 3)
    expected_train = np.concatenate([written[name][0] for name in formats.CIFAR_TRAIN])
    expected_labels = np.concatenate([written[name][1] for name in formats.CIFAR_TRAIN])
    np.testing.assert_array_equal(data.X_train, expected_train)
    np.testing.assert_array_equal(data.y_train, expected_labels)
    np.testing.assert_array_equal(data.X_test, written["test_batch.bin"][0])
    np.testing.assert_array_equal(data.y_test, written["test_batch.bin"][1])
    assert data.class_names == CIFAR10_CLASS_NAMES


def test_class_names_from_meta_file(tmp_path, formats):
    folder = tmp_path / "cifar-10-batches-bin"
    formats.make_cifar_folder(folder)
    names = [f"class {i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert load_cifar10(tmp_path).class_names == names

    (folder / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match="expected 10 class names.*found 2"):
        load_cifar10(tmp_path)


def test_missing_folder_explains_where_to_get_it(tmp_path, no_data_env):
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path / "absent")
    message = str(info.value)
    assert "data_batch_1.bin" in message and "test_batch.bin" in message
    assert str(tmp_path / "absent" / "cifar-10-batches-bin") in message
    assert "binary version" in message and "never downloads" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_one_batch(tmp_path, formats):
    folder = tmp_path / "cifar-10-batches-bin"
    formats.make_cifar_folder(folder)
    (folder / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_4.bin"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "."])
def test_pickle_version_is_refused_with_reason(tmp_path, layout):
    folder = tmp_path / layout
    folder.mkdir(exist_ok=True)
    for name in ["data_batch_1", "data_batch_2", "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"\x80\x04 not really a pickle")
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "pickle" in message and "only the binary version" in message
    assert "never unpickles" in message
    assert str(folder.absolute()) in message


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (bytes(3073 * 2 - 1), "not a multiple of the 3073-byte"),
        (bytes(3074), "not a multiple of the 3073-byte"),  # e.g. CIFAR-100 records
        (bytes([3]) + bytes(3072) + bytes([10]) + bytes(3072), r"outside 0\.\.9.*10 at position 1"),
    ],
)
def test_broken_batch_files(tmp_path, formats, content, reason):
    folder = tmp_path / "cifar-10-batches-bin"
    formats.make_cifar_folder(folder)
    path = folder / "data_batch_3.bin"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=reason) as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=3 * 3073 - 1).filter(lambda n: n % 3073))
def test_any_truncation_raises_dataset_error(tmp_path, formats, cut):
    rng = np.random.default_rng(0)
    content = formats.cifar_bytes(formats.random_images(rng, 3, (32, 32, 3)), np.array([1, 2, 3]))
    path = tmp_path / "cut.bin"
    path.write_bytes(content[:cut])
    with pytest.raises(DatasetError, match="cut.bin"):
        read_cifar10_batch(path)
