"""Batch normalisation (per feature, per image channel) and layer normalisation.

Both normalise with a mean and a biased variance, then scale by ``gamma`` and shift by
``beta``; they differ in the axes the statistics are taken over:

* ``BatchNorm1D`` on (N, d) and ``BatchNorm2D`` on NHWC (N, H, W, C): over the batch (and
  the image), one statistic per feature / channel; running averages for evaluation.
* ``LayerNorm`` on (..., d): over the last axis, one statistic per sample (and time step).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import numpy as np

from ..errors import ShapeError
from ..utils.validation import Integral, Interval, Real, StrOptions, validate_parameter, validate_params
from .base import Layer

#: what ``forward(X, mode=...)`` accepts: the course's names for the two modes
FORWARD_MODES = [None, StrOptions({"train", "test"})]


def column_sums(A: np.ndarray) -> np.ndarray:
    """Σ_r A[r] of a tall 2-D array (einsum: several times faster than ``A.sum(axis=0)``
    or a matrix-vector product on few columns, measured)."""
    return np.einsum("ij->j", A)


def column_dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Σ_r A[r]·B[r] column by column, without the temporary A·B."""
    return np.einsum("ij,ij->j", A, B)


def row_dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Σ_j A[..., j]·B[..., j] over the last axis (kept, of size 1), without the temporary A·B."""
    return np.einsum("...j,...j->...", A, B)[..., np.newaxis]


class _BatchNorm(Layer):
    """Batch normalisation over every axis but the last (shared by 1-D and 2-D).

    The computation works on ``rows``, X reshaped to (m, C) with m = the number of values
    per feature (N for ``BatchNorm1D``, N·H·W for ``BatchNorm2D``)."""

    _parameter_constraints = {
        "momentum": [Interval(Real, 0, 1)],
        "eps": [Interval(Real, 0, None, closed="neither")],
    }
    #: rank of the input, batch axis included
    _rank: ClassVar[int] = 2

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        validate_params(self, momentum=momentum, eps=eps)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.n_in = None  # features (channels), set by build

    def _create(self, n_features: int) -> None:
        """gamma (1, C) ones, beta (1, C) zeros, running_mean zeros, running_var ones."""
        dtype = self._param_dtype(np.float64)
        self.n_in = int(n_features)
        shape = (1, self.n_in)
        self.parameters = OrderedDict(gamma=np.ones(shape, dtype), beta=np.zeros(shape, dtype))
        self.gradients = OrderedDict(gamma=np.zeros(shape, dtype), beta=np.zeros(shape, dtype))
        self.buffers = OrderedDict(running_mean=np.zeros(shape, dtype), running_var=np.ones(shape, dtype))

    # -- forward ------------------------------------------------------------------------------
    def forward(self, X: np.ndarray, retain_derived: bool = True, mode: str | None = None) -> np.ndarray:
        """Normalise X; ``mode`` ("train" or "test", the course's argument) overrides
        ``self.training`` for this call only. A training-mode forward updates the running
        statistics, with or without ``retain_derived`` (as PyTorch's): inference must run
        in evaluation mode."""
        training = self._is_training(mode)
        X = self._check_input(X, rank=self._rank)
        if X.shape[-1] != self.n_in:
            raise ShapeError(f"{self.name}: expected {self.n_in} features (the last axis, built from "
                             f"the first input), got input of shape {X.shape}")
        rows = X.reshape(-1, self.n_in)  # (m, C), a view for a C-contiguous X
        if training:
            mu, var, X_hat = self._batch_statistics(rows, X.shape)
        else:
            mu, var = self._buffer("running_mean", X.dtype), self._buffer("running_var", X.dtype)
            X_hat = rows - mu
        X_hat *= 1.0 / np.sqrt(var + self.eps)
        Y = X_hat * self._param("gamma", X.dtype)
        Y += self._param("beta", X.dtype)

        if retain_derived:
            self.cache.update(X=X, X_hat=X_hat.reshape(X.shape), mu=mu, var=var,
                              mode="train" if training else "test",
                              running_mu=self.buffers["running_mean"].copy(),
                              running_var=self.buffers["running_var"].copy())
        return Y.reshape(X.shape)

    def _batch_statistics(self, rows: np.ndarray, X_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch mean and biased variance (1, C) and the centred rows; updates the running
        statistics."""
        m = rows.shape[0]
        if m < 2:
            raise ShapeError(
                f"{self.name}: training mode needs more than one value per feature to compute batch "
                f"statistics, got input of shape {tuple(X_shape)}; use a larger batch, or "
                f"evaluation mode (training=False) to normalise with the running statistics"
            )
        mu = (column_sums(rows) / m).reshape(1, -1)
        centered = rows - mu
        var = (column_dots(centered, centered) / m).reshape(1, -1)  # two passes: no cancellation
        self._update_running(mu, var * (m / (m - 1)))
        return mu, var, centered

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        # new arrays, not in-place updates: an array a caller handed in stays untouched
        for key, statistic in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[key]
            updated = self.momentum * running + (1.0 - self.momentum) * statistic
            self.buffers[key] = updated.astype(running.dtype, copy=False)

    def _buffer(self, key: str, dtype) -> np.ndarray:
        return np.asarray(self.buffers[key]).astype(dtype, copy=False)

    def _is_training(self, mode) -> bool:
        validate_parameter(self.name, "mode", mode, FORWARD_MODES)
        return self.training if mode is None else mode == "train"

    # -- backward -----------------------------------------------------------------------------
    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dγ = Σ dY·X̂, dβ = Σ dY (sums over every axis but the last), and dX.

        Reads only ``cache["X"]``, ``["X_hat"]``, ``["mu"]`` and ``["var"]`` (and the mode
        of the forward that set them; a cache filled by hand counts as training mode
        unless ``training`` is False)."""
        X, X_hat, _, var = self._require_cache("X", "X_hat", "mu", "var")
        X = np.asarray(X)
        dLdY = self._check_upstream(dLdY, X.shape)
        dtype = X.dtype
        dY = dLdY.reshape(-1, self.n_in)
        X_hat = np.asarray(X_hat).astype(dtype, copy=False).reshape(dY.shape)

        d_beta = column_sums(dY)
        d_gamma = column_dots(dY, X_hat)
        self.gradients["gamma"] = d_gamma.reshape(1, -1)
        self.gradients["beta"] = d_beta.reshape(1, -1)
        if not input_gradient:
            return None

        # dX = γ/σ · (dY − mean(dY) − X̂·mean(dY·X̂)) with batch statistics,
        # dX = γ/σ · dY with running ones (then σ does not depend on X)
        scale = self._param("gamma", dtype) / np.sqrt(np.asarray(var).astype(dtype, copy=False) + self.eps)
        if self.cache.get("mode", "train" if self.training else "test") == "test":
            return (dY * scale).reshape(X.shape)
        m = dY.shape[0]
        dX = X_hat * (d_gamma / -m)
        dX += dY
        dX -= d_beta / m
        dX *= scale
        return dX.reshape(X.shape)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict:
        return {"type": self.type_name, "momentum": self.momentum, "eps": self.eps}


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of each feature of (N, d) inputs (``torch.nn.BatchNorm1d(d)``).

    Forward in training mode (``training`` True), with μ, σ² the batch mean and the
    *biased* batch variance of each feature (over the N samples)::

        X̂ = (X − μ) / √(σ² + eps)
        Y = γ·X̂ + β
        running_mean ← momentum·running_mean + (1 − momentum)·μ
        running_var  ← momentum·running_var  + (1 − momentum)·σ²·N/(N − 1)   (unbiased)

    In evaluation mode μ and σ² are ``running_mean`` and ``running_var`` (not updated).

    Backward, given dL/dY (sums over the batch)::

        dγ = Σ dY·X̂        dβ = Σ dY
        training:    dX = γ/√(σ² + eps) · (dY − mean(dY) − X̂·mean(dY·X̂))
        evaluation:  dX = γ/√(σ² + eps) · dY

    Parameters
    ----------
    momentum : float in [0, 1]
        Weight of the old running statistic. PyTorch's ``momentum`` is the weight of the
        new one: our ``momentum=0.9`` is ``torch.nn.BatchNorm1d(momentum=0.1)``.
    eps : float > 0
        Added to the variance.
    n_in : int or None
        Number of features, if known in advance (checked against the first input);
        None takes it from the first input.

    Shapes: X and Y (N, d); parameters ``gamma`` (ones) and ``beta`` (zeros), (1, d);
    buffers ``running_mean`` (zeros) and ``running_var`` (ones), (1, d).

    A batch of one sample in training mode has no batch variance (PyTorch refuses it
    too): it is a ``ShapeError``; evaluation mode takes any batch size.

    The course's 2025 interface works too: ``forward(X, mode="train" | "test")`` overrides
    ``training`` for that call, ``cache["running_mu"]`` / ``cache["running_var"]`` hold
    the running statistics after each forward, and ``backward`` reads only
    ``cache["X"]``, ``["X_hat"]``, ``["mu"]`` and ``["var"]``. Unlike the course, whose
    running statistics both started at zeros and averaged the biased variance, ours
    follow PyTorch: running_var starts at ones and averages the unbiased variance.

    >>> import numpy as np
    >>> layer = BatchNorm1D()
    >>> layer.forward(np.array([[1.0, 10.0], [3.0, 30.0]])).round(4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> layer.buffers["running_mean"], layer.buffers["running_var"]
    (array([[0.2, 2. ]]), array([[ 1.1, 20.9]]))
    """

    type_name = "batchnorm1d"
    _parameter_constraints = {**_BatchNorm._parameter_constraints, "n_in": [None, Interval(Integral, 1, None)]}
    _rank = 2

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5, n_in: int | None = None) -> None:
        super().__init__(momentum=momentum, eps=eps)
        validate_params(self, n_in=n_in)
        self.n_in_setting = None if n_in is None else int(n_in)
        self.n_in = self.n_in_setting

    def build(self, input_shape: tuple[int, ...]) -> None:
        """gamma, beta, running_mean, running_var of shape (1, d) for samples of shape (d,)."""
        if len(input_shape) != 1:
            raise ShapeError(f"{self.name}: expected samples of shape (features,), got {tuple(input_shape)}")
        if self.n_in_setting is not None and input_shape[0] != self.n_in_setting:
            raise ShapeError(f"{self.name}: n_in={self.n_in_setting}, but the input has "
                             f"{input_shape[0]} features")
        self._create(input_shape[0])
        super().build(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_in": self.n_in_setting}

    def _expected_input(self) -> str:
        return "(batch, features)"


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of each channel of NHWC images (``torch.nn.BatchNorm2d(C)``).

    As ``BatchNorm1D``, with the statistics of channel c taken over the batch and the
    image, i.e. over the m = N·H·W values X[:, :, :, c]::

        X̂ = (X − μ_c) / √(σ²_c + eps),   Y = γ_c·X̂ + β_c
        running_var ← momentum·running_var + (1 − momentum)·σ²_c·m/(m − 1)

    and the backward of ``BatchNorm1D`` on X reshaped to (m, C). Our ``momentum=0.9`` is
    PyTorch's ``momentum=0.1``. Training mode needs m >= 2 (a ``ShapeError`` otherwise).

    Shapes: X and Y (N, H, W, C); ``gamma``, ``beta``, ``running_mean``, ``running_var``
    (1, C).

    >>> import numpy as np
    >>> X = np.arange(8.0).reshape(2, 2, 1, 2)       # channel 0: 0, 2, 4, 6
    >>> Y = BatchNorm2D().forward(X)
    >>> Y.shape, Y[..., 0].ravel().round(3)
    ((2, 2, 1, 2), array([-1.342, -0.447,  0.447,  1.342]))
    """

    type_name = "batchnorm2d"
    _rank = 4

    def build(self, input_shape: tuple[int, ...]) -> None:
        """gamma, beta, running_mean, running_var of shape (1, C) for images (H, W, C)."""
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expected images of shape (height, width, channels), "
                             f"got {tuple(input_shape)}")
        self._create(input_shape[-1])
        super().build(input_shape)

    def _expected_input(self) -> str:
        return "(batch, height, width, channels)"


class LayerNorm(Layer):
    """Layer normalisation over the last axis (``torch.nn.LayerNorm(d)``).

    Forward, with μ and σ² the mean and the biased variance of each row X[..., :]::

        X̂ = (X − μ) / √(σ² + eps)
        Y = γ·X̂ + β

    Backward, given dL/dY (g = γ·dY; means over the last axis, sums over the others)::

        dγ = Σ dY·X̂        dβ = Σ dY
        dX = (g − mean(g) − X̂·mean(g·X̂)) / √(σ² + eps)

    The same in training and evaluation (no running statistics).

    Parameters
    ----------
    eps : float > 0
        Added to the variance.

    Shapes: X and Y (N, ..., d), any rank >= 2; ``gamma`` (ones) and ``beta`` (zeros),
    (1, d).

    >>> import numpy as np
    >>> LayerNorm().forward(np.array([[1.0, 3.0], [10.0, 10.0]])).round(4)
    array([[-1.,  1.],
           [ 0.,  0.]])
    """

    type_name = "layernorm"
    _parameter_constraints = {"eps": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        validate_params(self, eps=eps)
        self.eps = float(eps)
        self.n_in = None  # size of the last axis, set by build

    def build(self, input_shape: tuple[int, ...]) -> None:
        """gamma (1, d) ones and beta (1, d) zeros for samples of shape (..., d)."""
        if len(input_shape) < 1:
            raise ShapeError(f"{self.name}: expected samples with at least one axis, got {tuple(input_shape)}")
        dtype = self._param_dtype(np.float64)
        self.n_in = int(input_shape[-1])
        shape = (1, self.n_in)
        self.parameters = OrderedDict(gamma=np.ones(shape, dtype), beta=np.zeros(shape, dtype))
        self.gradients = OrderedDict(gamma=np.zeros(shape, dtype), beta=np.zeros(shape, dtype))
        super().build(input_shape)

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        if np.ndim(X) < 2:
            raise ShapeError(f"{self.name}: expected an input of rank >= 2 (batch, ..., features), "
                             f"got shape {np.shape(X)}")
        X = self._check_input(X, rank=np.ndim(X))
        if X.shape[-1] != self.n_in:
            raise ShapeError(f"{self.name}: expected {self.n_in} features on the last axis (built from "
                             f"the first input), got input of shape {X.shape}")
        mu = X.mean(axis=-1, keepdims=True)
        X_hat = X - mu
        var = row_dots(X_hat, X_hat) / self.n_in
        inv_std = 1.0 / np.sqrt(var + self.eps)
        X_hat *= inv_std
        Y = X_hat * self._param("gamma", X.dtype)
        Y += self._param("beta", X.dtype)
        if retain_derived:
            self.cache.update(X_hat=X_hat, inv_std=inv_std)
        return Y

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """dγ = Σ dY·X̂, dβ = Σ dY, dX = (g − mean(g) − X̂·mean(g·X̂))/σ with g = γ·dY."""
        X_hat, inv_std = self._require_cache("X_hat", "inv_std")
        dLdY = self._check_upstream(dLdY, X_hat.shape)
        rows, X_hat_rows = dLdY.reshape(-1, self.n_in), X_hat.reshape(-1, self.n_in)
        self.gradients["gamma"] = column_dots(rows, X_hat_rows).reshape(1, -1)
        self.gradients["beta"] = column_sums(rows).reshape(1, -1)
        if not input_gradient:
            return None
        g = dLdY * self._param("gamma", X_hat.dtype)
        dX = X_hat * (row_dots(g, X_hat) / -self.n_in)
        dX += g
        dX -= g.mean(axis=-1, keepdims=True)
        dX *= inv_std
        return dX

    def get_config(self) -> dict:
        return {"type": self.type_name, "eps": self.eps}

    def _expected_input(self) -> str:
        return "(batch, ..., features)"
