"""load_dataset: scikit-learn bundled sets and the file sets (on synthetic files)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from neural_networks.datasets import (
    DATASET_NAMES,
    DatasetError,
    MissingDependencyError,
    Standardizer,
    load_dataset,
)

sklearn_datasets = pytest.importorskip("sklearn.datasets")

EMBEDDED = {
    # name: (n_samples, input_shape, n_classes)
    "digits": (1797, (8, 8, 1), 10),
    "iris": (150, (4,), 3),
    "wine": (178, (13,), 3),
    "breast_cancer": (569, (30,), 2),
}


def _raw(name):
    loader = getattr(sklearn_datasets, f"load_{name}")()
    X = loader.images[..., None] if name == "digits" else loader.data
    return X.astype(np.float64), loader.target, [str(n) for n in loader.target_names]


def _split_pairs(s):
    return [(s.X_train, s.y_train), (s.X_val, s.y_val), (s.X_test, s.y_test)]


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_shapes_types_and_names(name):
    n, shape, k = EMBEDDED[name]
    s = load_dataset(name)
    assert s.name == name and s.n_classes == k and s.input_shape == shape
    assert s.class_names == _raw(name)[2]
    assert len(s.X_train) + len(s.X_val) + len(s.X_test) == n
    for X, y in _split_pairs(s):
        assert X.dtype == np.float32 and X.shape[1:] == shape
        assert y.dtype == np.int64 and y.ndim == 1 and len(y) == len(X)
        assert set(np.unique(y)) <= set(range(k))
    assert abs(len(s.X_val) - 0.15 * n) < 1 and abs(len(s.X_test) - 0.15 * n) < 1


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_splits_are_stratified(name):
    s = load_dataset(name, validation_size=0.2, test_size=0.1, seed=3)
    _, y, _ = _raw(name)
    class_sizes = np.bincount(y)
    for (_, y_part), fraction in zip(_split_pairs(s), [0.7, 0.2, 0.1]):
        counts = np.bincount(y_part, minlength=len(class_sizes))
        assert np.all(np.abs(counts - fraction * class_sizes) <= 1)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_splits_partition_the_data(name):
    # Unstandardised rows (with their label) of the three splits are exactly the dataset's rows.
    X, y, _ = _raw(name)
    s = load_dataset(name, standardize=False, seed=1)
    assert s.standardizer is None

    def rows(features, labels):
        table = np.column_stack([features.reshape(len(features), -1).astype(np.float64), labels])
        return table[np.lexsort(table.T[::-1])]

    together = [np.concatenate(parts) for parts in zip(*_split_pairs(s))]
    np.testing.assert_array_equal(rows(*together), rows(X.astype(np.float32), y))


def test_split_is_deterministic_per_seed_and_differs_across_seeds():
    a, b = load_dataset("wine", seed=7), load_dataset("wine", seed=7)
    c = load_dataset("wine", seed=8)
    for (Xa, ya), (Xb, yb) in zip(_split_pairs(a), _split_pairs(b)):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.X_test, c.X_test)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_standardisation_fitted_on_train_only(name):
    s = load_dataset(name, seed=2)
    raw = load_dataset(name, seed=2, standardize=False)
    X = s.X_train.reshape(len(s.X_train), -1).astype(np.float64)
    varying = raw.X_train.reshape(len(raw.X_train), -1).std(axis=0) > 0
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(axis=0)[varying], 1, rtol=1e-4)
    for X_part in (s.X_train, s.X_val, s.X_test):
        assert np.all(np.isfinite(X_part))
    # Validation and test use the training statistics, and the carried
    # standardiser reproduces the preprocessing from raw data.
    # (raw.X_* went through float32, hence the tolerance.)
    np.testing.assert_allclose(s.standardizer.transform(raw.X_test), s.X_test, atol=1e-5)
    np.testing.assert_allclose(s.standardizer.transform(raw.X_val), s.X_val, atol=1e-5)
    assert not np.allclose(s.X_val.reshape(len(s.X_val), -1).mean(axis=0), 0, atol=1e-6)


def test_digits_constant_border_pixels_stay_finite():
    s = load_dataset("digits")
    constant = s.standardizer.std.reshape(-1) == 1.0
    assert constant.any()  # digits has always-zero pixels
    assert np.all(s.X_train.reshape(len(s.X_train), -1)[:, constant] == 0)


def test_flatten_digits():
    s = load_dataset("digits", flatten=True)
    assert s.input_shape == (64,) and s.X_val.shape[1:] == (64,)
    assert s.standardizer.mean.shape == (64,)
    images = load_dataset("digits")
    np.testing.assert_array_equal(s.X_train, images.X_train.reshape(len(images.X_train), -1))


def test_standardizer_state_survives_a_round_trip():
    s = load_dataset("iris")
    restored = Standardizer.from_state(s.standardizer.get_state())
    raw = load_dataset("iris", standardize=False)
    np.testing.assert_array_equal(restored.transform(raw.X_test), s.standardizer.transform(raw.X_test))
    np.testing.assert_allclose(restored.transform(raw.X_test), s.X_test, atol=1e-5)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in DATASET_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("sizes", [(0.5, 0.5), (-0.1, 0.1), (0.2, 1.0)])
def test_invalid_sizes(sizes):
    with pytest.raises(ValueError, match="size"):
        load_dataset("iris", validation_size=sizes[0], test_size=sizes[1])


def test_zero_sized_splits_are_empty_arrays():
    s = load_dataset("iris", validation_size=0.0, test_size=0.0)
    assert s.X_train.shape == (150, 4) and s.X_val.shape == (0, 4) and s.y_test.shape == (0,)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_missing_sklearn_gives_one_clear_error(monkeypatch, name):
    for module in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError) as info:
        load_dataset(name)
    assert 'pip install "neural-networks[datasets]"' in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, DatasetError)


# ---------------------------------------------------------------- file sets


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_through_load_dataset(tmp_path, formats, name):
    written = formats.make_mnist_folder(tmp_path / name, n_train=60, n_test=20)
    s = load_dataset(name, data_dir=tmp_path, validation_size=0.2, test_size=0.5, seed=4)

    assert s.input_shape == (28, 28, 1) and s.n_classes == 10
    assert len(s.X_train) == 48 and len(s.X_val) == 12  # test_size is ignored
    assert np.all(np.abs(np.bincount(s.y_val, minlength=10) - 0.2 * 6) <= 1)  # 6 per class
    np.testing.assert_array_equal(s.y_test, written["test_labels"])  # official test set, in order
    raw_test = written["test_images"][..., None]
    np.testing.assert_allclose(s.standardizer.transform(raw_test), s.X_test, rtol=1e-6)
    # Per-channel statistics of train pixels scaled to [0, 1].
    assert s.standardizer.mean.shape == (1,) and s.standardizer.scale == pytest.approx(1 / 255)
    assert abs(float(s.X_train.mean())) < 1e-5 and float(s.X_train.std()) == pytest.approx(1, rel=1e-4)
    # Every official training sample is in exactly one of train or validation.
    together = np.concatenate([s.X_train, s.X_val]).reshape(60, -1)
    raw_train = s.standardizer.transform(written["train_images"][..., None]).reshape(60, -1)
    order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(order(together), order(raw_train))


def test_cifar10_through_load_dataset(tmp_path, formats):
    written = formats.make_cifar_folder(tmp_path / "cifar-10-batches-bin", per_batch=10, n_test=10)
    s = load_dataset("cifar10", data_dir=tmp_path, validation_size=0.2)

    assert s.input_shape == (32, 32, 3) and s.class_names[0] == "airplane"
    assert len(s.X_train) == 40 and len(s.X_val) == 10 and len(s.X_test) == 10
    np.testing.assert_allclose(s.X_train.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(s.X_train.std(axis=(0, 1, 2)), 1, rtol=1e-4)
    raw_test = written["test_batch.bin"][0]
    np.testing.assert_allclose(s.standardizer.transform(raw_test), s.X_test, rtol=1e-6)


def test_flattened_file_set_carries_a_flat_standardizer(tmp_path, formats):
    written = formats.make_cifar_folder(tmp_path, per_batch=4, n_test=6)
    s = load_dataset("cifar10", data_dir=tmp_path, flatten=True)
    assert s.input_shape == (3072,)
    raw_test = written["test_batch.bin"][0].reshape(6, -1)
    np.testing.assert_allclose(s.standardizer.transform(raw_test), s.X_test, rtol=1e-6)


def test_file_set_without_standardisation_is_scaled_to_unit_range(tmp_path, formats):
    written = formats.make_mnist_folder(tmp_path)
    s = load_dataset("mnist", data_dir=tmp_path, standardize=False)
    assert s.standardizer is None and s.X_test.dtype == np.float32
    np.testing.assert_allclose(s.X_test[..., 0], written["test_images"] / 255, rtol=1e-6)


def test_missing_file_set_raises_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_dataset("fashion_mnist", data_dir=tmp_path)


# ---------------------------------------------------------------- the preprocessing record


def _through_json(standardizer):
    import json

    return Standardizer.from_state(json.loads(json.dumps(standardizer.get_state())))


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("scale_pixels", [True, False])
@pytest.mark.parametrize("flatten", [False, True])
def test_file_set_preprocessing_record_maps_stored_pixels_to_the_arrays(
        tmp_path, formats, standardize, scale_pixels, flatten):
    written = formats.make_mnist_folder(tmp_path)
    s = load_dataset("mnist", data_dir=tmp_path, standardize=standardize,
                     scale_pixels=scale_pixels, flatten=flatten)
    stored = written["test_images"][..., None]
    if flatten:
        stored = stored.reshape(len(stored), -1)
    record = _through_json(s.preprocessing)
    np.testing.assert_allclose(record.transform(stored), s.X_test, rtol=1e-6, atol=1e-6)
    assert (s.standardizer is not None) == standardize
    if not standardize:
        expected = written["test_images"] / 255 if scale_pixels else written["test_images"]
        np.testing.assert_allclose(s.X_test.reshape(expected.shape), expected, rtol=1e-7)
        assert s.preprocessing.scale == pytest.approx(1 / 255 if scale_pixels else 1.0)


def test_stored_pixels_come_back_exactly_without_scaling(tmp_path, formats):
    written = formats.make_mnist_folder(tmp_path)
    s = load_dataset("mnist", data_dir=tmp_path, standardize=False, scale_pixels=False)
    assert s.X_test.dtype == np.float32
    np.testing.assert_array_equal(s.X_test[..., 0], written["test_images"])
    # the scale of a standardiser follows scale_pixels; the standardised data do not
    scaled = load_dataset("mnist", data_dir=tmp_path)
    unscaled = load_dataset("mnist", data_dir=tmp_path, scale_pixels=False)
    assert scaled.standardizer.scale == pytest.approx(1 / 255) and unscaled.standardizer.scale == 1
    np.testing.assert_allclose(unscaled.X_test, scaled.X_test, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("standardize", [True, False])
def test_embedded_preprocessing_record_maps_raw_features_to_the_arrays(standardize):
    s = load_dataset("wine", seed=5, standardize=standardize)
    raw = load_dataset("wine", seed=5, standardize=False, scale_pixels=False)
    record = _through_json(s.preprocessing)
    np.testing.assert_allclose(record.transform(raw.X_test), s.X_test, rtol=1e-5, atol=1e-5)
    if not standardize:
        assert s.preprocessing.scale == 1 and float(s.preprocessing.mean) == 0


@pytest.mark.parametrize("argument", ["standardize", "scale_pixels"])
def test_load_dataset_flags_must_be_bools(argument):
    with pytest.raises(ValueError, match=argument):
        load_dataset("iris", **{argument: "no"})


def test_metadata_records_what_raw_inputs_need():
    import json

    s = load_dataset("digits", seed=7)
    metadata = json.loads(json.dumps(s.metadata()))
    assert metadata["dataset"] == "digits" and metadata["dataset_seed"] == 7
    assert metadata["class_names"] == [str(i) for i in range(10)]
    raw = load_dataset("digits", seed=7, standardize=False)
    record = Standardizer.from_state(metadata["preprocessing"])
    np.testing.assert_allclose(record.transform(raw.X_val), s.X_val, rtol=1e-5, atol=1e-5)
