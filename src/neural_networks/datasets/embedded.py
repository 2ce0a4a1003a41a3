"""Small datasets bundled with scikit-learn (no download needed).

scikit-learn is an optional dependency, imported only when one of these
datasets is requested: ``pip install "neural-networks[datasets]"``.
"""

from __future__ import annotations

import numpy as np

from .errors import INSTALL_HINT, MissingDependencyError

__all__ = ["EMBEDDED_DATASETS", "load_embedded"]

# Dataset name -> name of the scikit-learn loader function.
_LOADERS = {
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
}

#: Names of the datasets served from scikit-learn.
EMBEDDED_DATASETS = tuple(_LOADERS)


def _sklearn_datasets():
    """Import ``sklearn.datasets`` or raise the one error telling how to install it."""
    try:
        import sklearn.datasets
    except ImportError as exc:
        raise MissingDependencyError(
            "the datasets digits, iris, wine and breast_cancer come with scikit-learn, "
            f"which is not installed; install it with: {INSTALL_HINT}"
        ) from exc
    return sklearn.datasets


def load_embedded(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a scikit-learn bundled dataset as raw arrays.

    Parameters
    ----------
    name : {"digits", "iris", "wine", "breast_cancer"}

    Returns
    -------
    X : numpy.ndarray
        ``float64`` features: ``(N, 8, 8, 1)`` NHWC images with values 0..16
        for digits, ``(N, d)`` for the tabular sets.
    y : numpy.ndarray
        ``int64`` class ids ``0..k-1``, shape ``(N,)``.
    class_names : list of str

    Raises
    ------
    ValueError
        Unknown name.
    MissingDependencyError
        scikit-learn is not installed.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown embedded dataset {name!r}; choose one of {list(_LOADERS)}")
    bunch = getattr(_sklearn_datasets(), _LOADERS[name])()
    if name == "digits":
        X = np.asarray(bunch.images, dtype=np.float64)[..., np.newaxis]
    else:
        X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    class_names = [str(label) for label in bunch.target_names]
    return X, y, class_names
