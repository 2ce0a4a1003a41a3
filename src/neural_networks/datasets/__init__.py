"""Datasets: loading, splitting, standardising and mini-batching.

* :func:`load_dataset` returns a :class:`Splits` (train/validation/test,
  class names, fitted :class:`Standardizer`) for ``digits``, ``iris``,
  ``wine``, ``breast_cancer`` (bundled with scikit-learn, an optional
  dependency: ``pip install "neural-networks[datasets]"``) and ``mnist``,
  ``fashion_mnist``, ``cifar10`` (files the user already has; nothing is ever
  downloaded or unpickled), and ``sinewave`` (generated from the seed:
  :func:`make_sinewave`).
* :func:`read_idx`, :func:`load_mnist`, :func:`load_cifar10` read the files.
* :func:`iterate_minibatches`, :class:`Data`, :class:`Dataset` and
  :func:`initialize_dataset` serve mini-batches.
"""

from .batching import Data, Dataset, initialize_dataset, iterate_minibatches
from .embedded import EMBEDDED_DATASETS, load_embedded
from .errors import DatasetError, DatasetNotFoundError, MissingDependencyError
from .files import (
    CIFAR10_CLASS_NAMES,
    DATA_DIR_ENV_VAR,
    FASHION_MNIST_CLASS_NAMES,
    MNIST_CLASS_NAMES,
    OfficialSplit,
    load_cifar10,
    load_mnist,
    read_cifar10_batch,
    read_idx,
    resolve_data_dir,
)
from .loading import DATASET_NAMES, FILE_DATASETS, Splits, load_dataset
from .preprocessing import Standardizer, stratified_split
from .synthetic import SYNTHETIC_DATASETS, make_sinewave

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "DATASET_NAMES",
    "DATA_DIR_ENV_VAR",
    "Data",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "EMBEDDED_DATASETS",
    "FASHION_MNIST_CLASS_NAMES",
    "FILE_DATASETS",
    "MNIST_CLASS_NAMES",
    "MissingDependencyError",
    "OfficialSplit",
    "Splits",
    "SYNTHETIC_DATASETS",
    "Standardizer",
    "initialize_dataset",
    "iterate_minibatches",
    "load_cifar10",
    "load_dataset",
    "load_embedded",
    "load_mnist",
    "make_sinewave",
    "read_cifar10_batch",
    "read_idx",
    "resolve_data_dir",
    "stratified_split",
]
