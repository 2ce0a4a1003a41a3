"""Learning-rate schedules as pure functions of time: what this module owns.

It owns the schedule classes (:class:`Constant`, :class:`Exponential`,
:class:`StepDecay`, :class:`Cosine`, :class:`LinearWarmup`), their registry
``SCHEDULERS`` and the factories :func:`initialize_scheduler` and
:func:`scheduler_from_config`. The optimizer owns *when* a schedule is read and
*from which base rate* it starts.

A scheduler maps a time index ``t`` (0, 1, 2, ...) to a learning rate. Given to an
optimizer, it starts from the optimizer's ``lr`` (one source of truth for the base
rate, as in PyTorch, where a scheduler reads its optimizer's rate)::

    optimizer = Adam(lr=0.1, lr_scheduler=Cosine(T_max=50))   # cosine from 0.1

On its own, a scheduler needs its base rate:

>>> Cosine(lr=0.1, T_max=4)(2)
0.05

``t`` counts epochs by default; with ``per_batch=True`` it counts optimizer
steps instead (the optimizer decides which counter to pass, see
:attr:`neural_networks.optimizers.Optimizer.current_lr`).

Every schedule is the *closed form* of its ``torch.optim.lr_scheduler``
counterpart, so ``scheduler(t)`` equals what the torch scheduler reports after
``t`` calls to ``step()``. Because a scheduler keeps no counter, it can be
evaluated in any order and resumed from a checkpoint by just knowing ``t``; its
``state_dict()`` is its settings, and :meth:`Scheduler.get_config` /
:func:`scheduler_from_config` rebuild it.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from .errors import InvalidParameterError
from .utils.validation import (
    BOOLEAN,
    Integral,
    Interval,
    Real,
    build_from_kwargs,
    lookup,
    validate_parameter,
    validate_params,
)

__all__ = [
    "Scheduler",
    "Constant",
    "Exponential",
    "StepDecay",
    "Cosine",
    "LinearWarmup",
    "initialize_scheduler",
    "scheduler_from_config",
    "SCHEDULERS",
]


def _check_time(t: Any) -> float | int:
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise InvalidParameterError(f"t must be a non-negative number, got {t!r}")
    if isinstance(t, numbers.Integral):
        t = int(t)
    else:
        t = float(t)
    if not (math.isfinite(t) and t >= 0):
        raise InvalidParameterError(f"t must be a finite number >= 0, got {t!r}")
    return t


# --------------------------------------------------------------------------- #
# Schedulers
# --------------------------------------------------------------------------- #
class Scheduler(ABC):
    """Base class: a learning rate as a pure function of time ``t``.

    Parameters
    ----------
    lr : float or None, default None
        Base learning rate (the value at ``t = 0`` for decaying schedules),
        finite and > 0. Leave it None when the scheduler is given to an
        optimizer: it then starts from the optimizer's ``lr``, the one source of
        truth for the base rate. If it is given there, it must equal the
        optimizer's ``lr`` (the optimizer refuses a different one). A scheduler
        evaluated on its own needs it.
    per_batch : bool, default False
        If False, ``t`` counts epochs (the training loop calls
        ``optimizer.set_epoch``); if True, ``t`` counts optimizer steps.

    Notes
    -----
    Subclasses implement :meth:`_lr_at` (which reads the base rate from its
    ``base_lr`` argument, never from ``self.lr``); they list their constructor
    arguments in ``_config_keys`` so that :meth:`get_config` and
    :func:`scheduler_from_config` work without per-class code.

    >>> scheduler = StepDecay(lr=0.1, step_size=2, gamma=0.5)
    >>> [scheduler(t) for t in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    >>> StepDecay(step_size=2)(3, base_lr=1.0)   # the rate an optimizer with lr=1.0 gets
    0.1
    """

    name: ClassVar[str]
    _config_keys: ClassVar[tuple[str, ...]] = ()
    _parameter_constraints: ClassVar[dict] = {
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "per_batch": [BOOLEAN],
    }

    def __init__(self, lr: float | None = None, per_batch: bool = False) -> None:
        validate_params(self, lr=lr, per_batch=per_batch)
        # Python floats: a np.float64 rate would upcast float32 parameters.
        self.lr = None if lr is None else float(lr)
        self.per_batch = bool(per_batch)

    def __call__(self, t: float, base_lr: float | None = None) -> float:
        return self.scheduled_lr(t, base_lr)

    def scheduled_lr(self, t: float, base_lr: float | None = None) -> float:
        """Learning rate at time ``t >= 0`` (epochs, or steps if ``per_batch``).

        ``base_lr`` is the rate to start from (the optimizer passes its ``lr``);
        None uses the scheduler's own ``lr``.
        """
        t = _check_time(t)
        if base_lr is None:
            if self.lr is None:
                raise InvalidParameterError(
                    f"{type(self).__name__} has no base learning rate: give it lr=..., or give "
                    "it to an optimizer as lr_scheduler (it then starts from the optimizer's lr)"
                )
            base_lr = self.lr
        return float(self._lr_at(t, float(base_lr)))

    def check_base_lr(self, base_lr: float) -> None:
        """Refuse to start from ``base_lr`` (an optimizer's ``lr``) when the
        scheduler has another base rate of its own, or cannot start from it."""
        if self.lr is not None and self.lr != base_lr:
            raise InvalidParameterError(
                f"lr_scheduler: {type(self).__name__} was given its own lr={self.lr!r}, but the "
                f"optimizer's lr is {base_lr!r}; the optimizer's lr is the base rate of its "
                f"schedule: leave the scheduler's lr out (or make the two equal)"
            )

    @abstractmethod
    def _lr_at(self, t: float, base_lr: float) -> float:
        """Closed-form learning rate at a validated ``t``, starting from ``base_lr``."""

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus ``"type"`` (the registry name)."""
        config: dict[str, Any] = {"type": self.name, "lr": self.lr}
        config.update({key: getattr(self, key) for key in self._config_keys})
        config["per_batch"] = self.per_batch
        return config

    def state_dict(self) -> dict[str, Any]:
        """``{"config": get_config()}``: a schedule has no counter (``t`` comes from
        the optimizer), so its settings are its whole state (all JSON-able)."""
        return {"config": self.get_config()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take the settings of a :meth:`state_dict` of the same scheduler class
        (re-validated through the constructor)."""
        config = state["config"] if isinstance(state, Mapping) and "config" in state else None
        if not isinstance(config, Mapping):
            raise InvalidParameterError(
                f"{type(self).__name__}.load_state_dict: expected {{'config': {{...}}}}, got {state!r}"
            )
        rebuilt = scheduler_from_config(config)
        if type(rebuilt) is not type(self):
            raise InvalidParameterError(
                f"state_dict is for scheduler {rebuilt.name!r}, cannot load it into {self.name!r}"
            )
        self.__dict__.update(rebuilt.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items() if k != "type"
        )
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        # Two schedulers are interchangeable iff they have the same config,
        # since they are pure functions of t.
        if not isinstance(other, Scheduler):
            return NotImplemented
        return self.get_config() == other.get_config()

    __hash__ = None  # mutable attributes: equality by value, not hashable


class Constant(Scheduler):
    r"""Constant learning rate.

    .. math:: \eta_t = \eta_0

    >>> Constant(lr=0.1)(1000)
    0.1
    """

    name = "constant"

    def _lr_at(self, t: float, base_lr: float) -> float:
        return base_lr


_UNIT_FACTOR = Interval(Real, 0, 1, closed="right")  # (0, 1]
_PERIOD = Interval(Integral, 1, None)


class Exponential(Scheduler):
    r"""Exponential decay, optionally in stairs.

    .. math::
        \eta_t = \eta_0 \, d^{\,t / L}
        \qquad\text{or, with staircase,}\qquad
        \eta_t = \eta_0 \, d^{\,\lfloor t / L \rfloor}

    where :math:`d` is ``decay`` and :math:`L` is ``stage_length``.
    With ``staircase=True`` this is ``torch.optim.lr_scheduler.StepLR(
    step_size=stage_length, gamma=decay)``; with ``stage_length=1`` it is
    ``ExponentialLR(gamma=decay)``.

    Parameters
    ----------
    lr : float or None, default None
        Base learning rate, > 0; None: the optimizer's (see :class:`Scheduler`).
    decay : float, default 0.9
        Factor applied every ``stage_length`` time units, in (0, 1].
    stage_length : int, default 1000
        Number of time units over which the lr is multiplied by ``decay``, >= 1.
    staircase : bool, default False
        Decay in discrete jumps (integer exponent) instead of continuously.
    per_batch : bool, default False
        See :class:`Scheduler`.

    >>> stairs = Exponential(lr=1.0, decay=0.5, stage_length=2, staircase=True)
    >>> [stairs(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    >>> Exponential(lr=1.0, decay=0.25, stage_length=2)(1)   # continuous: 0.25 ** (1/2)
    0.5
    """

    name = "exponential"
    _config_keys = ("decay", "stage_length", "staircase")
    _parameter_constraints = {
        **Scheduler._parameter_constraints,
        "decay": [_UNIT_FACTOR],
        "stage_length": [_PERIOD],
        "staircase": [BOOLEAN],
    }

    def __init__(
        self,
        lr: float | None = None,
        decay: float = 0.9,
        stage_length: int = 1000,
        staircase: bool = False,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        validate_params(self, decay=decay, stage_length=stage_length, staircase=staircase)
        self.decay = float(decay)
        self.stage_length = int(stage_length)
        self.staircase = bool(staircase)

    def _lr_at(self, t: float, base_lr: float) -> float:
        # Floor division keeps the staircase exponent an exact integer for
        # integer t, which is what StepLR's closed form uses.
        exponent = t // self.stage_length if self.staircase else t / self.stage_length
        return base_lr * self.decay**exponent


class StepDecay(Scheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` time units.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / \text{step\_size} \rfloor}

    Equals ``torch.optim.lr_scheduler.StepLR(step_size, gamma)``.

    Parameters
    ----------
    lr : float or None, default None
        Base learning rate, > 0; None: the optimizer's (see :class:`Scheduler`).
    step_size : int, default 10
        Period of the decay, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, in (0, 1].
    per_batch : bool, default False
        See :class:`Scheduler`.

    >>> [StepDecay(lr=0.1, step_size=10, gamma=0.5)(t) for t in (0, 9, 10, 25)]
    [0.1, 0.1, 0.05, 0.025]
    """

    name = "step"
    _config_keys = ("step_size", "gamma")
    _parameter_constraints = {
        **Scheduler._parameter_constraints,
        "step_size": [_PERIOD],
        "gamma": [_UNIT_FACTOR],
    }

    def __init__(
        self,
        lr: float | None = None,
        step_size: int = 10,
        gamma: float = 0.1,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        validate_params(self, step_size=step_size, gamma=gamma)
        self.step_size = int(step_size)
        self.gamma = float(gamma)

    def _lr_at(self, t: float, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class Cosine(Scheduler):
    r"""Cosine annealing from the base rate down to ``eta_min`` over ``T_max`` units.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                 \left(1 + \cos\!\left(\pi\, t / T_{\max}\right)\right)

    This is the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``
    (``_get_closed_form_lr``); like torch, for ``t > T_max`` the cosine simply
    continues, so the lr rises back towards the base rate (period ``2 T_max``).

    Parameters
    ----------
    lr : float or None, default None
        Base (maximum) learning rate, > 0; None: the optimizer's (see
        :class:`Scheduler`).
    T_max : int, default 100
        Half period: number of time units to go from the base rate to
        ``eta_min``, >= 1.
    eta_min : float, default 0.0
        Minimum learning rate, in [0, base rate].
    per_batch : bool, default False
        See :class:`Scheduler`.

    >>> [round(Cosine(lr=0.1, T_max=4)(t), 6) for t in range(5)]
    [0.1, 0.085355, 0.05, 0.014645, 0.0]
    """

    name = "cosine"
    _config_keys = ("T_max", "eta_min")
    _parameter_constraints = {
        **Scheduler._parameter_constraints,
        "T_max": [_PERIOD],
        "eta_min": [Interval(Real, 0, None)],
    }

    def __init__(
        self,
        lr: float | None = None,
        T_max: int = 100,
        eta_min: float = 0.0,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        validate_params(self, T_max=T_max, eta_min=eta_min)
        if self.lr is not None:  # at most the base rate, when it is known already
            validate_parameter("Cosine", "eta_min", eta_min, [Interval(Real, 0, self.lr)])
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)

    def check_base_lr(self, base_lr: float) -> None:
        super().check_base_lr(base_lr)
        if self.eta_min > base_lr:
            raise InvalidParameterError(
                f"lr_scheduler: Cosine's eta_min={self.eta_min!r} is above the optimizer's lr "
                f"{base_lr!r}; eta_min must be in [0, lr]"
            )

    def _lr_at(self, t: float, base_lr: float) -> float:
        # Same operation order as torch's closed form, so results agree to
        # the last bit or two.
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class LinearWarmup(Scheduler):
    r"""Linear warm-up from ``start_factor`` times the base rate to the base rate, then constant.

    .. math::
        \eta_t = \eta_0 \left(s + (1 - s)\, \frac{\min(t, W)}{W}\right)

    where :math:`s` is ``start_factor`` and :math:`W` is ``warmup_steps``.
    Equals ``torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1.0,
    total_iters=warmup_steps)``.

    Parameters
    ----------
    lr : float or None, default None
        Learning rate reached at the end of the warm-up, > 0; None: the
        optimizer's (see :class:`Scheduler`).
    warmup_steps : int, default 5
        Length of the warm-up, >= 1.
    start_factor : float, default 1/3
        Fraction of the base rate used at ``t = 0``, in (0, 1] (as in torch).
    per_batch : bool, default False
        See :class:`Scheduler`.

    >>> [LinearWarmup(lr=1.0, warmup_steps=4, start_factor=0.5)(t) for t in (0, 2, 4, 9)]
    [0.5, 0.75, 1.0, 1.0]
    """

    name = "linear_warmup"
    _config_keys = ("warmup_steps", "start_factor")
    _parameter_constraints = {
        **Scheduler._parameter_constraints,
        "warmup_steps": [_PERIOD],
        "start_factor": [_UNIT_FACTOR],
    }

    def __init__(
        self,
        lr: float | None = None,
        warmup_steps: int = 5,
        start_factor: float = 1.0 / 3,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        validate_params(self, warmup_steps=warmup_steps, start_factor=start_factor)
        self.warmup_steps = int(warmup_steps)
        self.start_factor = float(start_factor)

    def _lr_at(self, t: float, base_lr: float) -> float:
        # torch: base_lr * (start + (end - start) * min(T, t) / T), end = 1.0.
        fraction = (1.0 - self.start_factor) * min(self.warmup_steps, t) / self.warmup_steps
        return base_lr * (self.start_factor + fraction)


# --------------------------------------------------------------------------- #
# Factories
# --------------------------------------------------------------------------- #
SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.name: cls for cls in (Constant, Exponential, StepDecay, Cosine, LinearWarmup)
}


def _lookup(name: Any) -> type[Scheduler]:
    return lookup(SCHEDULERS, name, "scheduler")


def initialize_scheduler(
    name: str,
    lr: float | None = None,
    decay: float | None = None,
    stage_length: int | None = None,
    staircase: bool | None = None,
    **kwargs: Any,
) -> Scheduler:
    """Build a scheduler by name (the original course interface, extended).

    Parameters
    ----------
    name : str
        One of ``"constant"``, ``"exponential"``, ``"step"``, ``"cosine"``,
        ``"linear_warmup"`` (case-insensitive, ``-`` accepted for ``_``).
    lr : float or None
        Base learning rate; None for a scheduler that an optimizer will start
        from its own ``lr``.
    decay, stage_length, staircase : optional
        The course's exponential-decay arguments. ``None`` keeps the class
        default. They configure ``"exponential"``; for ``"step"``, ``decay``
        and ``stage_length`` map to ``gamma`` and ``step_size`` (it is always
        a staircase). The other schedules ignore them, because the course
        passes them unconditionally (even with ``"constant"``).
    **kwargs
        Further constructor arguments, e.g. ``T_max``, ``per_batch``.

    Raises
    ------
    InvalidParameterError
        For an unknown name, an unexpected keyword or an invalid value.

    >>> initialize_scheduler("exponential", 0.01, decay=0.5, stage_length=10, staircase=True)
    Exponential(lr=0.01, decay=0.5, stage_length=10, staircase=True, per_batch=False)
    >>> initialize_scheduler("step", 0.1, decay=0.5, stage_length=7)
    StepDecay(lr=0.1, step_size=7, gamma=0.5, per_batch=False)
    """
    cls = _lookup(name)
    course_args: dict[str, Any] = {}
    if cls is Exponential:
        course_args = {"decay": decay, "stage_length": stage_length, "staircase": staircase}
    elif cls is StepDecay:
        course_args = {"gamma": decay, "step_size": stage_length}
    # None means "not given": keep the class default (the course passed
    # staircase=None, which used to disable the staircase silently).
    course_args = {k: v for k, v in course_args.items() if v is not None}
    overlap = sorted(set(course_args) & set(kwargs))
    if overlap:
        raise InvalidParameterError(f"argument(s) {overlap} given twice (course name and keyword)")
    return build_from_kwargs(cls, {"lr": lr, **course_args, **kwargs})


def scheduler_from_config(config: Mapping[str, Any]) -> Scheduler:
    """Rebuild a scheduler from :meth:`Scheduler.get_config` output.

    The class is named by ``"type"``; the key ``"name"`` of files written before
    version 2 of the format is accepted too.

    >>> scheduler_from_config({"type": "cosine", "lr": 0.1, "T_max": 4})
    Cosine(lr=0.1, T_max=4, eta_min=0.0, per_batch=False)
    >>> scheduler_from_config({"name": "constant", "lr": 0.1, "per_batch": False})
    Constant(lr=0.1, per_batch=False)
    """
    kwargs = dict(config) if isinstance(config, Mapping) else None
    if kwargs is None or ("type" not in kwargs and "name" not in kwargs):
        raise InvalidParameterError(
            f"scheduler config must be a dict with a 'type' key, got {config!r}"
        )
    if "type" in kwargs and "name" in kwargs:
        raise InvalidParameterError(
            f"scheduler config has both 'type' and 'name' keys; give only 'type', got {config!r}"
        )
    cls = _lookup(kwargs.pop("type") if "type" in kwargs else kwargs.pop("name"))
    return build_from_kwargs(cls, kwargs)
