"""Small containers and label encodings."""

from __future__ import annotations

import numpy as np


class AttrDict(dict):
    """A dict whose keys can also be read and written as attributes."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None


def integers_to_one_hot(vec, max_val: int | None = None) -> np.ndarray:
    """One-hot rows for integer class ids 0..max_val.

    Parameters
    ----------
    vec : array of ints, shape (N,)
    max_val : largest class id (the width is max_val + 1); defaults to max(vec).

    Returns
    -------
    float64 array of shape (N, max_val + 1).
    """
    ids = np.asarray(vec)
    if ids.ndim != 1:
        ids = ids.reshape(-1)
    if ids.size and not np.all(np.equal(np.mod(ids, 1), 0)):
        raise ValueError(f"integers_to_one_hot: vec must hold integer class ids, got {ids.dtype} values")
    ids = ids.astype(np.int64)
    if max_val is None:
        max_val = int(ids.max()) if ids.size else 0
    if ids.size and (ids.min() < 0 or ids.max() > max_val):
        raise ValueError(
            f"integers_to_one_hot: class ids must lie in 0..{max_val}, "
            f"got values from {ids.min()} to {ids.max()}"
        )
    one_hot = np.zeros((ids.size, max_val + 1))
    one_hot[np.arange(ids.size), ids] = 1.0
    return one_hot


def jsonable(value):
    """``value`` as plain JSON values: arrays become lists, NumPy scalars Python numbers.

    >>> jsonable({"mean": np.array([0.5, 1.0]), "n": np.int64(3)})
    {'mean': [0.5, 1.0], 'n': 3}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
