"""Fully connected (dense) layer."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .base import KernelLayer


class FullyConnected(KernelLayer):
    """Affine map followed by an activation.

    Forward::

        Z = X W + b
        Y = f(Z)

    Backward, given dL/dY::

        dZ = f'(Z) · dL/dY        (the activation's backward)
        dW = Xᵀ dZ
        db = Σ_rows dZ            (shape (1, n_out))
        dX = dZ Wᵀ                (skipped with ``input_gradient=False``: the model's first
                                   layer, whose input needs no gradient)

    Parameters
    ----------
    n_out : int
        Number of output units.
    activation : str
        Name of the activation f (see ``initialize_activation``).
    weight_init : str
        Name of the initialiser of W (see ``initialize_weights``); b starts at 0.

    Shapes: X (N, n_in), Y (N, n_out), W (n_in, n_out), b (1, n_out).

    >>> import numpy as np
    >>> layer = FullyConnected(3, "relu")
    >>> layer.forward(np.ones((2, 4))).shape
    (2, 3)
    >>> sorted(layer.parameters), layer.parameters["W"].shape
    (['W', 'b'], (4, 3))
    """

    type_name = "fully_connected"
    def __init__(self, n_out: int, activation="linear", weight_init: str = "xavier_uniform") -> None:
        super().__init__(n_out, activation, weight_init)

    def parameter_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        if len(input_shape) != 1:
            raise ShapeError(f"{self.name}: expected samples of shape (features,), got "
                             f"{tuple(input_shape)} (put a Flatten before it)")
        return {"W": (int(input_shape[0]), self.n_out), "b": (1, self.n_out)}

    def build(self, input_shape: tuple[int, ...]) -> None:
        """W (n_in, n_out) from the initialiser, b (1, n_out) zeros, and zero gradients."""
        super().build(input_shape)
        self.n_in = self.parameters["W"].shape[0]

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=2)
        if X.shape[1] != self.n_in:
            raise ShapeError(
                f"{self.name}: expected {self.n_in} input features (built from the first "
                f"input), got input of shape {X.shape}"
            )
        W, b = self._param("W", X.dtype), self._param("b", X.dtype)

        Z = X @ W
        Z += b  # in place: Z is our own fresh array

        if retain_derived:
            self.cache["X"], self.cache["Z"] = X, Z
        return self.activation(Z)

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dZ = f'(Z)·dL/dY, then the affine map's gradients (see ``backward_pre_activation``)."""
        (Z,) = self._require_cache("Z")
        dLdY = self._check_upstream(dLdY, Z.shape)
        return self.backward_pre_activation(self.activation.backward(Z, dLdY),
                                            input_gradient=input_gradient)

    def backward_pre_activation(self, dZ: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dW = Xᵀ dZ, db = Σ_rows dZ, and dX = dZ Wᵀ (None with ``input_gradient=False``)."""
        (X,) = self._require_cache("X")
        W = self._param("W", X.dtype)

        self.gradients["W"] = X.T @ dZ
        self.gradients["b"] = dZ.sum(axis=0, keepdims=True)
        return dZ @ W.T if input_gradient else None

    def _expected_input(self) -> str:
        return "(batch, features)"
