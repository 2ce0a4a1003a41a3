"""Weight initialisers, with fans and gains computed as ``torch.nn.init`` does.

``initialize_weights(name, activation=None, mode="fan_in")`` returns a callable
``init(shape, rng=None, dtype=np.float64)`` (a ``WeightInitializer``: names and numbers
only, so it pickles with the layer that holds it). Shapes follow this library's layouts:
a fully connected weight is (n_in, n_out) and a convolution kernel is
(kh, kw, C_in, C_out), so

    fan_in  = kh·kw·C_in   (= n_in for a matrix)
    fan_out = kh·kw·C_out  (= n_out for a matrix)

``rng`` is a ``numpy.random.Generator``; without one, NumPy's global random state
is used, so the course scripts' ``np.random.seed`` keeps working.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .errors import unknown_name

Initializer = Callable[..., np.ndarray]

_GAINS = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3.0}
_MODES = ("fan_in", "fan_out", "fan_avg", "sum")


def calculate_gain(activation: str | None) -> float:
    """Recommended gain for an activation, as ``torch.nn.init.calculate_gain``:
    √2 for relu, 5/3 for tanh, 1 for linear, sigmoid, softmax, arctan and others."""
    return _GAINS.get(str(activation).lower(), 1.0)


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (n_in, n_out) or (kh, kw, C_in, C_out)."""
    if len(shape) < 2:
        raise ValueError(f"weights: fans need a shape of rank >= 2, got {tuple(shape)}")
    receptive_field = math.prod(shape[:-2])
    return receptive_field * shape[-2], receptive_field * shape[-1]


def _fan(shape, mode: str) -> float:
    fan_in, fan_out = compute_fans(shape)
    return {"fan_in": fan_in, "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2, "sum": fan_in + fan_out}[mode]


def _draw(rng, kind: str, scale: float, shape) -> np.ndarray:
    source = np.random if rng is None else rng
    if kind == "uniform":
        return source.uniform(-scale, scale, size=shape)
    return source.normal(0.0, scale, size=shape)


def _identity(shape) -> np.ndarray:
    """eye for a matrix; for a kernel, the Dirac delta (centre tap maps c → c)."""
    W = np.zeros(shape)
    if len(shape) == 2:
        W[...] = np.eye(*shape)
    elif len(shape) == 4:
        n = min(shape[2], shape[3])
        W[shape[0] // 2, shape[1] // 2, np.arange(n), np.arange(n)] = 1.0
    else:
        raise ValueError(f"weights: identity needs a rank-2 or rank-4 shape, got {tuple(shape)}")
    return W


def _sparse(shape, rng, sparsity: float = 0.1, std: float = 0.01) -> np.ndarray:
    """N(0, std²) with ceil(sparsity·rows) entries of each column set to zero."""
    if len(shape) != 2:
        raise ValueError(f"weights: sparse needs a rank-2 shape, got {tuple(shape)}")
    rows, cols = shape
    W = _draw(rng, "normal", std, shape)
    n_zeros = math.ceil(sparsity * rows)
    source = np.random if rng is None else rng
    # One random permutation of the rows per column, all drawn at once.
    order = np.argsort(source.random((rows, cols)), axis=0)[:n_zeros]
    W[order, np.arange(cols)] = 0.0
    return W


# -- the schemes: module-level functions of (shape, rng, gain, mode), so that an initialiser
# (and every layer holding one) can be pickled
def _zeros(shape, rng, gain, mode):
    return np.zeros(shape)


def _ones(shape, rng, gain, mode):
    return np.ones(shape)


def _constant(shape, rng, gain, mode):
    return np.full(shape, 0.5)


def _identity_scheme(shape, rng, gain, mode):
    return _identity(shape)


def _uniform(shape, rng, gain, mode):
    return _draw(rng, "uniform", 1.0, shape)


def _normal(shape, rng, gain, mode):
    return _draw(rng, "normal", 1.0, shape)


def _sparse_scheme(shape, rng, gain, mode):
    return _sparse(shape, rng)


def _he_std(shape, gain, mode):
    return gain / math.sqrt(_fan(shape, mode))


def _xavier_std(shape, gain):
    fan_in, fan_out = compute_fans(shape)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _he_uniform(shape, rng, gain, mode):
    return _draw(rng, "uniform", math.sqrt(3) * _he_std(shape, gain, mode), shape)


def _he_normal(shape, rng, gain, mode):
    return _draw(rng, "normal", _he_std(shape, gain, mode), shape)


def _xavier_uniform(shape, rng, gain, mode):
    return _draw(rng, "uniform", math.sqrt(3) * _xavier_std(shape, gain), shape)


def _xavier_normal(shape, rng, gain, mode):
    return _draw(rng, "normal", _xavier_std(shape, gain), shape)


_SCHEMES: dict[str, Callable] = {
    "zeros": _zeros,
    "ones": _ones,
    "constant": _constant,
    "identity": _identity_scheme,
    "uniform": _uniform,
    "normal": _normal,
    "sparse": _sparse_scheme,
    "he_uniform": _he_uniform,
    "he_normal": _he_normal,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
}


class WeightInitializer:
    """A named initialisation scheme with its gain and fan mode:
    ``init(shape, rng=None, dtype=np.float64)`` draws a weight array.

    A plain object holding only names and numbers (no closure), so layers that keep
    one, and models made of such layers, can be pickled and deep-copied.

    >>> init = WeightInitializer("he_normal", activation="relu")
    >>> init((4, 3), rng=np.random.default_rng(0)).shape
    (4, 3)
    >>> init
    WeightInitializer('he_normal', activation='relu', mode='fan_in')
    """

    def __init__(self, name: str, activation: str | None = None, mode: str = "fan_in") -> None:
        if mode not in _MODES:
            raise unknown_name("mode", mode, _MODES)
        if not isinstance(name, str) or name.lower() not in _SCHEMES:
            raise unknown_name("weight_init", name, _SCHEMES)
        self.scheme_name = name.lower()
        self.activation = activation
        self.mode = mode
        self.gain = calculate_gain(activation)

    def __call__(self, shape, rng: np.random.Generator | None = None, dtype=np.float64) -> np.ndarray:
        shape = tuple(int(n) for n in shape)
        return np.asarray(_SCHEMES[self.scheme_name](shape, rng, self.gain, self.mode), dtype=dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.scheme_name!r}, activation={self.activation!r}, "
                f"mode={self.mode!r})")


def initialize_weights(
    name: str, activation: str | None = None, mode: str = "fan_in"
) -> Initializer:
    """Return ``init(shape, rng=None, dtype=np.float64)`` for the named scheme
    (a picklable ``WeightInitializer``).

    Names: zeros, ones, constant (0.5), identity, uniform U(-1, 1), normal N(0, 1),
    sparse, he_uniform, he_normal (std = gain/√fan with fan chosen by ``mode``:
    fan_in, fan_out, fan_avg or sum), xavier_uniform, xavier_normal
    (std = gain·√(2/(fan_in + fan_out))). A uniform draw with std σ has bound √3·σ.
    """
    return WeightInitializer(name, activation=activation, mode=mode)
