"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..utils.validation import Interval, Real, validate_params
from .base import Layer


class Dropout(Layer):
    """Inverted dropout: zero each value with probability p and scale the kept ones by
    1/(1 − p), in training mode; the identity in evaluation mode and when p == 0.

    Forward in training mode, with a fresh mask per call drawn from the layer's generator
    (``self._rng()``, seeded by the model, so runs are reproducible and a resumed run
    draws the masks an uninterrupted one would)::

        mask = rng.random(X.shape) >= p          (each value kept with probability 1 − p)
        Y    = X · mask / (1 − p)

    Backward, given dL/dY: dX = dL/dY · mask / (1 − p), with the mask of the last forward.

    Parameters
    ----------
    p : float in [0, 1)
        Probability of dropping a value (p = 1 would drop everything).

    Shapes: X and Y (N, ...), any shape; no parameters. The generator's state is saved
    by ``state_dict``.

    >>> import numpy as np
    >>> layer = Dropout(0.5)
    >>> layer.rng = np.random.default_rng(0)
    >>> layer.forward(np.ones((2, 4)))
    array([[2., 0., 0., 0.],
           [2., 2., 2., 2.]])
    >>> layer.training = False
    >>> layer.forward(np.ones((2, 4)))
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """

    type_name = "dropout"
    _parameter_constraints = {"p": [Interval(Real, 0, 1, closed="left")]}

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        validate_params(self, p=p)
        self.p = float(p)

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        if np.ndim(X) < 1:
            raise ShapeError(f"{self.name}: expected an array with a batch axis, got shape {np.shape(X)}")
        X = self._check_input(X, rank=np.ndim(X))
        if not self.training or self.p == 0.0:
            scaled_mask = None  # the identity: no random numbers drawn
            Y = X
        else:
            keep = self._rng().random(X.shape) >= self.p
            scaled_mask = keep.astype(X.dtype)
            scaled_mask *= 1.0 / (1.0 - self.p)
            Y = X * scaled_mask
        if retain_derived:
            self.cache["scaled_mask"], self.cache["shape"] = scaled_mask, X.shape
        return Y

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dX = dL/dY · mask / (1 − p) (dL/dY itself in evaluation mode or with p == 0)."""
        scaled_mask, shape = self._require_cache("scaled_mask", "shape")
        dLdY = self._check_upstream(dLdY, shape)
        if not input_gradient:
            return None
        return dLdY if scaled_mask is None else dLdY * scaled_mask

    def get_config(self) -> dict:
        return {"type": self.type_name, "p": self.p}
