"""Feature scaling helpers (they return new arrays; inputs are never modified)."""

from __future__ import annotations

import numpy as np


def _as_float(X) -> np.ndarray:
    X = np.asarray(X)
    return X if X.dtype.kind == "f" else X.astype(np.float64)


def center(X, axis: int = 0) -> np.ndarray:
    """X minus its mean along ``axis``."""
    X = _as_float(X)
    return X - X.mean(axis=axis, keepdims=True)


def normalize(X, axis: int = 0) -> np.ndarray:
    """Scale to [0, 1] along ``axis``; constant columns map to 0."""
    X = _as_float(X)
    low, high = X.min(axis=axis, keepdims=True), X.max(axis=axis, keepdims=True)
    span = np.where(high > low, high - low, 1)
    return (X - low) / span


def standardize(X, axis: int = 0, eps: float = 1e-10) -> np.ndarray:
    """Zero mean and unit standard deviation along ``axis`` (eps keeps constant columns finite)."""
    X = _as_float(X)
    return (X - X.mean(axis=axis, keepdims=True)) / (X.std(axis=axis, keepdims=True) + eps)
