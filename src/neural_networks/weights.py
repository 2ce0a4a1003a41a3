"""Weight initialisers, with fans and gains computed as ``torch.nn.init`` does.

``initialize_weights(name, activation=None, mode="fan_in")`` returns a function
``init(shape, rng=None, dtype=np.float64)``. Shapes follow this library's layouts:
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


def initialize_weights(
    name: str, activation: str | None = None, mode: str = "fan_in"
) -> Initializer:
    """Return ``init(shape, rng=None, dtype=np.float64)`` for the named scheme.

    Names: zeros, ones, constant (0.5), identity, uniform U(-1, 1), normal N(0, 1),
    sparse, he_uniform, he_normal (std = gain/√fan with fan chosen by ``mode``:
    fan_in, fan_out, fan_avg or sum), xavier_uniform, xavier_normal
    (std = gain·√(2/(fan_in + fan_out))). A uniform draw with std σ has bound √3·σ.
    """
    if mode not in _MODES:
        raise unknown_name("mode", mode, _MODES)
    gain = calculate_gain(activation)

    def he_std(shape):
        return gain / math.sqrt(_fan(shape, mode))

    def xavier_std(shape):
        fan_in, fan_out = compute_fans(shape)
        return gain * math.sqrt(2.0 / (fan_in + fan_out))

    schemes: dict[str, Callable] = {
        "zeros": lambda shape, rng: np.zeros(shape),
        "ones": lambda shape, rng: np.ones(shape),
        "constant": lambda shape, rng: np.full(shape, 0.5),
        "identity": lambda shape, rng: _identity(shape),
        "uniform": lambda shape, rng: _draw(rng, "uniform", 1.0, shape),
        "normal": lambda shape, rng: _draw(rng, "normal", 1.0, shape),
        "sparse": _sparse,
        "he_uniform": lambda s, rng: _draw(rng, "uniform", math.sqrt(3) * he_std(s), s),
        "he_normal": lambda s, rng: _draw(rng, "normal", he_std(s), s),
        "xavier_uniform": lambda s, rng: _draw(rng, "uniform", math.sqrt(3) * xavier_std(s), s),
        "xavier_normal": lambda s, rng: _draw(rng, "normal", xavier_std(s), s),
    }
    if not isinstance(name, str) or name.lower() not in schemes:
        raise unknown_name("weight_init", name, schemes)
    scheme = schemes[name.lower()]

    def init(shape, rng: np.random.Generator | None = None, dtype=np.float64) -> np.ndarray:
        shape = tuple(int(n) for n in shape)
        return np.asarray(scheme(shape, rng), dtype=dtype)

    init.scheme_name = name.lower()
    return init
