"""Mini-batches: what this module owns.

It owns the functional iterator :func:`iterate_minibatches` and the course-style
containers :class:`Data` (one set of samples served batch by batch, reshuffled every
epoch) and :class:`Dataset` (training, validation and test :class:`Data`), with
:func:`initialize_dataset` building one from a dataset name. Loading, splitting and
standardising belong to :mod:`~neural_networks.datasets.loading` and
:mod:`~neural_networks.datasets.preprocessing`.

None of these ever modify the caller's arrays: shuffling builds new arrays.

>>> import numpy as np
>>> X = np.arange(10).reshape(5, 2)
>>> [len(X_batch) for X_batch, _ in iterate_minibatches(X, None, 2, shuffle=False)]
[2, 2, 1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..errors import InvalidParameterError, ShapeError
from ..utils import integers_to_one_hot
from ..utils.batches import batch_indices, batch_slice
from ..utils.validation import BOOLEAN, Integral, Interval, validate_params
from .loading import load_dataset
from .synthetic import SYNTHETIC_DATASETS

__all__ = ["Data", "Dataset", "initialize_dataset", "iterate_minibatches"]

_BATCH_SIZE = [Interval(Integral, 1, None)]
#: what ``np.random.default_rng`` takes: None (fresh entropy), a seed >= 0, or a generator
_RANDOM_SOURCE = [None, Interval(Integral, 0, None), np.random.Generator, np.random.SeedSequence,
                  np.random.BitGenerator]


def _check_same_length(X, Y, what: str = "labels") -> None:
    if Y is not None and len(Y) != len(X):
        raise ShapeError(f"got {len(X)} samples but {len(Y)} {what}")


# --------------------------------------------------------------------------
# Functional iteration
# --------------------------------------------------------------------------

_ITERATE_CONSTRAINTS = {"batch_size": _BATCH_SIZE, "shuffle": [BOOLEAN], "rng": _RANDOM_SOURCE}


def iterate_minibatches(X, Y, batch_size: int, *, shuffle: bool = True, rng=None):
    """Iterate once over the data in mini-batches.

    Parameters
    ----------
    X : numpy.ndarray, shape (N, ...)
        Inputs.
    Y : numpy.ndarray, shape (N, ...), or None
        Targets, batched alongside ``X``; None yields ``None`` targets.
    batch_size : int
        Samples per batch (>= 1); the last batch holds the ``N % batch_size``
        leftovers when ``N`` is not a multiple.
    shuffle : bool
        Visit samples in a random order (one ``rng.permutation`` per call).
    rng : numpy.random.Generator or int or None
        Randomness for shuffling.  Pass the *same* Generator every epoch to
        get a new, reproducible order each epoch; an int seed (>= 0) gives the
        same order on every call; None draws fresh entropy.

    Returns
    -------
    iterator of (X_batch, Y_batch)
        Views of ``X``/``Y`` when ``shuffle`` is False, copies otherwise.
        ``X`` and ``Y`` are never modified.

    >>> import numpy as np
    >>> X, Y = np.arange(5), np.arange(5) * 10
    >>> [(x.tolist(), y.tolist()) for x, y in iterate_minibatches(X, Y, 2, shuffle=False)]
    [([0, 1], [0, 10]), ([2, 3], [20, 30]), ([4], [40])]
    >>> np.sort(np.concatenate([x for x, _ in iterate_minibatches(X, Y, 2, rng=0)])).tolist()
    [0, 1, 2, 3, 4]
    """
    validate_params("iterate_minibatches", _ITERATE_CONSTRAINTS, batch_size=batch_size,
                    shuffle=shuffle, rng=rng)
    X = np.asarray(X)
    Y = None if Y is None else np.asarray(Y)
    _check_same_length(X, Y, "targets")
    # Validation and the permutation happen now, not at the first next().
    order = np.random.default_rng(rng).permutation(len(X)) if shuffle else None
    return _generate_batches(X, Y, int(batch_size), order)


def _generate_batches(X, Y, batch_size, order):
    for rows in batch_indices(len(X), batch_size, order):
        yield X[rows], (None if Y is None else Y[rows])


# --------------------------------------------------------------------------
# Course-compatible containers
# --------------------------------------------------------------------------

class Data:
    """One set of samples served as consecutive mini-batches, reshuffled every epoch.

    Parameters
    ----------
    data : array-like, shape (N, ...)
        Samples (N >= 1); not copied until the first shuffle, never modified.
    batch_size : int
        Samples per batch, >= 1.
    labels : array-like, shape (N, ...), optional
        Targets (one-hot rows in the course API), shuffled together with ``data``.
    out_dim : int, optional
        Width of the targets (>= 1); defaults to ``labels.shape[1]`` for 2-D labels.
    seed : int or numpy.random.SeedSequence or numpy.random.Generator, optional
        Seed of the shuffling Generator; None draws fresh entropy.

    Attributes
    ----------
    data_, labels : numpy.ndarray
        The samples and labels in their current (shuffled) order.
    iteration : int
        Index of the next batch within the epoch.
    n_samples : int
    samples_per_epoch : int
        Batches per epoch, ``ceil(n_samples / batch_size)``.

    ``state_dict()`` / ``load_state_dict()`` save and restore where the epoch is: the
    next batch, the current order of the samples and the shuffling generator.

    >>> import numpy as np
    >>> data = Data(np.arange(10).reshape(5, 2), batch_size=2, seed=0)
    >>> [len(data.sample()[0]) for _ in range(data.samples_per_epoch)], data.iteration
    ([2, 2, 1], 0)
    """

    _parameter_constraints = {"batch_size": _BATCH_SIZE, "out_dim": [Interval(Integral, 1, None), None],
                              "seed": _RANDOM_SOURCE}

    def __init__(self, data, batch_size: int = 50, labels=None, out_dim: int | None = None, seed=None):
        validate_params(self, batch_size=batch_size, out_dim=out_dim, seed=seed)
        self.data_ = np.asarray(data)
        self.labels = None if labels is None else np.asarray(labels)
        _check_same_length(self.data_, self.labels)
        if len(self.data_) == 0:
            raise ShapeError("Data needs at least one sample")
        self.batch_size = int(batch_size)
        if out_dim is None and self.labels is not None and self.labels.ndim == 2:
            out_dim = self.labels.shape[1]
        self.out_dim = None if out_dim is None else int(out_dim)
        self.n_samples = len(self.data_)
        self.samples_per_epoch = math.ceil(self.n_samples / self.batch_size)
        self.iteration = 0
        self._order = np.arange(self.n_samples)  # data_ is data[_order] (data: the samples given)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return (
            f"Data(n_samples={self.n_samples}, batch_size={self.batch_size}, "
            f"out_dim={self.out_dim}, iteration={self.iteration})"
        )

    def shuffle(self) -> None:
        """Permute samples and labels together (into new arrays)."""
        self._permute(self._rng.permutation(self.n_samples))

    def _permute(self, permutation: np.ndarray) -> None:
        self._order = self._order[permutation]
        self.data_ = self.data_[permutation]
        if self.labels is not None:
            self.labels = self.labels[permutation]

    def sample(self):
        """Return the next mini-batch ``(X, Y)``; ``Y`` is None without labels.

        The data are reshuffled at the start of every epoch (``iteration == 0``).
        The last batch of an epoch is short when ``batch_size`` does not divide
        ``n_samples``.
        """
        if self.iteration == 0:
            self.shuffle()
        batch = batch_slice(self.n_samples, self.batch_size, self.iteration)
        X = self.data_[batch]
        Y = None if self.labels is None else self.labels[batch]
        self.iteration = (self.iteration + 1) % self.samples_per_epoch
        return X, Y

    def reset(self) -> None:
        """Restart the epoch: the next :meth:`sample` reshuffles and starts over."""
        self.iteration = 0

    def state_dict(self) -> dict:
        """``{"iteration": int, "order": int64 array (data_ is data[order]),
        "rng": the shuffling generator's bit_generator.state (a dict of JSON values)}``."""
        return {"iteration": int(self.iteration), "order": self._order.copy(),
                "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from a :meth:`state_dict` of a ``Data`` over the same samples."""
        if not isinstance(state, Mapping) or not {"iteration", "order", "rng"} <= set(state):
            raise InvalidParameterError(
                f"Data.load_state_dict: expected a dict with 'iteration', 'order' and 'rng', got {state!r}")
        order = np.asarray(state["order"])
        if (order.shape != (self.n_samples,) or order.dtype.kind not in "iu"
                or not np.array_equal(np.sort(order), np.arange(self.n_samples))):
            raise InvalidParameterError(
                f"Data.load_state_dict: order must be a permutation of the {self.n_samples} samples")
        iteration = state["iteration"]
        if isinstance(iteration, bool) or not isinstance(iteration, Integral) or not (
                0 <= iteration < self.samples_per_epoch):
            raise InvalidParameterError(
                f"Data.load_state_dict: iteration must be an integer in [0, {self.samples_per_epoch}), "
                f"got {iteration!r}")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]
        except (TypeError, ValueError, KeyError) as error:
            raise InvalidParameterError(f"Data.load_state_dict: unusable rng state ({error})") from None
        self._rng = rng
        # from the current order to the saved one, without keeping a copy of the samples given
        self._permute(np.argsort(self._order)[order.astype(np.int64)])
        self.iteration = int(iteration)


def _labels_width(labels_sets) -> int | None:
    """Number of classes implied by the label sets: a one-hot width, else the largest id + 1."""
    widths = [labels.shape[1] for labels in labels_sets if labels.ndim == 2]
    if widths:
        return widths[0]
    ids = [labels for labels in labels_sets if labels.size]
    return max(int(labels.max()) + 1 for labels in ids) if ids else None


def _one_hot_like(labels: np.ndarray, width: int, dtype) -> np.ndarray:
    """Return ``labels`` as one-hot rows of ``width`` columns (2-D labels are checked, not changed)."""
    if labels.ndim == 2:
        if labels.shape[1] != width:
            raise ShapeError(f"one-hot labels have {labels.shape[1]} columns, expected {width}")
        return labels
    if labels.ndim != 1:
        raise ShapeError(f"labels must be class ids (N,) or one-hot rows (N, k), got shape {labels.shape}")
    return integers_to_one_hot(labels, max_val=width - 1).astype(dtype, copy=False)


class Dataset:
    """Training, validation and test :class:`Data` sharing one batch size.

    Parameters
    ----------
    training_set, training_labels : array-like
        Training samples and their labels: one-hot rows ``(N, k)`` as in the
        course API, or class ids ``(N,)`` which are one-hot encoded here
        (width ``k`` = one-hot width of another set, else the largest id + 1).
    batch_size : int
        >= 1.
    validation_set, validation_labels, test_set, test_labels : array-like, optional
        Omitted sets give ``None`` attributes.
    seed : int, optional
        Seeds the three shuffling Generators (independent streams), >= 0; None
        draws fresh entropy.

    Attributes
    ----------
    train, validate, test : Data or None
    batch_size, n_training, n_validation, n_test : int
        Sizes are 0 for missing sets.
    out_dim : int
        Number of classes (width of the one-hot labels).

    ``state_dict()`` is ``{"train": Data.state_dict(), "validate": ... or None,
    "test": ... or None}``.

    >>> import numpy as np
    >>> dataset = Dataset(np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2]), batch_size=4, seed=0)
    >>> dataset.out_dim, dataset.train.labels.shape, dataset.validate is None
    (3, (6, 3), True)
    """

    _parameter_constraints = {"batch_size": _BATCH_SIZE, "seed": [None, Interval(Integral, 0, None)]}
    _SETS = ("train", "validate", "test")

    def __init__(
        self,
        training_set,
        training_labels,
        batch_size: int,
        validation_set=None,
        validation_labels=None,
        test_set=None,
        test_labels=None,
        seed: int | None = None,
    ):
        validate_params(self, batch_size=batch_size, seed=seed)
        sets = {
            "training": (training_set, training_labels),
            "validation": (validation_set, validation_labels),
            "test": (test_set, test_labels),
        }
        for name, (samples, labels) in sets.items():
            if samples is None and labels is not None:
                raise InvalidParameterError(f"{name} labels were given without a {name} set")
        given = [np.asarray(labels) for _, labels in sets.values() if labels is not None]
        self.out_dim = _labels_width(given)
        self.batch_size = int(batch_size)

        seeds = np.random.SeedSequence(seed).spawn(len(sets))
        self.train, self.validate, self.test = (
            self._make_data(samples, labels, child)
            for (samples, labels), child in zip(sets.values(), seeds)
        )
        self.n_training = self.train.n_samples
        self.n_validation = 0 if self.validate is None else self.validate.n_samples
        self.n_test = 0 if self.test is None else self.test.n_samples

    def _make_data(self, samples, labels, seed) -> Data | None:
        if samples is None:
            return None
        samples = np.asarray(samples)
        if labels is not None:
            # Match floating inputs so losses do not silently upcast float32 models.
            dtype = samples.dtype if samples.dtype.kind == "f" else np.float64
            labels = _one_hot_like(np.asarray(labels), self.out_dim, dtype)
        return Data(samples, self.batch_size, labels=labels, out_dim=self.out_dim, seed=seed)

    def __repr__(self) -> str:
        return (
            f"Dataset(n_training={self.n_training}, n_validation={self.n_validation}, "
            f"n_test={self.n_test}, batch_size={self.batch_size}, out_dim={self.out_dim})"
        )

    def state_dict(self) -> dict:
        return {name: None if getattr(self, name) is None else getattr(self, name).state_dict()
                for name in self._SETS}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from a :meth:`state_dict` of a ``Dataset`` over the same sets."""
        if not isinstance(state, Mapping) or set(state) != set(self._SETS):
            raise InvalidParameterError(
                f"Dataset.load_state_dict: expected a dict with keys {list(self._SETS)}, got {state!r}")
        for name in self._SETS:
            data, saved = getattr(self, name), state[name]
            if (data is None) != (saved is None):
                raise InvalidParameterError(
                    f"Dataset.load_state_dict: the state has {'a' if saved is not None else 'no'} "
                    f"{name} set but this dataset has {'none' if data is None else 'one'}")
            if data is not None:
                data.load_state_dict(saved)


_INITIALIZE_CONSTRAINTS = {"name": [str], "batch_size": _BATCH_SIZE, "seed": [Interval(Integral, 0, None)]}


def initialize_dataset(name: str, batch_size: int = 50, seed: int = 0, **load_kwargs) -> Dataset:
    """Load a dataset by name into a course-style :class:`Dataset` with one-hot labels.

    The regression set ``"sinewave"`` keeps its targets ``(N, 1)`` and serves its
    sequences in the course's layout ``(N, 1, T)`` (features, then time), as the
    course's Elman RNN reads them (``load_dataset`` gives them batch-first ``(N, T, 1)``).

    Parameters
    ----------
    name : str
        Any name accepted by :func:`~neural_networks.datasets.load_dataset`.
    batch_size : int
        >= 1 (checked before anything is loaded).
    seed : int
        Seeds both the split and the shuffling, >= 0.
    **load_kwargs
        Passed to :func:`~neural_networks.datasets.load_dataset`
        (``validation_size``, ``test_size``, ``flatten``, ``standardize``,
        ``data_dir``, ``noise``).

    Returns
    -------
    Dataset
        Also carries the :class:`~neural_networks.datasets.Splits` it was built
        from as ``.splits`` (class names, fitted standardiser).

    >>> dataset = initialize_dataset("iris", batch_size=25)   # needs scikit-learn
    >>> dataset.out_dim, dataset.train.sample()[0].shape
    (3, (25, 4))
    """
    validate_params("initialize_dataset", _INITIALIZE_CONSTRAINTS, name=name, batch_size=batch_size, seed=seed)
    splits = load_dataset(name, seed=seed, **load_kwargs)
    width = splits.n_classes  # not max(label) + 1: a split may miss the last class

    def one_hot(y):
        if width == 0:  # regression: the targets as they are
            return y
        return integers_to_one_hot(y, max_val=width - 1).astype(np.float32)

    def course_layout(X):
        if name in SYNTHETIC_DATASETS and X.ndim == 3:  # sequences (N, T, d) -> (N, d, T)
            return np.ascontiguousarray(X.transpose(0, 2, 1))
        return X

    dataset = Dataset(
        course_layout(splits.X_train), one_hot(splits.y_train), batch_size,
        validation_set=course_layout(splits.X_val) if len(splits.X_val) else None,
        validation_labels=one_hot(splits.y_val) if len(splits.X_val) else None,
        test_set=course_layout(splits.X_test) if len(splits.X_test) else None,
        test_labels=one_hot(splits.y_test) if len(splits.X_test) else None,
        seed=seed,
    )
    dataset.splits = splits
    return dataset
