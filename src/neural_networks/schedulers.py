"""Learning-rate schedules as pure functions of time.

A scheduler maps a time index ``t`` (0, 1, 2, ...) to a learning rate::

    scheduler = Cosine(lr=0.1, T_max=50)
    lr = scheduler(t)

``t`` counts epochs by default; with ``per_batch=True`` it counts optimizer
steps instead (the optimizer decides which counter to pass, see
:attr:`neural_networks.optimizers.Optimizer.current_lr`).

Every schedule is the *closed form* of its ``torch.optim.lr_scheduler``
counterpart, so ``scheduler(t)`` equals what the torch scheduler reports after
``t`` calls to ``step()``. Because a scheduler keeps no state, it can be
evaluated in any order, resumed from a checkpoint by just knowing ``t``, and
serialised with :meth:`Scheduler.get_config` /
:func:`scheduler_from_config`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from .utils.validation import build_from_kwargs, check_bool, check_int, check_real, lookup

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
        raise ValueError(f"t must be a non-negative number, got {t!r}")
    if isinstance(t, numbers.Integral):
        t = int(t)
    else:
        t = float(t)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"t must be a finite number >= 0, got {t!r}")
    return t


# --------------------------------------------------------------------------- #
# Schedulers
# --------------------------------------------------------------------------- #
class Scheduler(ABC):
    """Base class: a learning rate as a pure function of time ``t``.

    Parameters
    ----------
    lr : float
        Base learning rate (the value at ``t = 0`` for decaying schedules).
        Must be finite and > 0.
    per_batch : bool, default False
        If False, ``t`` counts epochs (the training loop calls
        ``optimizer.set_epoch``); if True, ``t`` counts optimizer steps.

    Notes
    -----
    Subclasses implement :meth:`_lr_at`; they list their constructor
    arguments in ``_config_keys`` so that :meth:`get_config` and
    :func:`scheduler_from_config` work without per-class code.
    """

    name: ClassVar[str]
    _config_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lr: float = 0.01, per_batch: bool = False) -> None:
        self.lr = check_real("lr", lr, low=0.0, low_open=True)
        self.per_batch = check_bool("per_batch", per_batch)

    def __call__(self, t: float) -> float:
        return self.scheduled_lr(t)

    def scheduled_lr(self, t: float) -> float:
        """Learning rate at time ``t >= 0`` (epochs, or steps if ``per_batch``)."""
        return float(self._lr_at(_check_time(t)))

    @abstractmethod
    def _lr_at(self, t: float) -> float:
        """Closed-form learning rate at a validated ``t``."""

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments plus ``"name"``."""
        config: dict[str, Any] = {"name": self.name, "lr": self.lr}
        config.update({key: getattr(self, key) for key in self._config_keys})
        config["per_batch"] = self.per_batch
        return config

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_config().items() if k != "name"
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
    """

    name = "constant"

    def _lr_at(self, t: float) -> float:
        return self.lr


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
    lr : float
        Base learning rate, > 0.
    decay : float, default 0.9
        Factor applied every ``stage_length`` time units, in (0, 1].
    stage_length : int, default 1000
        Number of time units over which the lr is multiplied by ``decay``, >= 1.
    staircase : bool, default False
        Decay in discrete jumps (integer exponent) instead of continuously.
    per_batch : bool, default False
        See :class:`Scheduler`.
    """

    name = "exponential"
    _config_keys = ("decay", "stage_length", "staircase")

    def __init__(
        self,
        lr: float = 0.01,
        decay: float = 0.9,
        stage_length: int = 1000,
        staircase: bool = False,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        self.decay = check_real("decay", decay, low=0.0, high=1.0, low_open=True)
        self.stage_length = check_int("stage_length", stage_length, low=1)
        self.staircase = check_bool("staircase", staircase)

    def _lr_at(self, t: float) -> float:
        # Floor division keeps the staircase exponent an exact integer for
        # integer t, which is what StepLR's closed form uses.
        exponent = t // self.stage_length if self.staircase else t / self.stage_length
        return self.lr * self.decay**exponent


class StepDecay(Scheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` time units.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / \text{step\_size} \rfloor}

    Equals ``torch.optim.lr_scheduler.StepLR(step_size, gamma)``.

    Parameters
    ----------
    lr : float
        Base learning rate, > 0.
    step_size : int, default 10
        Period of the decay, >= 1.
    gamma : float, default 0.1
        Multiplicative factor, in (0, 1].
    per_batch : bool, default False
        See :class:`Scheduler`.
    """

    name = "step"
    _config_keys = ("step_size", "gamma")

    def __init__(
        self,
        lr: float = 0.01,
        step_size: int = 10,
        gamma: float = 0.1,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        self.step_size = check_int("step_size", step_size, low=1)
        self.gamma = check_real("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def _lr_at(self, t: float) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


class Cosine(Scheduler):
    r"""Cosine annealing from ``lr`` down to ``eta_min`` over ``T_max`` units.

    .. math::
        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                 \left(1 + \cos\!\left(\pi\, t / T_{\max}\right)\right)

    This is the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``
    (``_get_closed_form_lr``); like torch, for ``t > T_max`` the cosine simply
    continues, so the lr rises back towards ``lr`` (period ``2 T_max``).

    Parameters
    ----------
    lr : float
        Base (maximum) learning rate, > 0.
    T_max : int, default 100
        Half period: number of time units to go from ``lr`` to ``eta_min``, >= 1.
    eta_min : float, default 0.0
        Minimum learning rate, in [0, lr].
    per_batch : bool, default False
        See :class:`Scheduler`.
    """

    name = "cosine"
    _config_keys = ("T_max", "eta_min")

    def __init__(
        self,
        lr: float = 0.01,
        T_max: int = 100,
        eta_min: float = 0.0,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        self.T_max = check_int("T_max", T_max, low=1)
        self.eta_min = check_real("eta_min", eta_min, low=0.0, high=self.lr)

    def _lr_at(self, t: float) -> float:
        # Same operation order as torch's closed form, so results agree to
        # the last bit or two.
        return (
            self.eta_min
            + (self.lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class LinearWarmup(Scheduler):
    r"""Linear warm-up from ``start_factor * lr`` to ``lr``, then constant.

    .. math::
        \eta_t = \eta_0 \left(s + (1 - s)\, \frac{\min(t, W)}{W}\right)

    where :math:`s` is ``start_factor`` and :math:`W` is ``warmup_steps``.
    Equals ``torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1.0,
    total_iters=warmup_steps)``.

    Parameters
    ----------
    lr : float
        Learning rate reached at the end of the warm-up, > 0.
    warmup_steps : int, default 5
        Length of the warm-up, >= 1.
    start_factor : float, default 1/3
        Fraction of ``lr`` used at ``t = 0``, in (0, 1] (as in torch).
    per_batch : bool, default False
        See :class:`Scheduler`.
    """

    name = "linear_warmup"
    _config_keys = ("warmup_steps", "start_factor")

    def __init__(
        self,
        lr: float = 0.01,
        warmup_steps: int = 5,
        start_factor: float = 1.0 / 3,
        per_batch: bool = False,
    ) -> None:
        super().__init__(lr, per_batch)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=1)
        self.start_factor = check_real(
            "start_factor", start_factor, low=0.0, high=1.0, low_open=True
        )

    def _lr_at(self, t: float) -> float:
        # torch: base_lr * (start + (end - start) * min(T, t) / T), end = 1.0.
        fraction = (1.0 - self.start_factor) * min(self.warmup_steps, t) / self.warmup_steps
        return self.lr * (self.start_factor + fraction)


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
    lr: float,
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
    lr : float
        Base learning rate.
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
    ValueError
        For an unknown name, an unexpected keyword or an invalid value.
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
        raise ValueError(f"argument(s) {overlap} given twice (course name and keyword)")
    return build_from_kwargs(cls, {"lr": lr, **course_args, **kwargs})


def scheduler_from_config(config: dict[str, Any]) -> Scheduler:
    """Rebuild a scheduler from :meth:`Scheduler.get_config` output."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"scheduler config must be a dict with a 'name' key, got {config!r}")
    kwargs = dict(config)
    cls = _lookup(kwargs.pop("name"))
    return build_from_kwargs(cls, kwargs)
