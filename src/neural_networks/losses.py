"""Loss functions: cross-entropy and squared error, each with its gradient.

``forward(Y, Y_hat)`` returns a Python float, ``backward(Y, Y_hat)`` returns
dL/dŶ with Ŷ's shape and dtype. Both average over the batch (axis 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .activations import SoftMax
from .errors import ShapeError, unknown_name


def probability_floor(dtype) -> float:
    """The ε below which cross-entropy clips probabilities: 1e-12 in float64, 1e-7 in float32.

    Large enough that log ε and 1/ε are finite in the dtype, small enough to be
    exact for any probability a softmax can usefully produce.
    """
    return 1e-7 if np.dtype(dtype).itemsize <= 4 else 1e-12


def _check_pair(name: str, Y, Y_hat) -> tuple[np.ndarray, np.ndarray]:
    Y, Y_hat = np.asarray(Y), np.asarray(Y_hat)
    if Y.shape != Y_hat.shape:
        raise ShapeError(f"{name}: Y and Y_hat must have the same shape, got {Y.shape} and {Y_hat.shape}")
    if Y_hat.ndim < 1 or Y_hat.shape[0] == 0:
        raise ShapeError(f"{name}: expected a non-empty batch (N, ...), got shape {Y_hat.shape}")
    if Y_hat.dtype.kind != "f":
        Y_hat = Y_hat.astype(np.float64)
    return Y.astype(Y_hat.dtype, copy=False), Y_hat


class Loss(ABC):
    """Base class: ``__call__`` is ``forward``; ``name`` is the factory name."""

    default_name = "loss"

    def __init__(self, name: str | None = None) -> None:
        self.name = name if name is not None else self.default_name

    def __call__(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        return self.forward(Y, Y_hat)

    @abstractmethod
    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        """The loss of predictions Y_hat for targets Y."""

    @abstractmethod
    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        """dL/dY_hat."""

    def pre_activation_gradient(self, activation, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray | None:
        """dL/dZ straight from the output Ŷ = activation(Z), when this loss and that
        activation have a fused, exact gradient; None otherwise (the model then goes
        through ``backward`` and the activation's Jacobian)."""
        return None

    def get_config(self) -> dict:
        return {"type": self.default_name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Cross-entropy of predicted probabilities Ŷ against targets Y (one-hot or probabilities).

    Forward::   L = −(1/N) Σ_{n, k} Y[n, k] · log max(Ŷ[n, k], ε)
    Backward::  dL/dŶ = −Y / (N · max(Ŷ, ε))

    with ε = ``probability_floor(Ŷ.dtype)``, so a probability of exactly 0 or 1
    never yields inf or nan; above ε both are exact.

    Shapes: Y, Ŷ (N, k).
    """

    default_name = "cross_entropy"

    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        Y, Y_hat = _check_pair("CrossEntropy", Y, Y_hat)
        clipped = np.maximum(Y_hat, probability_floor(Y_hat.dtype))
        return float(-np.sum(Y * np.log(clipped)) / Y.shape[0])

    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        Y, Y_hat = _check_pair("CrossEntropy", Y, Y_hat)
        clipped = np.maximum(Y_hat, probability_floor(Y_hat.dtype))
        return -Y / (Y.shape[0] * clipped)

    def pre_activation_gradient(self, activation, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray | None:
        """d(CE ∘ softmax)/dZ = (Ŷ − Y)/N: exact and stable, unlike −Y/Ŷ through the Jacobian."""
        if not isinstance(activation, SoftMax):
            return None
        Y, Y_hat = _check_pair("CrossEntropy", Y, Y_hat)
        return (Y_hat - Y) / Y.shape[0]


class L2(Loss):
    """Squared error, summed over outputs and averaged over the batch.

    Forward::   L = (1/N) Σ_n ‖Y[n] − Ŷ[n]‖²
    Backward::  dL/dŶ = 2 (Ŷ − Y) / N

    Shapes: Y, Ŷ (N, ...), typically (N, 1) or (N, d).
    """

    default_name = "l2"

    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        Y, Y_hat = _check_pair("L2", Y, Y_hat)
        residual = Y_hat - Y
        return float(np.sum(residual * residual) / Y.shape[0])

    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        Y, Y_hat = _check_pair("L2", Y, Y_hat)
        return 2 * (Y_hat - Y) / Y.shape[0]


LOSSES: dict[str, type[Loss]] = {"cross_entropy": CrossEntropy, "l2": L2}


def initialize_loss(name: str | Loss) -> Loss:
    """Build a loss by name ("cross_entropy", "l2"); a Loss instance is returned as is."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name.lower() not in LOSSES:
        raise unknown_name("loss", name, LOSSES)
    return LOSSES[name.lower()](name.lower())
