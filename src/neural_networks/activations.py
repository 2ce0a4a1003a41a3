"""Element-wise activation functions and softmax, each with its backward pass.

Every activation maps a pre-activation array ``Z`` (any shape) to ``Y = f(Z)``;
``backward(Z, dY)`` takes the same ``Z`` and the upstream gradient ``dY = dL/dY``
and returns ``dL/dZ``. Nothing is cached, nothing is modified in place, and the
floating dtype of ``Z`` is kept (float32 in, float32 out).

Activations with settings (``LeakyReLU(negative_slope=0.2)``) declare them in
``_parameter_constraints``; ``get_config()`` returns ``{"type": name, **settings}`` and
``initialize_activation`` rebuilds an activation from that dict, from its name, or
takes an instance as is. ``activation_config`` is what a layer stores in its own config.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidParameterError
from .utils.validation import Interval, Real, StrOptions, build_from_kwargs, lookup, validate_params


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
    """Base class: ``__call__`` is ``forward``; activations hold no parameters.

    Settings, if any, are the keys of ``_parameter_constraints``, stored under the
    same attribute names; ``get_config`` and ``repr`` list them.
    """

    name = "activation"
    _parameter_constraints: dict[str, list] = {}

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

    def settings(self) -> dict[str, Any]:
        """The activation's settings (JSON-able), e.g. ``{"negative_slope": 0.01}``."""
        return {key: getattr(self, key) for key in self._parameter_constraints}

    def get_config(self) -> dict[str, Any]:
        """``{"type": name, **settings}``; ``initialize_activation(config)`` rebuilds it."""
        return {"type": self.name, **self.settings()}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings().items())
        return f"{type(self).__name__}({settings})"

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


def _as_float(Z) -> np.ndarray:
    """Z as an array, integers converted to float64 (floating dtypes are kept)."""
    Z = np.asarray(Z)
    return Z if Z.dtype.kind == "f" else Z.astype(np.float64)


def _sigmoid_pair(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ(V) and 1 − σ(V) = σ(−V), each from e^{−|v|} so that nothing overflows and
    neither loses relative precision by a subtraction from 1."""
    exp_neg_abs = np.exp(-np.abs(V))
    denominator = 1 + exp_neg_abs
    positive = V >= 0
    return (np.where(positive, 1, exp_neg_abs) / denominator,
            np.where(positive, exp_neg_abs, 1) / denominator)


class LeakyReLU(Activation):
    """Leaky rectified linear unit (``torch.nn.functional.leaky_relu``).

    Forward::   f(z) = z if z > 0 else a·z
    Backward::  f'(z) = 1 if z > 0 else a      (so f'(0) = a, as PyTorch)

    with a = ``negative_slope`` (a finite real >= 0, default 0.01).

    >>> import numpy as np
    >>> act = LeakyReLU(negative_slope=0.1)
    >>> act(np.array([-2.0, 0.0, 3.0]))
    array([-0.2,  0. ,  3. ])
    >>> act.backward(np.array([-2.0, 0.0, 3.0]), dY=np.ones(3))
    array([0.1, 0.1, 1. ])
    >>> act.get_config()
    {'type': 'leaky_relu', 'negative_slope': 0.1}
    """

    name = "leaky_relu"
    _parameter_constraints = {"negative_slope": [Interval(Real, 0, None)]}

    def __init__(self, negative_slope: float = 0.01) -> None:
        validate_params(self, negative_slope=negative_slope)
        self.negative_slope = float(negative_slope)  # a Python float keeps float32 float32

    def forward(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        return np.where(Z > 0, Z, self.negative_slope * Z)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        dY = np.asarray(dY)
        return np.where(np.asarray(Z) > 0, dY, self.negative_slope * dY)


class ELU(Activation):
    """Exponential linear unit (``torch.nn.functional.elu``).

    Forward::   f(z) = z if z > 0 else α·(e^z − 1)
    Backward::  f'(z) = 1 if z > 0 else α·e^z      (so f'(0) = α, as PyTorch)

    with α = ``alpha`` (a finite real > 0, default 1). e^z − 1 is computed with
    ``expm1`` (exact near 0), and e^z only where z <= 0, so nothing overflows.

    >>> import numpy as np
    >>> act = ELU(alpha=2.0)
    >>> np.round(act(np.array([-50.0, 0.0, 3.0])), 6)
    array([-2.,  0.,  3.])
    >>> np.round(act.backward(np.array([-1.0, 0.0, 3.0]), dY=np.ones(3)), 6)
    array([0.735759, 2.      , 1.      ])
    """

    name = "elu"
    _parameter_constraints = {"alpha": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, alpha: float = 1.0) -> None:
        validate_params(self, alpha=alpha)
        self.alpha = float(alpha)

    def forward(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        return np.where(Z > 0, Z, self.alpha * np.expm1(np.minimum(Z, 0)))

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        Z, dY = np.asarray(Z), np.asarray(dY)
        return np.where(Z > 0, dY, dY * (self.alpha * np.exp(np.minimum(Z, 0))))


#: Chebyshev coefficients c_j of q(w) = (w + 1)·e^{w²}·erfc(w) = Σ_j c_j T_j(t) on w >= 0, in
#: t = (w − 4)/(w + 4) ∈ [−1, 1) (the c_0 term not halved). Computed with 50-digit arithmetic
#: by interpolation at 96 Chebyshev nodes; q lies in [0.56, 1], so no term cancels much and
#: the sum keeps its relative precision (measured max error 4.4e-16 on [0, 27]).
_ERFC_CHEBYSHEV = (
    0.7377924971155532, -0.21817361893805362, 0.049503721225762784, -0.0025726982280633707,
    -0.004193339501765898, 0.0025732881485069263, -0.0009545378786467943, 0.00026047574753294394,
    -5.3142109585007945e-05, 7.433019050177042e-06, -4.310600135961552e-07, -8.666784461850291e-08,
    2.444129931617036e-08, -1.3958179331627473e-09, -4.6292579264676443e-10, 9.158432127526939e-11,
    4.099661454135434e-12, -3.107092638312008e-12, 1.0859225472109777e-13, 9.315628668137369e-14,
    -8.659869830664084e-15, -2.8218395496347422e-15, 4.038719989002884e-16, 9.254027468667993e-17,
    -1.663872484298646e-17, -3.4123820180098735e-18,
)


@functools.lru_cache(maxsize=None)
def _erfc_polynomial(dtype: np.dtype) -> tuple[float, ...]:
    """q as a polynomial in t, highest power first, from the Chebyshev terms that matter in
    ``dtype`` (26 in float64, 14 in float32: the rest are below ε/100). Its coefficients are
    all below 0.7 in size, so Horner's rule loses nothing to cancellation."""
    floor = np.finfo(dtype).eps / 100
    last = max(j for j, c in enumerate(_ERFC_CHEBYSHEV) if abs(c) >= floor)
    powers = np.polynomial.chebyshev.cheb2poly(_ERFC_CHEBYSHEV[: last + 1])
    return tuple(float(c) for c in powers[::-1])


def _scaled_erfc(w: np.ndarray) -> np.ndarray:
    """q(w) = (w + 1)·e^{w²}·erfc(w) for w >= 0, by Horner's rule in w's dtype.

    NumPy has no erf; this gives erfc(w) = e^{−w²}·q(w)/(w + 1) to a few ulps, with
    full relative precision in the far tail, where 1 − erf(w) would be all round-off.
    """
    t = (w - 4) / (w + 4)
    coefficients = _erfc_polynomial(t.dtype)
    q = np.full_like(t, coefficients[0])
    for c in coefficients[1:]:  # in place: two passes per power
        q *= t
        q += c
    return q


class GELU(Activation):
    """Gaussian error linear unit (``torch.nn.functional.gelu``).

    Forward::   f(z) = z·Φ(z),  Φ(z) = ½·erfc(−z/√2) the standard normal CDF
    Backward::  f'(z) = Φ(z) + z·φ(z),  φ(z) = e^{−z²/2}/√(2π)

    With ``approximate="tanh"`` Φ(z) is replaced by PyTorch's
    ½·(1 + tanh u) = σ(2u),  u = √(2/π)·(z + 0.044715 z³), so that
    f'(z) = σ(2u) + 2z·σ(2u)·σ(−2u)·√(2/π)·(1 + 3·0.044715 z²).

    Φ comes from erfc of |z|/√2 (a Chebyshev series, exact to a few ulps), so the
    lower tail keeps its relative precision where 1 + erf(z/√2) would round to 0.
    f'(0) = ½. Inputs beyond |z| = 40 (exact: Φ is 0 or 1 there) or 100 (tanh: σ(2u)
    is 0 or 1) are clipped inside, so no z² or z³ ever overflows.

    >>> import numpy as np
    >>> act = GELU()
    >>> np.round(act(np.array([-1.0, 0.0, 1.0])), 6)
    array([-0.158655,  0.      ,  0.841345])
    >>> np.round(act.backward(np.array([-1.0, 0.0, 1.0]), dY=np.ones(3)), 6)
    array([-0.083315,  0.5     ,  1.083315])
    >>> GELU(approximate="tanh").get_config()
    {'type': 'gelu', 'approximate': 'tanh'}
    """

    name = "gelu"
    _parameter_constraints = {"approximate": [StrOptions(["none", "tanh"])]}

    _EXACT_LIMIT = 40.0  # Φ(−40) ≈ 4e-350: 0 in float64 and float32
    _TANH_LIMIT = 100.0  # 2u(100) ≈ 7e4: σ(±2u) is exactly 1 or 0
    _TANH_SCALE = math.sqrt(2 / math.pi)
    _TANH_CUBIC = 0.044715

    def __init__(self, approximate: str = "none") -> None:
        validate_params(self, approximate=approximate)
        self.approximate = approximate

    def _exact(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Φ(Z) and φ(Z)."""
        a = np.minimum(np.abs(Z), self._EXACT_LIMIT)
        # e^{−a²/2} as e^{−h²/2}·e^{−(a−h)(a+h)/2} with h = a rounded down to 1/16: h²/2 is
        # exact, so the exponent's round-off (a²·ε, 1e-13 at a = 38) does not reach Φ and φ.
        head = np.floor(a * 16) / 16
        gaussian = np.exp(-0.5 * head * head)
        gaussian *= np.exp(-0.5 * (a - head) * (a + head))
        w = a * (1 / math.sqrt(2))
        lower_tail = 0.5 * gaussian * _scaled_erfc(w) / (w + 1)  # Φ(−|z|) = ½·erfc(|z|/√2)
        cdf = np.where(Z < 0, lower_tail, 1 - lower_tail)
        return cdf, gaussian * (1 / math.sqrt(2 * math.pi))

    def _tanh(self, Z: np.ndarray):
        """σ(2u), σ(−2u) and du/dz, with z clipped where that changes nothing."""
        z = np.clip(Z, -self._TANH_LIMIT, self._TANH_LIMIT)
        z_squared = z * z
        u = self._TANH_SCALE * (z + self._TANH_CUBIC * z_squared * z)
        s, s_complement = _sigmoid_pair(2 * u)
        du_dz = self._TANH_SCALE * (1 + 3 * self._TANH_CUBIC * z_squared)
        return z, s, s_complement, du_dz

    def forward(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        if self.approximate == "tanh":
            return Z * self._tanh(Z)[1]
        return Z * self._exact(Z)[0]

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        if self.approximate == "tanh":
            z, s, s_complement, du_dz = self._tanh(Z)
            return dY * (s + 2 * z * s * s_complement * du_dz)
        cdf, density = self._exact(Z)
        return dY * (cdf + Z * density)


class SiLU(Activation):
    """Sigmoid linear unit, also called swish (``torch.nn.functional.silu``).

    Forward::   f(z) = z·σ(z)
    Backward::  f'(z) = σ(z)·(1 + z·(1 − σ(z)))      (f'(0) = ½)

    with σ and 1 − σ each computed from e^{−|z|}, so nothing overflows.
    ``initialize_activation("swish")`` builds it too (its name stays "silu").

    >>> import numpy as np
    >>> act = SiLU()
    >>> np.round(act(np.array([-1.0, 0.0, 2.0])), 6)
    array([-0.268941,  0.      ,  1.761594])
    >>> np.round(act.backward(np.array([-1.0, 0.0, 2.0]), dY=np.ones(3)), 6)
    array([0.072329, 0.5     , 1.090784])
    """

    name = "silu"

    def forward(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        return Z * _sigmoid_pair(Z)[0]

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        s, s_complement = _sigmoid_pair(Z)
        return dY * (s * (1 + Z * s_complement))


class Softplus(Activation):
    """Smooth ReLU (``torch.nn.functional.softplus``).

    Forward::   f(z) = z                      if β·z > threshold
                       log(1 + e^{β·z}) / β   otherwise
    Backward::  f'(z) = 1 if β·z > threshold else σ(β·z)

    with β = ``beta`` (a finite real > 0, default 1) and ``threshold`` (a finite real,
    default 20), the same switch as PyTorch's (at β·z = threshold, the log branch).
    log(1 + e^v) is computed as max(v, 0) + log1p(e^{−|v|}), so even a large threshold
    never overflows (PyTorch's e^v does beyond v ≈ 709).

    >>> import numpy as np
    >>> act = Softplus()
    >>> np.round(act(np.array([-30.0, 0.0, 20.0, 21.0])), 6)
    array([ 0.      ,  0.693147, 20.      , 21.      ])
    >>> act.backward(np.array([0.0, 21.0]), dY=np.ones(2))
    array([0.5, 1. ])
    """

    name = "softplus"
    _parameter_constraints = {
        "beta": [Interval(Real, 0, None, closed="neither")],
        "threshold": [Interval(Real, None, None)],
    }

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        validate_params(self, beta=beta, threshold=threshold)
        self.beta, self.threshold = float(beta), float(threshold)

    def _scaled(self, Z: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # β·z = ±inf only takes the linear branch (or gives 0)
            return self.beta * Z

    def forward(self, Z: np.ndarray) -> np.ndarray:
        Z = _as_float(Z)
        V = self._scaled(Z)
        smooth = (np.maximum(V, 0) + np.log1p(np.exp(-np.abs(V)))) / self.beta
        return np.where(V > self.threshold, Z, smooth)

    def backward(self, Z: np.ndarray, dY: np.ndarray) -> np.ndarray:
        V = self._scaled(_as_float(Z))
        dY = np.asarray(dY)
        return np.where(V > self.threshold, dY, dY * _sigmoid_pair(V)[0])


ACTIVATIONS: dict[str, type[Activation]] = {
    "linear": Linear,
    "sigmoid": Sigmoid,
    "tanh": TanH,
    "arctan": ArcTan,
    "relu": ReLU,
    "softmax": SoftMax,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "gelu": GELU,
    "silu": SiLU,
    "swish": SiLU,  # another name of the same function
    "softplus": Softplus,
}


def initialize_activation(spec: str | Mapping | Activation | None) -> Activation:
    """Build an activation from its name, from its ``get_config()`` dict, or take it as is.

    Names (case-insensitive): "linear", "sigmoid", "tanh", "arctan", "relu", "softmax",
    "leaky_relu", "elu", "gelu", "silu" (or "swish"), "softplus"; a name gives the
    default settings. A dict ``{"type": name, **settings}`` sets them; None means linear.

    >>> initialize_activation({"type": "leaky_relu", "negative_slope": 0.2})
    LeakyReLU(negative_slope=0.2)
    >>> initialize_activation("swish")
    SiLU()
    """
    if spec is None:
        return Linear()
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, Mapping):
        settings = dict(spec)
        if "type" not in settings:
            raise InvalidParameterError(
                f"an activation config must be a dict with a 'type' key (the activation's "
                f"name), got {spec!r}")
        cls = lookup(ACTIVATIONS, settings.pop("type"), "activation")
        return build_from_kwargs(cls, settings)
    return lookup(ACTIVATIONS, spec, "activation")()


def activation_config(activation: Activation) -> str | dict[str, Any]:
    """What a layer's config stores for its activation: the bare name when the activation
    has no settings ("relu"), else its ``get_config()`` dict; ``initialize_activation``
    rebuilds it from either.

    >>> activation_config(initialize_activation("relu"))
    'relu'
    >>> activation_config(ELU(alpha=0.5))
    {'type': 'elu', 'alpha': 0.5}
    """
    config = activation.get_config()
    return config["type"] if len(config) == 1 else config
