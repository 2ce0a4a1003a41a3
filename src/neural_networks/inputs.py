"""Checks of the arrays a user hands to a model, at its boundary.

Inputs become the model's dtype and must hold samples of the shape it was built for;
targets become arrays shaped like the model's output (class ids become one-hot rows).
Each mistake is a clear error naming the argument, what was expected and what came.

>>> import numpy as np
>>> one_hot_targets(np.array([2, 0]), (2, 3), np.float32, "Y")
array([[0., 0., 1.],
       [1., 0., 0.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidParameterError, ShapeError

#: guard against sizing an output layer from a corrupt label (e.g. 10⁹ → 150 GiB of weights)
MAX_CLASSES_FROM_IDS = 100_000


def check_inputs(X, dtype, input_shape: tuple | None, argument: str = "X") -> np.ndarray:
    """X as a finite array of ``dtype`` holding a non-empty batch of samples of
    ``input_shape`` (any shape when None). Only flat vectors of the right size are
    reshaped to the sample shape; any other shape is refused."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise InvalidParameterError(f"{argument}: expected a numeric array, got dtype {X.dtype}")
    if X.ndim < 1:
        raise ShapeError(f"{argument}: expected a batch of samples, got a scalar")
    if X.shape[0] == 0:
        raise ShapeError(f"{argument}: expected at least one sample, got shape {X.shape}")
    if input_shape is not None and X.shape[1:] != tuple(input_shape):
        expected = (None,) + tuple(input_shape)
        hint = ""
        if X.shape[1:] == () or X.ndim == len(input_shape):
            hint = " (a single sample needs a batch axis: X[None])"
        raise ShapeError(f"{argument}: the model takes batches of shape {expected}, got {X.shape}{hint}")
    with np.errstate(over="ignore", invalid="ignore"):  # too large for the dtype: inf, refused below
        X = X.astype(dtype, copy=False)
    if not np.all(np.isfinite(X)):
        raise InvalidParameterError(f"{argument}: contains nan or inf values (in {np.dtype(dtype)})")
    return X


def check_numeric_targets(Y, n_samples: int, argument: str = "Y") -> np.ndarray:
    """Y as a numeric, finite array with one row per sample."""
    Y = np.asarray(Y)
    if Y.dtype.kind not in "biuf":
        raise InvalidParameterError(f"{argument}: expected numeric targets, got dtype {Y.dtype}")
    if Y.ndim < 1 or Y.shape[0] != n_samples:
        raise ShapeError(f"{argument}: expected {n_samples} targets (one per sample), got shape {Y.shape}")
    if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
        raise InvalidParameterError(f"{argument}: contains nan or inf values")
    return Y


def _one_id_per_sample(Y: np.ndarray) -> bool:
    """(N,), or an (N, 1) integer column (as pandas gives class ids)."""
    return Y.ndim == 1 or (Y.ndim == 2 and Y.shape[1] == 1 and Y.dtype.kind in "biu")


def is_class_ids(Y: np.ndarray, output_shape: tuple) -> bool:
    """Whether Y holds one class id per sample for a k-class output (N, k), k >= 2."""
    return len(output_shape) == 2 and output_shape[1] >= 2 and _one_id_per_sample(Y)


def n_outputs_from_targets(Y: np.ndarray, classification: bool, argument: str = "Y") -> int:
    """How many output units the targets ask for: k for class ids 0..k-1 (classification),
    else the size of one target row."""
    if classification and _one_id_per_sample(Y):
        n_classes = int(Y.max()) + 1 if Y.size else 1
        if n_classes > MAX_CLASSES_FROM_IDS:
            raise InvalidParameterError(f"{argument}: class ids go up to {n_classes - 1}; expected ids "
                                        f"0..k-1 with k at most {MAX_CLASSES_FROM_IDS:,}")
        return n_classes
    return int(np.prod(Y.shape[1:])) if Y.ndim > 1 else 1


def one_hot_targets(Y, output_shape: tuple, dtype, argument: str = "Y") -> np.ndarray:
    """Targets as an array of ``output_shape`` (with the batch axis) in ``dtype``: class ids
    become one-hot rows, (N,) becomes (N, 1) for a one-output model."""
    Y = np.asarray(Y)
    output_shape = tuple(output_shape)
    if is_class_ids(Y, output_shape) and Y.shape[0] == output_shape[0]:
        values = Y.reshape(-1)
        ids = values.astype(np.int64)
        k = output_shape[1]
        if np.any(ids != values) or ids.min(initial=0) < 0 or ids.max(initial=0) >= k:
            raise InvalidParameterError(f"{argument}: class ids must be integers in 0..{k - 1}, "
                                        f"got values from {values.min()} to {values.max()}")
        one_hot = np.zeros(output_shape, dtype=dtype)
        one_hot[np.arange(ids.size), ids] = 1
        return one_hot
    if Y.ndim == 1 and len(output_shape) == 2 and output_shape[1] == 1:
        Y = Y.reshape(-1, 1)
    if Y.shape != output_shape:
        raise ShapeError(f"{argument}: expected targets of shape {output_shape} (or class ids of "
                         f"shape ({output_shape[0]},)), got {Y.shape}")
    return Y.astype(dtype, copy=False)
