"""The one mini-batch iterator: which rows make each batch.

``fit``, ``predict``, ``evaluate`` and the course's ``Dataset`` all slice their arrays
with it, so the last, smaller batch and the shuffled order are handled in one place.

>>> [rows.tolist() for rows in batch_indices(5, 2, order=np.array([4, 3, 2, 1, 0]))]
[[4, 3], [2, 1], [0]]
>>> list(batch_indices(5, 2))
[slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def batch_indices(n_samples: int, batch_size: int, order: np.ndarray | None = None) -> Iterator:
    """Row selectors of consecutive batches of ``batch_size`` (the last may be smaller):
    slices (views, no copy) in natural order, or index arrays taken from ``order``."""
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        yield slice(start, stop) if order is None else order[start:stop]


def batch_slice(n_samples: int, batch_size: int, index: int) -> slice:
    """The rows of batch number ``index`` (from 0) in natural order."""
    start = index * batch_size
    return slice(start, min(start + batch_size, n_samples))


def n_batches(n_samples: int, batch_size: int) -> int:
    """How many batches ``batch_indices`` yields."""
    return -(-n_samples // batch_size)
