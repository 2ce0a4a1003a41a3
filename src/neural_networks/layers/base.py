"""The Layer base class and the helpers every layer shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..errors import ShapeError


class Layer(ABC):
    """Base class of all layers.

    Attributes
    ----------
    parameters : OrderedDict[str, ndarray]
        Trainable arrays (``"W"``, ``"b"``), created lazily by the first forward
        from the input's shape and read afresh by every forward, so a caller may
        replace them between calls.
    gradients : OrderedDict[str, ndarray]
        dL/d(parameter), same keys and shapes as ``parameters``; overwritten by
        every ``backward``.
    cache : OrderedDict[str, object]
        What ``forward`` keeps for ``backward``.
    dtype : numpy dtype or None
        dtype of the parameters; None means "the dtype of the first input".
    rng : numpy.random.Generator or None
        Random source for weight initialisation; None uses NumPy's global state.
    """

    #: name of this layer type in configs and in ``initialize_layer``
    type_name = "layer"
    #: whether ``backward`` (and ``backward_pre_activation``) take ``input_gradient=False``
    #: to skip dL/dX, which the model asks of its first layer
    can_skip_input_gradient = False

    def __init__(self) -> None:
        self.activation = None
        self.n_in = None
        self.n_out = None
        self.parameters: OrderedDict = OrderedDict()
        self.cache: OrderedDict = OrderedDict()
        self.gradients: OrderedDict = OrderedDict()
        self.dtype = None
        self.rng = None
        self.name = type(self).__name__

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X)

    @abstractmethod
    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        """Compute the layer's output; cache what backward needs when ``retain_derived``."""

    @abstractmethod
    def backward(self, dLdY: np.ndarray) -> np.ndarray:
        """Given dL/d(output), store parameter gradients and return dL/d(input)."""

    @abstractmethod
    def get_config(self) -> dict:
        """JSON-able settings that rebuild this layer with ``layer_from_config``."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``."""
        return tuple(input_shape)

    # -- course API -------------------------------------------------------------
    def clear_gradients(self) -> None:
        """Empty the cache and zero the gradients."""
        self.cache = OrderedDict((key, []) for key in self.cache)
        self.gradients = OrderedDict(
            (key, np.zeros_like(value)) for key, value in self.gradients.items()
        )

    def forward_with_param(self, param_name: str, X: np.ndarray) -> Callable:
        """A function of one parameter's value that runs ``forward(X)`` (for gradient checks)."""

        def inner_forward(param_val: np.ndarray) -> np.ndarray:
            self.parameters[param_name] = param_val
            return self.forward(X)

        return inner_forward

    def _get_parameters(self) -> list:
        return list(self.parameters.values())

    def _get_cache(self) -> list:
        return list(self.cache.values())

    def _get_gradients(self) -> list:
        return list(self.gradients.values())

    # -- helpers for subclasses ---------------------------------------------------
    @property
    def built(self) -> bool:
        return self.n_in is not None

    def _param_dtype(self, input_dtype) -> np.dtype:
        return np.dtype(self.dtype) if self.dtype is not None else np.dtype(input_dtype)

    def _param(self, key: str, dtype) -> np.ndarray:
        """parameters[key] in the computation's dtype (no copy when it already is)."""
        return np.asarray(self.parameters[key]).astype(dtype, copy=False)

    def _check_input(self, X, rank: int) -> np.ndarray:
        """Return X as a floating array of the given rank, or raise a clear error."""
        X = np.asarray(X)
        if X.dtype.kind in "biu":
            X = X.astype(self._param_dtype(np.float64))
        elif X.dtype.kind != "f":
            raise TypeError(f"{self.name}: expected a numeric input array, got dtype {X.dtype}")
        if X.ndim != rank:
            raise ShapeError(
                f"{self.name}: expected a rank-{rank} input {self._expected_input()}, "
                f"got shape {X.shape}"
            )
        return X

    def _expected_input(self) -> str:
        return ""

    def _require_cache(self, *keys: str) -> list:
        values = [self.cache.get(key) for key in keys]
        if any(value is None or (isinstance(value, list) and not value) for value in values):
            raise RuntimeError(f"{self.name}: backward called before forward")
        return values

    def _check_upstream(self, dLdY, expected_shape: tuple[int, ...]) -> np.ndarray:
        dLdY = np.asarray(dLdY)
        if dLdY.shape != tuple(expected_shape):
            raise ShapeError(
                f"{self.name}: dLdY must have the output's shape {tuple(expected_shape)}, "
                f"got {dLdY.shape}"
            )
        return dLdY

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({settings})"


def as_pair(value, argument: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as a validated (rows, cols) tuple."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        pair = tuple(pair)
        valid = len(pair) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair
        )
    except TypeError:
        valid = False
    if not valid or isinstance(value, bool):
        raise TypeError(f"{layer}: {argument} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{layer}: {argument} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def resolve_pad(pad, kernel_shape: tuple[int, int], layer: str) -> tuple[int, int]:
    """"same" → ((kh-1)//2, (kw-1)//2), "valid" → (0, 0), an int or a pair as given."""
    if isinstance(pad, str):
        if pad == "same":
            return (kernel_shape[0] - 1) // 2, (kernel_shape[1] - 1) // 2
        if pad == "valid":
            return 0, 0
        raise ValueError(f"{layer}: pad must be 'same', 'valid', an int or a pair, got {pad!r}")
    return as_pair(pad, "pad", layer, minimum=0)


def output_size(size: int, kernel: int, pad: int, stride: int, layer: str, axis: str) -> int:
    """floor((size + 2·pad − kernel) / stride) + 1, or a clear error when the kernel does not fit."""
    if size + 2 * pad < kernel:
        raise ShapeError(
            f"{layer}: kernel {axis} {kernel} is larger than the padded input {axis} "
            f"{size} + 2·{pad} = {size + 2 * pad}"
        )
    return (size + 2 * pad - kernel) // stride + 1


def output_hw(X_shape, kernel_shape, stride, pad, layer: str) -> tuple[int, int]:
    """(out_height, out_width) of a sliding-window layer on NHWC inputs of ``X_shape``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_shape, stride, pad
    return (output_size(X_shape[1], kh, ph, sh, layer, "height"),
            output_size(X_shape[2], kw, pw, sw, layer, "width"))


def window(X_pad: np.ndarray, i: int, j: int, stride, out_shape) -> np.ndarray:
    """View of the cells at kernel offset (i, j) of every window: (N, H', W', C)."""
    (sh, sw), (out_height, out_width) = stride, out_shape
    return X_pad[:, i : i + sh * (out_height - 1) + 1 : sh, j : j + sw * (out_width - 1) + 1 : sw, :]


def pad_spatial(X: np.ndarray, pad: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NHWC array (no copy when there is no padding)."""
    ph, pw = pad
    if ph == 0 and pw == 0:
        return X
    return np.pad(X, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=value)
