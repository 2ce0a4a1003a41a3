"""``load_dataset``: one entry point returning ready-to-train splits."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError, unknown_name
from ..utils.validation import check_bool
from .embedded import EMBEDDED_DATASETS, load_embedded
from .files import OfficialSplit, load_cifar10, load_mnist
from .preprocessing import Standardizer, stratified_split
from .synthetic import SYNTHETIC_DATASETS, make_sinewave

__all__ = ["DATASET_NAMES", "FILE_DATASETS", "Splits", "load_dataset"]

#: Datasets read from files the user already has (see :mod:`.files`).
FILE_DATASETS = ("mnist", "fashion_mnist", "cifar10")

#: Every name :func:`load_dataset` accepts.
DATASET_NAMES = EMBEDDED_DATASETS + FILE_DATASETS + SYNTHETIC_DATASETS


@dataclass(eq=False, repr=False)
class Splits:
    """Train, validation and test data of one dataset.

    Attributes
    ----------
    X_train, X_val, X_test : numpy.ndarray
        ``float32`` inputs, shape ``(N, *input_shape)``.
    y_train, y_val, y_test : numpy.ndarray
        ``int64`` class ids ``0..n_classes-1``, shape ``(N,)``; for a regression
        set (``sinewave``), ``float32`` targets of shape ``(N, 1)``.
    class_names : list of str
        Name of each class id; empty for a regression set (``n_classes`` is 0).
    standardizer : Standardizer or None
        The standardiser fitted on the raw training split, to apply the same
        preprocessing to raw inputs later (``standardizer.transform(raw)``);
        None when ``standardize=False`` and for the generated sets.
    name : str
        Dataset name as passed to :func:`load_dataset`.
    preprocessing : Standardizer or None
        Everything done to the values as stored (8-bit pixels, raw features) to
        give the arrays above, as one ``(X * scale - mean) / std``: the
        standardiser when ``standardize``, else the division by 255 of
        ``scale_pixels`` (or nothing: scale 1, mean 0, std 1). :meth:`metadata`
        records it with a model, so that raw inputs can be prepared for it later
        (e.g. by the command line).
    seed : int or None
        Seed of the split, as passed to :func:`load_dataset`.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    standardizer: Standardizer | None
    name: str
    preprocessing: Standardizer | None = None
    seed: int | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (without the batch axis)."""
        return tuple(self.X_train.shape[1:])

    def metadata(self) -> dict:
        """What a model trained on these splits needs to be applied to raw data later, as
        JSON-able values: the dataset's name, the split's seed, the class names and the
        preprocessing record. ``model.metadata.update(data.metadata())`` before
        ``model.save(...)`` lets ``neural-networks evaluate`` and ``predict`` prepare raw
        inputs exactly as these splits were prepared."""
        return {
            "dataset": self.name,
            "dataset_seed": self.seed,
            "class_names": list(self.class_names),
            "preprocessing": None if self.preprocessing is None else self.preprocessing.get_state(),
        }

    def __repr__(self) -> str:
        return (
            f"Splits(name={self.name!r}, input_shape={self.input_shape}, "
            f"n_classes={self.n_classes}, train={len(self.X_train)}, "
            f"val={len(self.X_val)}, test={len(self.X_test)}, "
            f"standardized={self.standardizer is not None})"
        )


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    validation_size: float = 0.15,
    test_size: float = 0.15,
    flatten: bool = False,
    standardize: bool = True,
    data_dir: str | os.PathLike | None = None,
    scale_pixels: bool = True,
    noise: float = 0.0,
) -> Splits:
    """Load a dataset split into train, validation and test sets.

    Parameters
    ----------
    name : str
        ``"digits"`` (8x8 images), ``"iris"``, ``"wine"``, ``"breast_cancer"``
        (tabular; these four need scikit-learn), ``"mnist"``,
        ``"fashion_mnist"`` (28x28 grey images) or ``"cifar10"`` (32x32 RGB);
        the last three are read from files under ``data_dir``, see
        :func:`~neural_networks.datasets.load_mnist` and
        :func:`~neural_networks.datasets.load_cifar10`; or ``"sinewave"``, a
        regression set generated from ``seed`` (sequences ``(N, 20, 1)``, targets
        ``(N, 1)``, see :func:`~neural_networks.datasets.make_sinewave`).
    seed : int
        Seed of the shuffled, stratified split (and of the generated data); the
        same seed gives the same split.
    validation_size : float
        Fraction in [0, 1) for the validation set: of the whole dataset for the
        scikit-learn sets, of the official training set for the file sets.
    test_size : float
        Fraction in [0, 1) of the whole dataset for the test set.  Ignored by
        the file sets, whose test set is the official one.  The generated sets
        are split at random (a regression target has no class to stratify by).
    flatten : bool
        Return images as vectors ``(N, H*W*C)`` instead of ``(N, H, W, C)``.
    standardize : bool
        Standardise with statistics of the training split only: per feature
        for tabular data and digits, per channel for the file image sets.
        When False, tabular data and digits stay raw and file images are only
        divided by 255 (see ``scale_pixels``).  The generated sets are never
        standardised (sine values already lie in [-1, 1], and the target must stay
        the next input value).
    data_dir : str or path-like, optional
        Folder of the file datasets; default ``$NEURAL_NETWORKS_DATA`` or ``./data``.
    scale_pixels : bool
        Divide the 8-bit pixels of the file image sets by 255.  With
        ``standardize`` it sets the standardiser's ``scale`` (1/255: its
        statistics are those of pixels in [0, 1]; the standardised arrays are
        the same up to rounding either way).  ``standardize=False,
        scale_pixels=False`` returns the values as stored, as float32: the raw
        inputs a saved ``preprocessing`` record applies to.  The tabular sets
        and digits have no 8-bit pixels: it changes nothing for them.
    noise : float
        ``sinewave`` only: standard deviation of Gaussian noise added to every
        value (default 0, noise-free).

    Returns
    -------
    Splits

    Raises
    ------
    ValueError
        Unknown name or invalid sizes.
    MissingDependencyError
        A scikit-learn set was asked for without scikit-learn installed.
    DatasetNotFoundError, DatasetError
        The files of a file set are missing or invalid.
    """
    _check_fraction("validation_size", validation_size)
    standardize = check_bool("standardize", standardize)
    scale_pixels = check_bool("scale_pixels", scale_pixels)
    if noise != 0 and name not in SYNTHETIC_DATASETS:
        raise InvalidParameterError(
            f"noise applies only to the generated datasets {list(SYNTHETIC_DATASETS)}, "
            f"got noise={noise!r} for {name!r}")
    rng = np.random.default_rng(seed)
    if name in EMBEDDED_DATASETS or name in SYNTHETIC_DATASETS:
        _check_fraction("test_size", test_size)
        if validation_size + test_size >= 1:
            raise ValueError(
                f"validation_size + test_size must be below 1, got {validation_size + test_size}"
            )
        if name in SYNTHETIC_DATASETS:
            splits = _synthetic_splits(name, rng, validation_size, test_size, flatten, noise)
        else:
            splits = _embedded_splits(name, rng, validation_size, test_size, flatten, standardize)
    elif name in FILE_DATASETS:
        official = _load_official(name, data_dir)
        splits = _file_splits(name, official, rng, validation_size, flatten, standardize,
                              pixel_divisor=255 if scale_pixels else 1)
    else:
        raise unknown_name("load_dataset name", name, DATASET_NAMES)
    splits.seed = seed
    return splits


def _check_fraction(label: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{label} must be in [0, 1), got {value}")


def _load_official(name: str, data_dir) -> OfficialSplit:
    if name == "cifar10":
        return load_cifar10(data_dir)
    return load_mnist(data_dir, variant=name)


def _embedded_splits(name, rng, validation_size, test_size, flatten, standardize) -> Splits:
    """Stratified three-way split of a scikit-learn dataset."""
    X, y, class_names = load_embedded(name)
    if flatten:
        X = X.reshape(len(X), -1)
    train, val, test = stratified_split(
        y, [1 - validation_size - test_size, validation_size, test_size], rng
    )
    parts = [X[train], X[val], X[test]]
    standardizer = None
    if standardize:
        # Per-feature statistics of the training split only: no peeking at
        # validation or test data.
        standardizer = Standardizer().fit(parts[0])
        parts = [standardizer.transform(part) for part in parts]
    else:
        parts = [part.astype(np.float32) for part in parts]
    return Splits(
        parts[0], y[train], parts[1], y[val], parts[2], y[test],
        class_names=class_names, standardizer=standardizer, name=name,
        preprocessing=standardizer if standardizer is not None else Standardizer.scaling(1.0),
    )


def _synthetic_splits(name, rng, validation_size, test_size, flatten, noise) -> Splits:
    """Random three-way split of a generated regression set (one class: nothing to stratify)."""
    X, y = make_sinewave(noise=noise, seed=rng)
    if flatten:
        X = X.reshape(len(X), -1)
    train, val, test = stratified_split(
        np.zeros(len(y), dtype=np.int64), [1 - validation_size - test_size, validation_size, test_size], rng
    )
    return Splits(
        X[train], y[train], X[val], y[val], X[test], y[test],
        class_names=[], standardizer=None, name=name,
        preprocessing=Standardizer.scaling(1.0),  # the values as generated
    )


def _file_splits(name, official: OfficialSplit, rng, validation_size, flatten, standardize,
                 pixel_divisor: int) -> Splits:
    """Official test set; validation carved, stratified, out of the official training set;
    pixels divided by ``pixel_divisor`` (255 or 1) before any standardisation."""
    train, val = stratified_split(official.y_train, [1 - validation_size, validation_size], rng)
    parts = [official.X_train[train], official.X_train[val], official.X_test]
    sample_shape = parts[0].shape[1:]
    standardizer = None
    if standardize:
        standardizer = Standardizer(scale=1 / pixel_divisor, per_channel=True).fit(parts[0])
        parts = [standardizer.transform(part) for part in parts]
        if flatten:
            # Same statistics, laid out per feature so they apply to raw vectors.
            standardizer = standardizer.flattened(sample_shape)
    else:
        parts = [_divided(part, pixel_divisor) for part in parts]
    if flatten:
        parts = [part.reshape(len(part), -1) for part in parts]
    return Splits(
        parts[0], official.y_train[train], parts[1], official.y_train[val],
        parts[2], official.y_test.copy(),
        class_names=list(official.class_names), standardizer=standardizer, name=name,
        preprocessing=(standardizer if standardizer is not None
                       else Standardizer.scaling(1 / pixel_divisor)),
    )


def _divided(images: np.ndarray, divisor: int) -> np.ndarray:
    """8-bit pixels as float32 values divided by ``divisor``."""
    scaled = images.astype(np.float32)
    if divisor != 1:
        scaled /= divisor
    return scaled
