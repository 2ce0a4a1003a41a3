"""Flatten layer."""

from __future__ import annotations

import math
import numpy as np

from ..errors import ShapeError
from ..utils.validation import Options, StrOptions, validate_params
from .base import Layer


class Flatten(Layer):
    """Reshape each sample to a vector (a view; no copy, no parameters).

    Forward::

        keep_dim="first":  (N, d1, d2, ...) → (N, d1·d2·...)
        keep_dim=-1:       everything → (1, total)
        otherwise:         (..., d_last) → (−1, d_last)

    Backward reshapes dL/dY back to the input's shape.

    >>> import numpy as np
    >>> Flatten().forward(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    type_name = "flatten"
    _parameter_constraints = {"keep_dim": [StrOptions({"first", "last"}), Options((-1,))]}

    def __init__(self, keep_dim="first") -> None:
        super().__init__()
        validate_params(self, keep_dim=keep_dim)
        self.keep_dim = keep_dim

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim < 1:
            raise ShapeError(f"{self.name}: expected an array with a batch axis, got shape {X.shape}")
        if not self.built:
            self.build(X.shape[1:])
        if retain_derived:
            self.cache["in_dims"] = X.shape
        if self.keep_dim == "first":
            return X.reshape(X.shape[0], -1)
        if self.keep_dim == -1:
            return X.reshape(1, -1)
        return X.reshape(-1, X.shape[-1])

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dL/dX is dL/dY reshaped back to the input's shape."""
        (in_dims,) = self._require_cache("in_dims")
        dLdY = np.asarray(dLdY)
        if dLdY.size != math.prod(in_dims):
            raise ShapeError(
                f"{self.name}: dLdY of shape {dLdY.shape} cannot be reshaped to the input shape {in_dims}"
            )
        return dLdY.reshape(in_dims) if input_gradient else None

    def output_shape(self, input_shape):
        """One row's shape: "first" and -1 give every value of a sample in one row (-1
        also puts the whole batch in that one row); "last" gives rows of the last axis
        (the batch axis grows by the other axes' sizes)."""
        if self.keep_dim == "last":
            return (int(input_shape[-1]),) if input_shape else (1,)
        return (math.prod(input_shape),)

    def get_config(self) -> dict:
        return {"type": self.type_name, "keep_dim": self.keep_dim}
