"""Exceptions raised by :mod:`neural_networks.datasets`.

Every problem with a dataset file (missing, truncated, wrong format, bad
labels) surfaces as a :class:`DatasetError`, so callers need one ``except``
clause instead of guessing which of numpy's, struct's or gzip's exceptions a
corrupt file happens to trigger.
"""

from __future__ import annotations

from ..errors import NeuralNetworksError

__all__ = ["DatasetError", "DatasetNotFoundError", "MissingDependencyError", "INSTALL_HINT"]

#: The one command that installs the optional dependency of the embedded datasets.
INSTALL_HINT = 'pip install "neural-networks[datasets]"'


class DatasetError(NeuralNetworksError, ValueError):
    """A dataset could not be loaded: the data are missing, malformed or inconsistent."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files of a dataset are not where they were looked for.

    Also a :class:`FileNotFoundError`, so code that already handles missing
    files keeps working.
    """


class MissingDependencyError(DatasetError, ImportError):
    """An optional dependency (scikit-learn) needed by a dataset is not installed.

    Also an :class:`ImportError`, so ``except ImportError`` catches it too.
    """
