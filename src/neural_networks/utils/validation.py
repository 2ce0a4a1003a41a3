"""Declared argument checks: one mechanism for every class of the library.

A class lists what each argument accepts in ``_parameter_constraints`` (in the spirit of
scikit-learn's), and calls ``validate_params`` once in ``__init__``::

    class EarlyStopping(Callback):
        _parameter_constraints = {
            "patience": [Interval(Integral, 0, None)],
            "monitor": [str],
        }

        def __init__(self, monitor="val_loss", patience=5):
            validate_params(self, monitor=monitor, patience=patience)

A value passes when it satisfies any one of the argument's constraints; otherwise an
``InvalidParameterError`` (both a ValueError and a TypeError) names the owner, the
argument, what it accepts and what came:

>>> validate_params("EarlyStopping", {"patience": [Interval(Integral, 0, None)]}, patience=2.7)
Traceback (most recent call last):
...
neural_networks.errors.InvalidParameterError: EarlyStopping: patience must be an integer >= 0, got 2.7 (float)

A constraint is an ``Interval``, a ``StrOptions``, ``Options``, ``BOOLEAN``, ``PATH`` (a
file path), ``None`` (the value None), ``callable``, or a type (``isinstance``; ``bool`` is
never an int or a real).

Functions (factories) declare their constraints in a module-level dict and pass it with
their name:

>>> validate_params("iterate_minibatches", {"batch_size": [Interval(Integral, 1, None)]}, batch_size=8)
>>> validate_params("CSVLogger", {"path": [PATH]}, path="")
Traceback (most recent call last):
...
neural_networks.errors.InvalidParameterError: CSVLogger: path must be a file path (a non-empty str or os.PathLike), got '' (str)
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np

from ..errors import InvalidParameterError, unknown_name

__all__ = [
    "Interval", "StrOptions", "Options", "BOOLEAN", "PATH", "Integral", "Real",
    "validate_params", "validate_parameter", "check_real", "check_int", "check_bool", "build_from_kwargs", "lookup",
]


class Constraint:
    """One thing an argument may be."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __str__(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


class Interval(Constraint):
    """A number of ``kind`` (``Integral`` or ``Real``) between ``low`` and ``high``
    (None: unbounded), ``closed`` at "both" ends, "left", "right" or "neither".
    Reals must be finite; bools are neither ints nor reals here.

    >>> rate = Interval(Real, 0, 1, closed="right")
    >>> str(rate), rate.is_satisfied_by(1.0), rate.is_satisfied_by(0.0), rate.is_satisfied_by(True)
    ('a finite real number in (0, 1]', True, False, False)
    """

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both") -> None:
        if kind not in (Integral, Real):
            raise ValueError(f"Interval: kind must be Integral or Real, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval: closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if _is_bool(value) or not isinstance(value, self.kind):
            return False
        if self.kind is Real and not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        noun = "an integer" if self.kind is Integral else "a finite real number"
        left_closed, right_closed = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return noun
        if self.high is None:
            return f"{noun} {'>=' if left_closed else '>'} {self.low:g}"
        if self.low is None:
            return f"{noun} {'<=' if right_closed else '<'} {self.high:g}"
        return (f"{noun} in {'[' if left_closed else '('}{self.low:g}, "
                f"{self.high:g}{']' if right_closed else ')'}")


class Options(Constraint):
    """One of the given values (compared with ==, bools apart from ints).

    >>> Options((1, 2)).is_satisfied_by(2), Options((1, 2)).is_satisfied_by(True)
    (True, False)
    """

    def __init__(self, options: Iterable) -> None:
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return any(type(value) is type(option) and value == option for option in self.options
                   if _is_bool(option) == _is_bool(value))

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(option) for option in self.options)


class StrOptions(Options):
    """One of the given strings.

    >>> mode = StrOptions(("min", "max"))
    >>> str(mode), mode.is_satisfied_by("max"), mode.is_satisfied_by("MAX")
    ("one of 'min', 'max'", True, False)
    """

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options


class _Boolean(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return _is_bool(value)

    def __str__(self) -> str:
        return "True or False"


#: True or False (a NumPy bool too; never 0 or 1)
BOOLEAN = _Boolean()


class _Path(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, str):
            return value != ""  # Path("") is the current folder: never a file the user meant
        return isinstance(value, os.PathLike)

    def __str__(self) -> str:
        return "a file path (a non-empty str or os.PathLike)"


#: a path to a file: a non-empty string or an ``os.PathLike`` (e.g. ``pathlib.Path``)
PATH = _Path()


def _satisfies(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if constraint is callable:
        return callable(value)
    if isinstance(constraint, Constraint):
        return constraint.is_satisfied_by(value)
    if isinstance(constraint, type):
        if constraint in (int, float, Integral, Real) and _is_bool(value):
            return False
        return isinstance(value, constraint)
    raise TypeError(f"unknown constraint {constraint!r}")  # a bug in a declaration


def _describe(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if constraint is callable:
        return "a callable"
    if isinstance(constraint, type):
        names = {str: "a string", dict: "a dict", Mapping: "a dict", list: "a list", tuple: "a tuple",
                 int: "an integer", float: "a float", Integral: "an integer", Real: "a real number"}
        return names.get(constraint, f"a {constraint.__name__}")
    return str(constraint)


def validate_parameter(owner: str, name: str, value: Any, constraints: list) -> Any:
    """Return ``value`` if it satisfies one of ``constraints``, else raise a clear error.

    >>> validate_parameter("Adam", "betas[0]", 0.9, [Interval(Real, 0, 1, closed="left")])
    0.9
    """
    if any(_satisfies(constraint, value) for constraint in constraints):
        return value
    accepted = " or ".join(_describe(constraint) for constraint in constraints)
    raise InvalidParameterError(
        f"{owner}: {name} must be {accepted}, got {value!r} ({type(value).__name__})"
    )


def validate_params(owner: Any, constraints: dict | None = None, /, **values: Any) -> None:
    """Check every keyword against its declared constraints.

    ``owner`` is an object whose class declares ``_parameter_constraints`` (its class name
    is used in messages), or a name given with an explicit ``constraints`` dict.

    >>> class Dropout:
    ...     _parameter_constraints = {"rate": [Interval(Real, 0, 1, closed="left")]}
    ...     def __init__(self, rate=0.5):
    ...         validate_params(self, rate=rate)
    >>> Dropout(1.0)
    Traceback (most recent call last):
    ...
    neural_networks.errors.InvalidParameterError: Dropout: rate must be a finite real number in [0, 1), got 1.0 (float)
    """
    if constraints is None:
        constraints = type(owner)._parameter_constraints
    label = owner if isinstance(owner, str) else type(owner).__name__
    for name, value in values.items():
        validate_parameter(label, name, value, constraints[name])


# -- scalar checks (used where a value is converted as it is checked) --------------------------
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

    >>> import numpy as np
    >>> type(check_real("lr", np.float64(0.5), low=0.0))
    <class 'float'>
    """
    closed = {(False, False): "both", (False, True): "left", (True, False): "right",
              (True, True): "neither"}[(low_open, high_open)]
    interval = Interval(Real, low, high, closed)
    if not interval.is_satisfied_by(value):
        raise InvalidParameterError(f"{name} must be {interval}, got {value!r} ({type(value).__name__})")
    return float(value)


def check_int(name: str, value: Any, *, low: int) -> int:
    """Return ``value`` as a Python int ``>= low`` (bools are rejected).

    >>> check_int("epoch", 3, low=0)
    3
    """
    interval = Interval(Integral, low, None)
    if not interval.is_satisfied_by(value):
        raise InvalidParameterError(f"{name} must be {interval}, got {value!r} ({type(value).__name__})")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as a bool; ints are refused, so ``staircase=1`` is reported.

    >>> check_bool("staircase", 1)
    Traceback (most recent call last):
    ...
    neural_networks.errors.InvalidParameterError: staircase must be True or False, got 1 (int)
    """
    if not BOOLEAN.is_satisfied_by(value):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def build_from_kwargs(cls: type, kwargs: dict[str, Any]):
    """``cls(**kwargs)``, reporting unexpected keywords as a clear error listing the accepted
    ones (rather than Python's bare TypeError).

    >>> from fractions import Fraction
    >>> build_from_kwargs(Fraction, {"numerator": 1, "denominator": 3})
    Fraction(1, 3)
    """
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InvalidParameterError(
            f"{cls.__name__} got unexpected argument(s) {unknown}; "
            f"accepted arguments are {accepted}"
        )
    return cls(**kwargs)


def lookup(registry: dict[str, type], name: Any, kind: str) -> type:
    """The class registered under ``name`` (case-insensitive, "-" read as "_").

    >>> lookup({"linear_warmup": int}, "Linear-Warmup", "scheduler")
    <class 'int'>
    """
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in registry:
        raise unknown_name(kind, name, registry)
    return registry[key]
