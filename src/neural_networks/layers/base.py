"""The layer protocol (``Layer``) and the window helpers the image layers share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import ClassVar

import numpy as np

from ..activations import Activation, activation_config, initialize_activation
from ..errors import InvalidParameterError, NotBuiltError, ShapeError, UnknownNameError
from ..utils.random import generator_from_state, generator_state
from ..utils.validation import Integral, Interval, validate_params
from ..weights import initialize_weights


class Layer(ABC):
    """Base class of every layer: the protocol the model and the trainer rely on.

    Life cycle::

        layer = FullyConnected(10, "relu")   # __init__ stores and checks settings only
        layer.build((n_in,))                 # parameters, buffers, zero gradients
        Y = layer.forward(X)                 # builds on first call; caches for backward
        dX = layer.backward(dY)              # sets gradients; input_gradient=False skips dX

    Attributes
    ----------
    parameters : dict[str, ndarray]
        Trained arrays (``"W"``, ``"b"``), read afresh by every forward.
    gradients : dict[str, ndarray]
        dL/d(parameter), same keys and shapes; overwritten by every ``backward``.
    buffers : dict[str, ndarray]
        State saved with the model but not trained (running statistics); empty for most.
    cache : dict[str, object]
        What ``forward`` keeps for ``backward``.
    training : bool
        True in training mode; False makes the layer behave as in evaluation.
    built : bool
        True once ``build`` has run (for every layer, Flatten included).
    input_shape : tuple or None
        Shape of one input sample (no batch axis), set by ``build``.
    activation : Activation or None
        Layers with an activation also implement ``backward_pre_activation(dZ)``, which the
        model uses when the loss fuses with that activation (softmax + cross-entropy).
    dtype : numpy dtype or None
        dtype of the parameters; None means "the dtype of the first input".
    rng : numpy.random.Generator or None
        This layer's random source (initialisation, dropout masks), handed out by the
        model from its seed and saved in ``state_dict``; None draws a fresh one at build.
    """

    #: name of this layer type in configs and in ``initialize_layer``
    type_name: ClassVar[str] = "layer"
    #: what each ``__init__`` argument accepts (see ``utils.validation``)
    _parameter_constraints: ClassVar[dict] = {}

    def __init__(self) -> None:
        self.activation = None
        self.parameters: dict = OrderedDict()
        self.gradients: dict = OrderedDict()
        self.buffers: dict = OrderedDict()
        self.cache: dict = OrderedDict()
        self.training = True
        self.built = False
        self.input_shape: tuple[int, ...] | None = None
        self.dtype = None
        self.rng: np.random.Generator | None = None
        self.name = type(self).__name__

    # -- the protocol -------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...]) -> None:
        """Create parameters, buffers and zero gradients for samples of ``input_shape``.

        Subclasses create their arrays, then call ``super().build(input_shape)``."""
        self.input_shape = tuple(int(n) for n in input_shape)
        self.built = True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``."""
        return tuple(input_shape)

    def parameter_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes ``build(input_shape)`` gives the parameters, without allocating them
        (the loader compares them with a file's arrays before building anything)."""
        return {}

    @abstractmethod
    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        """The layer's output for a batch X; caches what backward needs when
        ``retain_derived`` (the course's name; the model passes False for inference)."""

    @abstractmethod
    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Given dL/d(output), store parameter gradients and return dL/d(input)
        (None when ``input_gradient`` is False: the model's first layer)."""

    def backward_pre_activation(self, dZ: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Backward from dL/dZ, the gradient before the activation (layers with one)."""
        raise NotImplementedError(f"{self.name} has no activation to backpropagate around")

    @abstractmethod
    def get_config(self) -> dict:
        """JSON-able settings, with ``"type"``, that ``from_config`` rebuilds the layer from."""

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        """Rebuild an (unbuilt) layer from ``get_config()``."""
        settings = {key: value for key, value in config.items() if key != "type"}
        return cls(**settings)

    def state_dict(self) -> dict:
        """Parameters, buffers and the random generator's state."""
        return {
            "parameters": dict(self.parameters),
            "buffers": dict(self.buffers),
            "rng": generator_state(self.rng),
        }

    def load_state_dict(self, state: dict) -> None:
        """Copy a ``state_dict`` into this built layer (shapes must match)."""
        if not self.built:
            raise NotBuiltError(f"{self.name}: build the layer before loading its state")
        for group in ("parameters", "buffers"):
            own, given = getattr(self, group), state.get(group, {})
            if set(own) != set(given):
                raise ShapeError(f"{self.name}: {group} {sorted(given)} do not match the layer's "
                                 f"{sorted(own)}")
            for key, value in given.items():
                value = np.asarray(value)
                if value.dtype.kind != "f":
                    raise ShapeError(f"{self.name}: {group[:-1]} {key} must hold floats, got {value.dtype}")
                if value.shape != own[key].shape:
                    raise ShapeError(f"{self.name}: {group[:-1]} {key} has shape {value.shape}, "
                                     f"the layer needs {own[key].shape}")
                own[key][...] = value
        if state.get("rng") is not None:
            self.rng = generator_from_state(state["rng"])

    # -- course API (thin aliases) ---------------------------------------------------------
    def _init_parameters(self, X_shape: tuple[int, ...], dtype=None) -> None:
        """The course's build: ``X_shape`` includes the batch axis (often -1)."""
        if dtype is not None and self.dtype is None:
            self.dtype = np.dtype(dtype)
        self.build(tuple(X_shape[1:]))

    def clear_gradients(self) -> None:
        """Empty the cache and zero the gradients (in place)."""
        self.cache = OrderedDict()
        for gradient in self.gradients.values():
            gradient[...] = 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X)

    # -- helpers for subclasses -------------------------------------------------------------
    def _param_dtype(self, input_dtype) -> np.dtype:
        return np.dtype(self.dtype) if self.dtype is not None else np.dtype(input_dtype)

    def _rng(self) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng()
        return self.rng

    def _param(self, key: str, dtype) -> np.ndarray:
        """parameters[key] in the computation's dtype (no copy when it already is)."""
        return np.asarray(self.parameters[key]).astype(dtype, copy=False)

    def _check_input(self, X, rank: int) -> np.ndarray:
        """Return X as a floating array of the given rank, or raise a clear error; builds
        the layer from the first input it sees."""
        X = np.asarray(X)
        if X.dtype.kind in "biu":
            X = X.astype(self._param_dtype(np.float64))
        elif X.dtype.kind != "f":
            raise InvalidParameterError(f"{self.name}: expected a numeric input array, got dtype {X.dtype}")
        if X.ndim != rank:
            raise ShapeError(
                f"{self.name}: expected a rank-{rank} input {self._expected_input()}, "
                f"got shape {X.shape}"
            )
        if not self.built:
            if self.dtype is None:
                self.dtype = X.dtype
            self.build(X.shape[1:])
        return X

    def _expected_input(self) -> str:
        return ""

    def _require_cache(self, *keys: str) -> list:
        missing = [key for key in keys if key not in self.cache]
        if missing:
            raise NotBuiltError(f"{self.name}: backward called before forward")
        return [self.cache[key] for key in keys]

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


class KernelLayer(Layer):
    """A layer Y = f(Z) with ``n_out`` output units whose weights come from a named
    initialiser: the settings, and the build of W and b, that FullyConnected, Conv2D and
    Elman share. Subclasses declare ``parameter_shapes`` (with "W" and "b" at least;
    every other weight comes from the initialiser too)."""

    _parameter_constraints = {
        "n_out": [Interval(Integral, 1, None)],
        "activation": [str, Activation, dict],
        "weight_init": [str],
    }

    def __init__(self, n_out: int, activation, weight_init: str) -> None:
        super().__init__()
        validate_params(self, n_out=n_out, activation=activation, weight_init=weight_init)
        self.n_out = int(n_out)
        self.n_in = None
        try:
            self.activation = initialize_activation(activation)
            self.init_weights = initialize_weights(weight_init, activation=self.activation.name)
        except UnknownNameError as error:  # say which layer got the unknown name
            raise UnknownNameError(f"{type(self).__name__}: {error}") from None
        self.weight_init = weight_init

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Every weight from the initialiser, b zeros (in ``parameter_shapes``' order), and
        zero gradients."""
        dtype, rng = self._param_dtype(np.float64), self._rng()
        self.parameters = OrderedDict(
            (key, np.zeros(shape, dtype=dtype) if key == "b" else self.init_weights(shape, rng=rng, dtype=dtype))
            for key, shape in self.parameter_shapes(input_shape).items())
        self.gradients = OrderedDict((key, np.zeros_like(value)) for key, value in self.parameters.items())
        super().build(input_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.n_out,)

    def get_config(self) -> dict:
        return {
            "type": self.type_name,
            "n_out": self.n_out,
            "activation": activation_config(self.activation),
            "weight_init": self.weight_init,
        }
