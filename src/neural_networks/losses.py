"""Loss functions, each with its gradient: cross-entropy, binary cross-entropy, squared
error (L2), absolute error (MAE) and Huber.

``forward(Y, Y_hat)`` returns a Python float, ``backward(Y, Y_hat)`` returns
dL/dŶ with Ŷ's shape and dtype. Every loss sums over the outputs of a sample and
averages over the batch (axis 0): PyTorch's ``reduction="sum"`` divided by N.

``pre_activation_gradient(activation, Y, Y_hat)`` gives dL/dZ directly when the loss and
the output activation fuse (softmax + cross-entropy, sigmoid + binary cross-entropy);
``check_output_layer(activation, n_outputs)`` refuses an output layer the loss cannot
work with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from .activations import Sigmoid, SoftMax
from .errors import InvalidParameterError, ShapeError
from .utils.validation import Interval, Real, build_from_kwargs, lookup, validate_params


def probability_floor(dtype) -> float:
    """The ε below which the cross-entropies clip probabilities: 1e-12 in float64, 1e-7 in float32.

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


def _activation_label(activation) -> str:
    """How an error message names an output activation."""
    if activation is None:
        return "no activation (linear)"
    return repr(getattr(activation, "name", type(activation).__name__))


class Loss(ABC):
    """Base class: ``__call__`` is ``forward``; ``name`` is the factory name.

    Settings, if any, are the keys of ``_parameter_constraints``, stored under the same
    attribute names; ``get_config`` lists them.
    """

    default_name = "loss"
    _parameter_constraints: dict[str, list] = {}

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

    def check_output_layer(self, activation, n_outputs: int) -> None:
        """Raise ``InvalidParameterError`` if this loss cannot train an output layer with
        this activation (an ``Activation``, or None for linear) and ``n_outputs`` units
        per sample; the default accepts any output."""

    def accuracy(self, Y: np.ndarray, Y_hat: np.ndarray) -> float | None:
        """Fraction of correct predictions for a classification loss; None (the default)
        for regression."""
        return None

    def diverged(self, value: float, dtype, n_outputs: int) -> bool:
        """Whether a mean loss of ``value`` (outputs of ``n_outputs`` units) means training
        has diverged although it is finite (a clipped loss hides a divergence: the
        probabilities hit the floor)."""
        return False

    def settings(self) -> dict[str, Any]:
        """The loss's settings (JSON-able), e.g. ``{"delta": 1.0}``."""
        return {key: getattr(self, key) for key in self._parameter_constraints}

    def get_config(self) -> dict[str, Any]:
        """``{"type": name, **settings}``; ``initialize_loss(config)`` rebuilds it."""
        return {"type": self.default_name, **self.settings()}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings().items())
        return f"{type(self).__name__}({settings})"


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

    def accuracy(self, Y: np.ndarray, Y_hat: np.ndarray) -> float | None:
        """Fraction of rows whose most probable class is the target's."""
        return float(np.mean(np.argmax(Y_hat, axis=1) == np.argmax(Y, axis=1)))

    def diverged(self, value: float, dtype, n_outputs: int) -> bool:
        """The mean loss is at least half of −log ε, the most one sample can score (the
        true class's probability is at the floor for most samples), and above twice the
        chance level log k, so that no honest start with k classes can trip it."""
        ceiling = -np.log(probability_floor(dtype))
        return value >= max(0.5 * ceiling, 2 * np.log(max(n_outputs, 2)))

    def check_output_layer(self, activation, n_outputs: int) -> None:
        """Cross-entropy needs probabilities over at least two classes: a softmax over
        >= 2 units. On a sigmoid, relu or linear output it is unbounded or meaningless, and
        a one-unit softmax always outputs 1 (loss 0, nothing learned)."""
        binary_hint = ("for a one-output (binary) classifier use loss='binary_cross_entropy' "
                       "with a 'sigmoid' output unit")
        if not isinstance(activation, SoftMax):
            raise InvalidParameterError(
                f"loss 'cross_entropy' needs a 'softmax' output layer (class probabilities), "
                f"but the output layer has {_activation_label(activation)}; use "
                f"activation='softmax' over the classes, or {binary_hint}")
        if n_outputs < 2:
            raise InvalidParameterError(
                f"loss 'cross_entropy' needs a softmax over at least 2 output units, got "
                f"{n_outputs}: a one-unit softmax always outputs 1 and learns nothing; "
                f"{binary_hint}")


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


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy of probabilities Ŷ (a sigmoid output) against targets Y in [0, 1].

    Forward::   L = −(1/N) Σ_{n, k} [Y·log max(Ŷ, ε) + (1 − Y)·log max(1 − Ŷ, ε)]
    Backward::  dL/dŶ = [(1 − Y)/max(1 − Ŷ, ε) − Y/max(Ŷ, ε)] / N
    Fused with the sigmoid Ŷ = σ(Z)::  dL/dZ = (Ŷ − Y)/N

    with ε = ``probability_floor(Ŷ.dtype)`` (1e-12 in float64, 1e-7 in float32), so a
    prediction of exactly 0 or 1 costs at most −log ε per output, never inf or nan; for
    ε <= Ŷ <= 1 − ε both are PyTorch's ``BCELoss(reduction="sum")`` divided by N.
    Targets outside [0, 1] (or nan) are an error.

    Shapes: Y, Ŷ (N, ...), typically (N, 1) for one binary output.

    >>> import numpy as np
    >>> Y, Y_hat = np.array([[1.0], [0.0]]), np.array([[0.8], [0.4]])
    >>> round(BinaryCrossEntropy()(Y, Y_hat), 6)  # −(log 0.8 + log 0.6)/2
    0.366985
    >>> BinaryCrossEntropy().backward(Y, Y_hat)  # [−1/0.8, 1/0.6]/2
    array([[-0.625     ],
           [ 0.83333333]])
    """

    default_name = "binary_cross_entropy"

    def _check(self, Y, Y_hat) -> tuple[np.ndarray, np.ndarray]:
        Y, Y_hat = _check_pair("BinaryCrossEntropy", Y, Y_hat)
        inside = (Y >= 0) & (Y <= 1)  # nan fails both comparisons
        if not np.all(inside):
            outside = Y[~inside]
            raise InvalidParameterError(
                f"BinaryCrossEntropy: targets Y must lie in [0, 1], got {outside.size} value(s) "
                f"outside it, for example {float(outside.flat[0])}")
        return Y, Y_hat

    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        Y, Y_hat = self._check(Y, Y_hat)
        eps = probability_floor(Y_hat.dtype)
        log_p = np.log(np.maximum(Y_hat, eps))
        log_not_p = np.log(np.maximum(1 - Y_hat, eps))
        return float(-np.sum(Y * log_p + (1 - Y) * log_not_p) / Y.shape[0])

    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        Y, Y_hat = self._check(Y, Y_hat)
        eps = probability_floor(Y_hat.dtype)
        return ((1 - Y) / np.maximum(1 - Y_hat, eps) - Y / np.maximum(Y_hat, eps)) / Y.shape[0]

    def pre_activation_gradient(self, activation, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray | None:
        """d(BCE ∘ sigmoid)/dZ = (Ŷ − Y)/N: exact and finite even where Ŷ rounds to 0 or 1."""
        if not isinstance(activation, Sigmoid):
            return None
        Y, Y_hat = self._check(Y, Y_hat)
        return (Y_hat - Y) / Y.shape[0]

    def accuracy(self, Y: np.ndarray, Y_hat: np.ndarray) -> float | None:
        """Fraction of outputs on the right side of 0.5 (strictly above is class 1, as
        Keras: σ(0) = 0.5 counts as class 0)."""
        return float(np.mean((Y_hat > 0.5) == (Y > 0.5)))

    def diverged(self, value: float, dtype, n_outputs: int) -> bool:
        """As cross-entropy, per output (the loss sums the outputs): most outputs'
        probability of their target is at the floor (chance level is log 2 per output)."""
        return value >= n_outputs * max(0.5 * -np.log(probability_floor(dtype)), 2 * np.log(2))

    def check_output_layer(self, activation, n_outputs: int) -> None:
        """Binary cross-entropy needs probabilities in [0, 1] per output: a sigmoid."""
        if isinstance(activation, Sigmoid):
            return
        hint = (" (for a softmax over classes use loss='cross_entropy')"
                if isinstance(activation, SoftMax) else "")
        raise InvalidParameterError(
            f"loss 'binary_cross_entropy' needs a 'sigmoid' output layer (one probability "
            f"per output), but the output layer has {_activation_label(activation)}{hint}")


class MAE(Loss):
    """Absolute error (L1), summed over outputs and averaged over the batch.

    Forward::   L = (1/N) Σ_{n, k} |Ŷ − Y|
    Backward::  dL/dŶ = sign(Ŷ − Y) / N      (0 where Ŷ = Y, as PyTorch)

    PyTorch's ``L1Loss(reduction="sum")`` divided by N. Shapes: Y, Ŷ (N, ...).

    >>> import numpy as np
    >>> Y, Y_hat = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [3.0, 0.0]])
    >>> MAE()(Y, Y_hat)  # (0 + 2 + 3 + 0)/2
    2.5
    >>> MAE().backward(Y, Y_hat)
    array([[ 0. , -0.5],
           [ 0.5,  0. ]])
    """

    default_name = "mae"

    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        Y, Y_hat = _check_pair("MAE", Y, Y_hat)
        return float(np.sum(np.abs(Y_hat - Y)) / Y.shape[0])

    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        Y, Y_hat = _check_pair("MAE", Y, Y_hat)
        return np.sign(Y_hat - Y) / Y.shape[0]


class Huber(Loss):
    """Huber loss: squared near the target, absolute beyond ``delta``.

    With r = Ŷ − Y and δ = ``delta`` (a finite real > 0, default 1)::

        Forward::   L = (1/N) Σ_{n, k} ( ½ r²           if |r| < δ
                                         δ·(|r| − ½ δ)   otherwise )
        Backward::  dL/dŶ = clip(r, −δ, δ) / N

    PyTorch's ``HuberLoss(reduction="sum", delta=δ)`` divided by N (both branches
    meet at |r| = δ with value ½ δ² and slope ±δ). Shapes: Y, Ŷ (N, ...).

    >>> import numpy as np
    >>> Y, Y_hat = np.zeros((2, 1)), np.array([[0.5], [3.0]])
    >>> Huber(delta=1.0)(Y, Y_hat)  # (½·0.25 + (3 − ½))/2
    1.3125
    >>> Huber(delta=1.0).backward(Y, Y_hat)
    array([[0.25],
           [0.5 ]])
    """

    default_name = "huber"
    _parameter_constraints = {"delta": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, delta: float = 1.0, name: str | None = None) -> None:
        validate_params(self, delta=delta)
        super().__init__(name)
        self.delta = float(delta)  # a Python float keeps float32 float32

    def forward(self, Y: np.ndarray, Y_hat: np.ndarray) -> float:
        Y, Y_hat = _check_pair("Huber", Y, Y_hat)
        size = np.abs(Y_hat - Y)
        quadratic = 0.5 * size * size
        linear = self.delta * (size - 0.5 * self.delta)
        return float(np.sum(np.where(size < self.delta, quadratic, linear)) / Y.shape[0])

    def backward(self, Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
        Y, Y_hat = _check_pair("Huber", Y, Y_hat)
        return np.clip(Y_hat - Y, -self.delta, self.delta) / Y.shape[0]


LOSSES: dict[str, type[Loss]] = {
    "cross_entropy": CrossEntropy,
    "l2": L2,
    "binary_cross_entropy": BinaryCrossEntropy,
    "mae": MAE,
    "huber": Huber,
}


def initialize_loss(spec: str | Mapping | Loss) -> Loss:
    """Build a loss from its name ("cross_entropy", "l2", "binary_cross_entropy", "mae",
    "huber"; case-insensitive) or from its ``get_config()`` dict; a Loss is returned as is.

    >>> initialize_loss({"type": "huber", "delta": 0.5})
    Huber(delta=0.5)
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, Mapping):
        settings = dict(spec)
        if "type" not in settings:
            raise InvalidParameterError(
                f"a loss config must be a dict with a 'type' key (the loss's name), got {spec!r}")
        return build_from_kwargs(lookup(LOSSES, settings.pop("type"), "loss"), settings)
    return lookup(LOSSES, spec, "loss")()


def loss_config(loss: Loss) -> str | dict[str, Any]:
    """What a model's config stores for its loss: the bare name when the loss has no
    settings ("l2"), else its ``get_config()`` dict; ``initialize_loss`` rebuilds it.

    >>> loss_config(L2()), loss_config(Huber(delta=2.0))
    ('l2', {'type': 'huber', 'delta': 2.0})
    """
    config = loss.get_config()
    return config["type"] if len(config) == 1 else config
