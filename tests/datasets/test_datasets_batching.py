"""iterate_minibatches, Data, Dataset and initialize_dataset."""

from __future__ import annotations

import numpy as np
import pytest

from neural_networks.datasets import Data, Dataset, initialize_dataset, iterate_minibatches


def _toy(n=23):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)  # row i is [2i, 2i+1]
    y = np.arange(n) % 3
    return X, y


# ---------------------------------------------------------------- iterate_minibatches

@pytest.mark.parametrize("shuffle", [True, False])
def test_every_sample_once_with_short_last_batch(shuffle):
    X, y = _toy(23)
    X_before, y_before = X.copy(), y.copy()
    batches = list(iterate_minibatches(X, y, 5, shuffle=shuffle, rng=np.random.default_rng(0)))

    assert [len(xb) for xb, _ in batches] == [5, 5, 5, 5, 3]
    rows = np.concatenate([xb for xb, _ in batches])
    ids = (rows[:, 0] / 2).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(23))
    for xb, yb in batches:  # X and Y stay aligned
        np.testing.assert_array_equal(yb, (xb[:, 0] / 2).astype(int) % 3)
    assert (not shuffle) == np.array_equal(ids, np.arange(23))
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_shuffle_reproducible_and_new_order_per_epoch():
    X, y = _toy(30)

    def order(rng):
        return np.concatenate([yb for _, yb in iterate_minibatches(X, np.arange(30), 7, rng=rng)])

    np.testing.assert_array_equal(order(np.random.default_rng(1)), order(np.random.default_rng(1)))
    np.testing.assert_array_equal(order(4), order(4))  # an int seed: same order every call
    rng = np.random.default_rng(2)
    assert not np.array_equal(order(rng), order(rng))  # one Generator: a new order each epoch


def test_batch_larger_than_data_and_no_targets():
    X, _ = _toy(4)
    batches = list(iterate_minibatches(X, None, 10, shuffle=False))
    assert len(batches) == 1 and batches[0][1] is None
    np.testing.assert_array_equal(batches[0][0], X)


def test_invalid_arguments_raise_immediately():
    X, y = _toy(4)
    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(X, y, 0)
    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(X, y, 2.5)
    with pytest.raises(ValueError, match="4 samples but 3"):
        iterate_minibatches(X, y[:3], 2)


# ---------------------------------------------------------------- Data

def test_data_epoch_covers_every_sample_once():
    X, y = _toy(23)
    X_before = X.copy()
    data = Data(X, batch_size=5, labels=y, seed=0)
    assert data.samples_per_epoch == 5 and data.n_samples == 23 and data.iteration == 0

    for _ in range(3):  # three epochs, each a fresh permutation
        batches = [data.sample() for _ in range(data.samples_per_epoch)]
        assert [len(xb) for xb, _ in batches] == [5, 5, 5, 5, 3]
        assert data.iteration == 0  # wrapped around
        rows = np.concatenate([xb for xb, _ in batches])
        np.testing.assert_array_equal(np.sort((rows[:, 0] / 2).astype(int)), np.arange(23))
        for xb, yb in batches:
            np.testing.assert_array_equal(yb, (xb[:, 0] / 2).astype(int) % 3)
    np.testing.assert_array_equal(X, X_before)  # the caller's arrays are untouched


def test_data_reshuffles_each_epoch_and_is_seeded():
    X, y = _toy(20)

    def epochs(seed, n=2):
        data = Data(X, batch_size=20, labels=y, seed=seed)
        return [data.sample()[0][:, 0].copy() for _ in range(n)]

    first, second = epochs(3)
    assert not np.array_equal(first, second)
    for a, b in zip(epochs(3), epochs(3)):
        np.testing.assert_array_equal(a, b)


def test_data_reset_restarts_the_epoch():
    X, y = _toy(10)
    data = Data(X, batch_size=3, labels=y, seed=0)
    data.sample()
    data.sample()
    assert data.iteration == 2
    data.reset()
    assert data.iteration == 0
    xb, _ = data.sample()
    assert data.iteration == 1 and len(xb) == 3
    # A full epoch after the reset still visits every sample exactly once.
    rest = [data.sample()[0] for _ in range(data.samples_per_epoch - 1)]
    seen = np.concatenate([xb, *rest])[:, 0]
    np.testing.assert_array_equal(np.sort(seen), X[:, 0])


def test_data_shuffle_builds_new_arrays():
    X, y = _toy(6)
    data = Data(X, batch_size=2, labels=y, seed=0)
    data.shuffle()
    assert data.data_ is not X and not np.shares_memory(data.data_, X)
    np.testing.assert_array_equal(data.labels, (data.data_[:, 0] / 2).astype(int) % 3)


def test_data_attributes_and_validation():
    one_hot = np.eye(4)[[0, 1, 2, 3, 0]]
    data = Data(np.zeros((5, 3)), labels=one_hot)
    assert data.batch_size == 50 and data.out_dim == 4 and data.samples_per_epoch == 1
    unlabelled = Data(np.zeros((5, 3)), batch_size=2)
    assert unlabelled.sample()[1] is None and unlabelled.out_dim is None
    with pytest.raises(ValueError, match="at least one sample"):
        Data(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="5 samples but 4"):
        Data(np.zeros((5, 3)), labels=np.zeros(4))


# ---------------------------------------------------------------- Dataset

def test_dataset_one_hots_integer_labels():
    X, y = _toy(12)
    ds = Dataset(X, y, 4, validation_set=X[:5], validation_labels=y[:5], seed=0)
    assert ds.out_dim == 3 and ds.batch_size == 4
    assert ds.n_training == 12 and ds.n_validation == 5 and ds.n_test == 0 and ds.test is None
    np.testing.assert_array_equal(ds.train.labels.argmax(axis=1), y)
    assert ds.train.labels.shape == (12, 3) and ds.train.labels.dtype == np.float32
    assert ds.validate.labels.shape == (5, 3) and ds.validate.out_dim == 3


def test_dataset_accepts_one_hot_labels_and_no_validation_set():
    X, y = _toy(9)
    one_hot = np.eye(5)[y]  # width 5 although only 3 classes occur
    ds = Dataset(X, one_hot, 3, test_set=X[:2], test_labels=y[:2])
    assert ds.out_dim == 5 and ds.validate is None and ds.n_validation == 0
    assert ds.test.labels.shape == (2, 5)
    np.testing.assert_array_equal(ds.train.labels, one_hot)


def test_dataset_seed_is_reproducible():
    X, y = _toy(15)
    a, b = Dataset(X, y, 4, seed=5), Dataset(X, y, 4, seed=5)
    np.testing.assert_array_equal(a.train.sample()[0], b.train.sample()[0])


def test_dataset_rejects_inconsistent_inputs():
    X, y = _toy(6)
    with pytest.raises(ValueError, match="without a validation set"):
        Dataset(X, y, 2, validation_labels=y)
    with pytest.raises(ValueError, match="columns"):
        Dataset(X, np.eye(3)[y], 2, test_set=X, test_labels=np.eye(4)[y])


def test_initialize_dataset_from_name():
    pytest.importorskip("sklearn")
    ds = initialize_dataset("iris", batch_size=16, seed=1)
    assert ds.out_dim == 3 and ds.batch_size == 16
    assert ds.n_training + ds.n_validation + ds.n_test == 150
    xb, yb = ds.train.sample()
    assert xb.shape == (16, 4) and yb.shape == (16, 3)
    np.testing.assert_array_equal(yb.sum(axis=1), 1)
    np.testing.assert_array_equal(ds.test.labels.argmax(axis=1), ds.splits.y_test)
    assert ds.splits.class_names[0] == "setosa"


# ---------------------------------------------------------------- argument checks

@pytest.mark.parametrize(
    "build, message",
    [
        (lambda X, y: iterate_minibatches(X, y, True), r"^iterate_minibatches: batch_size must be an integer >= 1, got True"),
        (lambda X, y: iterate_minibatches(X, y, "4"), r"^iterate_minibatches: batch_size must be an integer >= 1"),
        (lambda X, y: iterate_minibatches(X, y, 2, shuffle="no"), r"^iterate_minibatches: shuffle must be True or False, got 'no'"),
        (lambda X, y: iterate_minibatches(X, y, 2, rng=-1), r"^iterate_minibatches: rng must be None or an integer >= 0 or"),
        (lambda X, y: iterate_minibatches(X, y, 2, rng=1.5), r"^iterate_minibatches: rng must be"),
        (lambda X, y: Data(X, batch_size=0), r"^Data: batch_size must be an integer >= 1, got 0"),
        (lambda X, y: Data(X, out_dim=0), r"^Data: out_dim must be an integer >= 1 or None, got 0"),
        (lambda X, y: Data(X, seed="abc"), r"^Data: seed must be"),
        (lambda X, y: Dataset(X, y, 2.5), r"^Dataset: batch_size must be an integer >= 1, got 2.5"),
        (lambda X, y: Dataset(X, y, 2, seed=-1), r"^Dataset: seed must be None or an integer >= 0, got -1"),
        (lambda X, y: initialize_dataset("no_such_dataset", batch_size=0), r"^initialize_dataset: batch_size must be"),
        (lambda X, y: initialize_dataset(["iris"]), r"^initialize_dataset: name must be a string"),
        (lambda X, y: initialize_dataset("iris", seed=None), r"^initialize_dataset: seed must be an integer >= 0"),
    ],
)
def test_arguments_are_checked_before_anything_is_done(build, message):
    from neural_networks.errors import InvalidParameterError

    X, y = _toy(4)
    with pytest.raises(InvalidParameterError, match=message):
        build(X, y)


def test_shape_mismatches_are_shape_errors():
    from neural_networks.errors import ShapeError

    X, y = _toy(4)
    with pytest.raises(ShapeError, match="4 samples but 3 targets"):
        iterate_minibatches(X, y[:3], 2)
    with pytest.raises(ShapeError, match="at least one sample"):
        Data(X[:0])
    with pytest.raises(ShapeError, match="columns"):
        Dataset(X, np.eye(3)[y], 2, test_set=X, test_labels=np.eye(4)[y])


# ---------------------------------------------------------------- state

def _json_round_trip(state):
    """What a checkpoint does: arrays apart, the rest through JSON."""
    import json

    def encode(value):
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value.tolist() if isinstance(value, np.ndarray) else value

    return json.loads(json.dumps(encode(state)))


def test_data_state_dict_resumes_the_same_batches():
    X, y = _toy(23)
    original = Data(X, batch_size=5, labels=y, seed=11)
    for _ in range(7):  # one epoch and two batches
        original.sample()
    state = original.state_dict()
    assert set(state) == {"iteration", "order", "rng"} and state["iteration"] == 2
    assert isinstance(state["order"], np.ndarray)
    np.testing.assert_array_equal(X[state["order"]], original.data_)

    resumed = Data(X, batch_size=5, labels=y, seed=99)
    resumed.load_state_dict(_json_round_trip(state))
    np.testing.assert_array_equal(resumed.data_, original.data_)
    for _ in range(12):  # the rest of this epoch and two more
        (xa, ya), (xb, yb) = original.sample(), resumed.sample()
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_dataset_state_dict_round_trips_and_refuses_another_layout():
    from neural_networks.errors import InvalidParameterError

    X, y = _toy(12)
    original = Dataset(X, y, 5, validation_set=X[:4], validation_labels=y[:4], seed=3)
    original.train.sample()
    state = original.state_dict()
    assert state["test"] is None and state["train"]["iteration"] == 1
    resumed = Dataset(X, y, 5, validation_set=X[:4], validation_labels=y[:4], seed=4)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.train.sample()[0], original.train.sample()[0])
    with pytest.raises(InvalidParameterError, match="the state has a validate set but this dataset has none"):
        Dataset(X, y, 5, seed=3).load_state_dict(state)


@pytest.mark.parametrize("change", [{"order": np.zeros(6, dtype=int)}, {"order": np.arange(5)},
                                    {"iteration": 3}, {"iteration": True}, {"rng": {"bit_generator": "nope"}}])
def test_data_load_state_dict_refuses_a_broken_state(change):
    from neural_networks.errors import InvalidParameterError

    X, y = _toy(6)
    data = Data(X, batch_size=2, labels=y, seed=0)
    with pytest.raises(InvalidParameterError, match="Data.load_state_dict"):
        data.load_state_dict({**data.state_dict(), **change})
    np.testing.assert_array_equal(data.data_, X)  # nothing changed
