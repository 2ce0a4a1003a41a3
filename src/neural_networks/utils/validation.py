"""Argument checks shared by optimizers and schedulers: clear ValueErrors naming the
argument, what was expected and what came."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

import numpy as np

from ..errors import unknown_name


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite Python float inside the given interval.

    Converting to a *Python* float matters: NumPy 2 treats Python scalars as
    "weak", so ``float32_array * lr`` stays float32, whereas a ``np.float64``
    hyper-parameter would silently upcast float32 parameters.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a real number, got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(
            f"{name} must be {_describe_interval(low, high, low_open, high_open)}, "
            f"got {value!r}"
        )
    return value


def _describe_interval(
    low: float | None, high: float | None, low_open: bool, high_open: bool
) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    return f"in {left}{low:g}, {high:g}{right}"


def check_int(name: str, value: Any, *, low: int) -> int:
    """Return ``value`` as a Python int ``>= low`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer >= {low}, got {value!r} "
            f"({type(value).__name__})"
        )
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    # numpy bools are accepted; ints are not, so `staircase=None` or `=1` is
    # reported instead of being silently coerced.
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"{name} must be True or False, got {value!r} ({type(value).__name__})"
        )
    return bool(value)


def build_from_kwargs(cls: type, kwargs: dict[str, Any]):
    """``cls(**kwargs)``, reporting unexpected keywords as a ValueError listing the accepted
    ones (rather than Python's bare TypeError)."""
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"{cls.__name__} got unexpected argument(s) {unknown}; "
            f"accepted arguments are {accepted}"
        )
    return cls(**kwargs)


def lookup(registry: dict[str, type], name: Any, kind: str) -> type:
    """The class registered under ``name`` (case-insensitive, "-" read as "_")."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in registry:
        raise unknown_name(kind, name, registry)
    return registry[key]
