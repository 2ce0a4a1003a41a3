"""The generated sinewave regression set: make_sinewave, load_dataset and initialize_dataset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS
from neural_networks.datasets import (
    DATASET_NAMES,
    SYNTHETIC_DATASETS,
    initialize_dataset,
    load_dataset,
    make_sinewave,
)
from neural_networks.datasets.synthetic import SINEWAVE_FREQUENCIES, SINEWAVE_SAMPLES, SINEWAVE_STEPS
from neural_networks.errors import InvalidParameterError

seeds = st.integers(0, 2**32 - 1)


def next_value_by_recurrence(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continue each sequence by one step, knowing only that it samples one sinusoid.

    Any s(t) = sin(ωt + φ) satisfies s(t+1) + s(t−1) = 2 cos ω · s(t). The least-squares
    cos ω over the inputs gives the frequency, and s(T) = 2 cos ω · s(T−1) − s(T−2).
    Returns (predicted next values (N, 1), frequencies in cycles per step (N,)).
    """
    x = X[..., 0].astype(np.float64)
    middle, around = x[:, 1:-1], x[:, 2:] + x[:, :-2]
    cos_omega = np.sum(middle * around, axis=1) / (2 * np.sum(middle * middle, axis=1))
    predicted = 2 * cos_omega * x[:, -1] - x[:, -2]
    return predicted[:, None], np.arccos(np.clip(cos_omega, -1, 1)) / (2 * np.pi)


# -- make_sinewave ------------------------------------------------------------------------------------
@SETTINGS
@given(seeds, st.integers(1, 40), st.integers(8, 40), st.sampled_from([np.float32, np.float64]))
def test_target_is_the_next_value_of_the_same_wave(seed, n, steps, dtype):
    X, y = make_sinewave(n, steps, seed=seed, dtype=dtype)
    assert X.shape == (n, steps, 1) and y.shape == (n, 1)
    assert X.dtype == dtype and y.dtype == dtype and X.flags.c_contiguous
    assert np.all(np.abs(X) <= 1) and np.all(np.abs(y) <= 1)
    predicted, frequency = next_value_by_recurrence(X)
    tolerance = 1e-9 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(y, predicted, rtol=0, atol=tolerance)
    low, high = SINEWAVE_FREQUENCIES
    assert np.all((frequency > low - 1e-3) & (frequency < high + 1e-3))


def test_a_target_of_another_wave_or_step_fails_the_recurrence():
    # the check above can fail: the last input, or another sample's target, is not the next value
    X, y = make_sinewave(50, 20, seed=0, dtype=np.float64)
    predicted, _ = next_value_by_recurrence(X)
    assert np.max(np.abs(X[:, -1] - predicted)) > 0.1
    assert np.max(np.abs(np.roll(y, 1, axis=0) - predicted)) > 0.1


@SETTINGS
@given(seeds, st.floats(0.01, 0.49))
def test_frequencies_stay_in_the_given_range(seed, low):
    high = min(low + 0.05, 0.5)
    X, _ = make_sinewave(30, 24, frequency_range=(low, high), seed=seed, dtype=np.float64)
    _, frequency = next_value_by_recurrence(X)
    assert np.all((frequency > low - 1e-6) & (frequency < high + 1e-6))


@SETTINGS
@given(seeds)
def test_same_seed_same_data_and_other_seed_other_data(seed):
    X1, y1 = make_sinewave(20, 10, seed=seed)
    X2, y2 = make_sinewave(20, 10, seed=np.random.default_rng(seed))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_sinewave(20, 10, seed=seed + 1)
    assert not np.array_equal(X1, X3)


def test_noise_is_off_by_default_and_added_on_the_same_waves():
    clean_X, clean_y = make_sinewave(400, 30, seed=3, dtype=np.float64)
    default_X, _ = make_sinewave(400, 30, seed=3, noise=0.0, dtype=np.float64)
    np.testing.assert_array_equal(clean_X, default_X)
    noisy_X, noisy_y = make_sinewave(400, 30, seed=3, noise=0.1, dtype=np.float64)
    difference = np.concatenate([(noisy_X - clean_X).ravel(), (noisy_y - clean_y).ravel()])
    # 12 400 independent N(0, 0.1²) draws: mean within 5 standard errors, std within 3 %
    assert abs(difference.mean()) < 5 * 0.1 / np.sqrt(difference.size)
    assert difference.std() == pytest.approx(0.1, rel=0.03)
    predicted, _ = next_value_by_recurrence(noisy_X)
    assert np.max(np.abs(noisy_y - predicted)) > 0.1  # the noisy set is really noisy


@pytest.mark.parametrize(("arguments", "name"), [
    ({"n_samples": 0}, "n_samples"),
    ({"n_samples": 2.5}, "n_samples"),
    ({"n_steps": 0}, "n_steps"),
    ({"noise": -0.1}, "noise"),
    ({"noise": float("nan")}, "noise"),
    ({"noise": None}, "noise"),
    ({"frequency_range": (0.3, 0.1)}, "frequency_range"),
    ({"frequency_range": (0.0, 0.1)}, "frequency_range"),
    ({"frequency_range": (0.1, 0.6)}, "frequency_range"),
    ({"frequency_range": "ab"}, "frequency_range"),
    ({"frequency_range": (0.1,)}, "frequency_range"),
    ({"dtype": np.int64}, "dtype"),
    ({"dtype": None}, "dtype"),
])
def test_bad_arguments_name_the_argument(arguments, name):
    with pytest.raises(InvalidParameterError) as error:
        make_sinewave(**arguments)
    assert f"make_sinewave: {name} must be" in str(error.value) and "got" in str(error.value)


# -- load_dataset("sinewave") -------------------------------------------------------------------------
def _parts(splits):
    return [(splits.X_train, splits.y_train), (splits.X_val, splits.y_val), (splits.X_test, splits.y_test)]


def test_load_dataset_is_a_batch_first_regression_set():
    splits = load_dataset("sinewave")
    assert "sinewave" in DATASET_NAMES and "sinewave" in SYNTHETIC_DATASETS
    assert splits.name == "sinewave" and splits.class_names == [] and splits.n_classes == 0
    assert splits.standardizer is None  # never standardised, even with the default standardize=True
    assert splits.input_shape == (SINEWAVE_STEPS, 1)
    for X, y in _parts(splits):
        assert X.dtype == np.float32 and X.shape[1:] == (SINEWAVE_STEPS, 1)
        assert y.dtype == np.float32 and y.shape == (len(X), 1)
    assert [len(X) for X, _ in _parts(splits)] == [700, 150, 150]
    assert sum(len(X) for X, _ in _parts(splits)) == SINEWAVE_SAMPLES


@pytest.mark.parametrize("seed", [0, 5])
def test_splits_partition_the_waves_generated_from_the_seed(seed):
    X, y = make_sinewave(seed=seed)
    splits = load_dataset("sinewave", seed=seed)

    def rows(inputs, targets):
        table = np.column_stack([inputs.reshape(len(inputs), -1), targets]).astype(np.float64)
        return table[np.lexsort(table.T[::-1])]

    together = [np.concatenate(part) for part in zip(*_parts(splits))]
    np.testing.assert_array_equal(rows(*together), rows(X, y))
    for X_part, y_part in _parts(splits):  # and each target still follows its own inputs
        predicted, _ = next_value_by_recurrence(X_part)
        np.testing.assert_allclose(y_part, predicted, rtol=0, atol=2e-4)


def test_load_dataset_is_deterministic_per_seed():
    a, b, c = load_dataset("sinewave", seed=2), load_dataset("sinewave", seed=2), load_dataset("sinewave", seed=3)
    for (Xa, ya), (Xb, yb) in zip(_parts(a), _parts(b)):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.X_train, c.X_train)


def test_load_dataset_sizes_flatten_and_noise():
    splits = load_dataset("sinewave", validation_size=0.2, test_size=0.1)
    assert [len(X) for X, _ in _parts(splits)] == [700, 200, 100]
    flat = load_dataset("sinewave", flatten=True)
    assert flat.X_train.shape == (700, SINEWAVE_STEPS)
    np.testing.assert_array_equal(flat.X_train, load_dataset("sinewave").X_train[..., 0])
    noisy = load_dataset("sinewave", noise=0.05)
    clean = load_dataset("sinewave")
    difference = (noisy.X_train - clean.X_train).astype(np.float64)  # same waves, same split
    assert difference.std() == pytest.approx(0.05, rel=0.05)
    with pytest.raises(ValueError, match="validation_size \\+ test_size"):
        load_dataset("sinewave", validation_size=0.5, test_size=0.5)


def test_noise_is_refused_for_the_other_datasets():
    with pytest.raises(InvalidParameterError, match="noise applies only to the generated datasets.*'iris'"):
        load_dataset("iris", noise=0.1)


# -- the course's initialize_dataset("sinewave") --------------------------------------------------------
def test_initialize_dataset_serves_the_course_layout():
    dataset = initialize_dataset("sinewave", batch_size=32)
    splits = load_dataset("sinewave")
    assert dataset.out_dim == 1
    assert (dataset.n_training, dataset.n_validation, dataset.n_test) == (700, 150, 150)
    for data, (X, y) in zip([dataset.train, dataset.validate, dataset.test], _parts(splits)):
        assert data.data_.shape == (len(X), 1, SINEWAVE_STEPS)  # (N, features, time)
        assert data.data_.flags.c_contiguous
        np.testing.assert_array_equal(data.data_, X.transpose(0, 2, 1))
        np.testing.assert_array_equal(data.labels, y)  # targets, not one-hot
    X_batch, y_batch = dataset.train.sample()
    assert X_batch.shape == (32, 1, SINEWAVE_STEPS) and y_batch.shape == (32, 1)
    predicted, _ = next_value_by_recurrence(X_batch.transpose(0, 2, 1))
    np.testing.assert_allclose(y_batch, predicted, rtol=0, atol=2e-4)  # shuffled together


def test_initialize_dataset_is_deterministic():
    a, b = initialize_dataset("sinewave", batch_size=10), initialize_dataset("sinewave", batch_size=10)
    for _ in range(3):
        (Xa, ya), (Xb, yb) = a.train.sample(), b.train.sample()
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
