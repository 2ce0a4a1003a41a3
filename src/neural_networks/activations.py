"""Element-wise activation functions and softmax, each with its backward pass.

Every activation maps a pre-activation array ``Z`` (any shape) to ``Y = f(Z)``;
``backward(Z, dY)`` takes the same ``Z`` and the upstream gradient ``dY = dL/dY``
and returns ``dL/dZ``. Nothing is cached, nothing is modified in place, and the
floating dtype of ``Z`` is kept (float32 in, float32 out).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .errors import unknown_name


def keep_where(mask: np.ndarray, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.where(mask, values, 0)`` for floating ``values``, computed without branches.

    Every element's bits are ANDed with all ones (mask true) or all zeros (mask
    false), so the result is exactly the value or +0.0, nan and inf included, in
    ``values``' dtype. ``np.where`` branches per element and is about 7× slower on an
    unpredictable mask such as a ReLU's. ``out``, if given, receives the result
    (same shape and dtype as ``values``).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f":
        result = np.where(mask, values, 0)
        if out is None:
            return result
        out[...] = result
        return out
    bits = np.dtype(f"i{values.dtype.itemsize}")
    # True → −1 = 0b11111111, False → 0, one byte each; the AND sign-extends it to `bits`
    # on the fly (a full-width mask array would cost a pass and an allocation).
    all_ones_or_zeros = np.negative(np.asarray(mask, dtype=bool).view(np.int8))
    out_bits = None if out is None else out.view(bits)
    return np.bitwise_and(values.view(bits), all_ones_or_zeros, out=out_bits).view(values.dtype)


class Activation(ABC):
    """Base class: ``__call__`` is ``forward``; activations hold no parameters."""

    name = "activation"

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        return self.forward(Z)

    @abstractmethod
    def forward(self, Z: np.ndarray) -> np.ndarray:
        """Return f(Z), applied element-wise (or row-wise for softmax)."""

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        """Return dL/dZ given the pre-activation Z and dY = dL/df(Z)."""
        raise NotImplementedError

    def backward_into(self, Z: np.ndarray, dY: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``backward(Z, dY)`` written into ``out`` (for instance the inside of a padded
        buffer) and returned; subclasses may skip the temporary."""
        out[...] = self.backward(Z, dY)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Activation):
    """Identity: f(z) = z, f'(z) = 1."""

    name = "linear"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        return Z

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        return dY


class Sigmoid(Activation):
    """Logistic function: f(z) = 1 / (1 + e^-z), f'(z) = f(z)(1 - f(z)).

    Computed as e^{-|z|} based fractions so that no exponential overflows.
    """

    name = "sigmoid"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        exp_neg_abs = np.exp(-np.abs(Z))
        return np.where(Z >= 0, 1, exp_neg_abs) / (1 + exp_neg_abs)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        s = self.forward(Z)
        return dY * s * (1 - s)


class TanH(Activation):
    """Hyperbolic tangent: f(z) = tanh z, f'(z) = 1 - tanh² z."""

    name = "tanh"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        return np.tanh(Z)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        t = np.tanh(Z)
        return dY * (1 - t * t)


class ArcTan(Activation):
    """Arctangent: f(z) = arctan z, f'(z) = 1 / (1 + z²)."""

    name = "arctan"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        return np.arctan(Z)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        return dY / (1 + Z * Z)


class ReLU(Activation):
    """Rectified linear unit: f(z) = max(0, z).

    The derivative at exactly z = 0 is taken as 0 (PyTorch's convention):
    f'(z) = 1 if z > 0 else 0.
    """

    name = "relu"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        return np.maximum(Z, 0)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        return keep_where(np.asarray(Z) > 0, dY)

    def backward_into(self, Z: np.ndarray, dY: np.ndarray, out: np.ndarray) -> np.ndarray:
        dY = np.asarray(dY)
        if dY.dtype != out.dtype:
            return super().backward_into(Z, dY, out)
        return keep_where(np.asarray(Z) > 0, dY, out=out)


class SoftMax(Activation):
    """Softmax over the last axis: s_i = e^{z_i - max z} / Σ_j e^{z_j - max z}.

    backward uses the Jacobian-vector product of J = diag(s) - s sᵀ without
    forming J:  dL/dz = s ⊙ (dY - Σ_j dY_j s_j),  O(N·k) time and memory.
    """

    name = "softmax"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        exps = np.exp(Z - np.max(Z, axis=-1, keepdims=True))
        return exps / np.sum(exps, axis=-1, keepdims=True)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        s = self.forward(Z)
        return s * (dY - np.sum(dY * s, axis=-1, keepdims=True))


ACTIVATIONS: dict[str, type[Activation]] = {
    "linear": Linear,
    "sigmoid": Sigmoid,
    "tanh": TanH,
    "arctan": ArcTan,
    "relu": ReLU,
    "softmax": SoftMax,
}


def initialize_activation(name: str | Activation | None) -> Activation:
    """Build an activation from its name (``"linear"``, ``"sigmoid"``, ``"tanh"``,
    ``"arctan"``, ``"relu"``, ``"softmax"``); an Activation instance is returned as is
    and None means linear."""
    if name is None:
        return Linear()
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name.lower()]()


def activation_name(activation: Activation) -> str:
    """The factory name of an activation instance (for configs)."""
    return activation.name
