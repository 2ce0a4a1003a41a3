"""Fully connected (dense) layer."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..activations import initialize_activation
from ..errors import UnknownNameError
from ..weights import initialize_weights
from .base import Layer


class FullyConnected(Layer):
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
    """

    type_name = "fully_connected"
    can_skip_input_gradient = True

    def __init__(self, n_out: int, activation="linear", weight_init: str = "xavier_uniform") -> None:
        super().__init__()
        if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
            raise ValueError(f"FullyConnected: n_out must be a positive int, got {n_out!r}")
        self.n_out = int(n_out)
        try:
            self.activation = initialize_activation(activation)
            self.init_weights = initialize_weights(weight_init, activation=self.activation.name)
        except UnknownNameError as error:  # say which layer got the unknown name
            raise UnknownNameError(f"FullyConnected: {error}") from None
        self.weight_init = weight_init

    def _init_parameters(self, X_shape: tuple[int, ...], dtype=None) -> None:
        """Create W, b and zero gradients for inputs of shape (N, n_in); N may be -1."""
        self.n_in = int(X_shape[1])
        dtype = self._param_dtype(np.float64 if dtype is None else dtype)
        W = self.init_weights((self.n_in, self.n_out), rng=self.rng, dtype=dtype)
        b = np.zeros((1, self.n_out), dtype=dtype)
        self.parameters = OrderedDict(W=W, b=b)
        self.gradients = OrderedDict(W=np.zeros_like(W), b=np.zeros_like(b))
        self.cache = OrderedDict(X=[], Z=[])

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=2)
        if not self.built:
            self._init_parameters(X.shape, X.dtype)
        if X.shape[1] != self.n_in:
            raise ValueError(
                f"{self.name}: expected {self.n_in} input features (built from the first "
                f"input), got input of shape {X.shape}"
            )
        W, b = self._param("W", X.dtype), self._param("b", X.dtype)

        Z = X @ W
        Z += b  # in place: Z is our own fresh array

        if retain_derived:
            self.cache["X"], self.cache["Z"] = X, Z
        return self.activation(Z)

    def backward(self, dLdY: np.ndarray, input_gradient: bool = True) -> np.ndarray | None:
        """Store dW, db and return dX; with ``input_gradient=False`` skip dX (return None)."""
        X, Z = self._require_cache("X", "Z")
        dLdY = self._check_upstream(dLdY, Z.shape)
        return self.backward_pre_activation(self.activation.backward(Z, dLdY), input_gradient)

    def backward_pre_activation(self, dZ: np.ndarray, input_gradient: bool = True) -> np.ndarray | None:
        """Backward from dL/dZ (used by the model's fused softmax + cross-entropy)."""
        (X,) = self._require_cache("X")
        W = self._param("W", X.dtype)

        self.gradients["W"] = X.T @ dZ
        self.gradients["b"] = dZ.sum(axis=0, keepdims=True)
        return dZ @ W.T if input_gradient else None

    def output_shape(self, input_shape):
        return (self.n_out,)

    def get_config(self) -> dict:
        return {
            "type": self.type_name,
            "n_out": self.n_out,
            "activation": self.activation.name,
            "weight_init": self.weight_init,
        }

    def _expected_input(self) -> str:
        return "(batch, features)"
