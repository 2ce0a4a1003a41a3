"""Flatten layer."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .base import Layer

KEEP_DIMS = ("first", -1, "last")


class Flatten(Layer):
    """Reshape each sample to a vector (a view; no copy, no parameters).

    Forward::

        keep_dim="first":  (N, d1, d2, ...) → (N, d1·d2·...)
        keep_dim=-1:       everything → (1, total)
        otherwise:         (..., d_last) → (−1, d_last)

    Backward reshapes dL/dY back to the input's shape.
    """

    type_name = "flatten"

    def __init__(self, keep_dim="first") -> None:
        super().__init__()
        self.keep_dim = keep_dim
        self.cache = OrderedDict(in_dims=[])

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim < 1:
            raise ValueError(f"{self.name}: expected an array with a batch axis, got shape {X.shape}")
        if retain_derived:
            self.cache["in_dims"] = X.shape
        if self.keep_dim == "first":
            return X.reshape(X.shape[0], -1)
        if self.keep_dim == -1:
            return X.reshape(1, -1)
        return X.reshape(-1, X.shape[-1])

    def backward(self, dLdY: np.ndarray) -> np.ndarray:
        (in_dims,) = self._require_cache("in_dims")
        dLdY = np.asarray(dLdY)
        if dLdY.size != math.prod(in_dims):
            raise ValueError(
                f"{self.name}: dLdY of shape {dLdY.shape} cannot be reshaped to the input shape {in_dims}"
            )
        return dLdY.reshape(in_dims)

    def output_shape(self, input_shape):
        if self.keep_dim == "first":
            return (math.prod(input_shape),)
        return super().output_shape(input_shape)

    def get_config(self) -> dict:
        return {"type": self.type_name, "keep_dim": self.keep_dim}
