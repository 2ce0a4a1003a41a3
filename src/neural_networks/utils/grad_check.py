"""Central finite-difference gradient checks."""

from __future__ import annotations

from typing import Callable

import numpy as np


def numerical_gradient(fn: Callable, x: np.ndarray, dLdf: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """dL/dx of L = Σ fn(x) · dLdf by central differences, one element of x at a time.

    x is not modified: each probe works on a copy.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"check_gradients: x must be a float array, got dtype {x.dtype}")
    grad = np.zeros(x.shape, dtype=np.float64)
    probe = x.copy()
    for index in np.ndindex(x.shape):
        original = probe[index]
        probe[index] = original + h
        f_plus = np.asarray(fn(probe.copy()), dtype=np.float64)
        probe[index] = original - h
        f_minus = np.asarray(fn(probe.copy()), dtype=np.float64)
        probe[index] = original
        grad[index] = np.sum((f_plus - f_minus) * dLdf) / (2 * h)
    return grad


def check_gradients(
    fn: Callable, grad: np.ndarray, x: np.ndarray, dLdf: np.ndarray, h: float = 1e-6
) -> float:
    """Relative error ‖g_num − grad‖ / ‖g_num + grad‖ between an analytic gradient and
    central differences of L = Σ fn(x)·dLdf; 0.0 when both gradients are zero."""
    numerical = numerical_gradient(fn, x, dLdf, h)
    grad = np.asarray(grad, dtype=np.float64)
    denominator = np.linalg.norm(numerical + grad)
    numerator = np.linalg.norm(numerical - grad)
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return float(numerator / denominator)
