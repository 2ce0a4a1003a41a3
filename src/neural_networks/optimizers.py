"""First-order optimizers with the exact update rules of ``torch.optim``: what this module owns.

It owns the update rules (:class:`SGD`, :class:`Adam`, :class:`AdamW`,
:class:`RMSProp`), their per-parameter state, gradient clipping, the learning
rate of every step (the base ``lr``, read through an optional
:mod:`~neural_networks.schedulers` schedule), the registry ``OPTIMIZERS`` and
the factories :func:`initialize_optimizer` and :func:`optimizer_from_config`.

Parameters and gradients are ``{name: ndarray}`` dictionaries with the same
keys (the model names them uniquely, e.g. ``"0.W"``, ``"2.b"``)::

    optimizer = Adam(lr=1e-3)
    for epoch in range(epochs):
        optimizer.set_epoch(epoch)
        for batch in batches:
            grads = model.backward(...)
            optimizer.step(model.parameters, grads)   # updates in place

>>> import numpy as np
>>> w = {"w": np.array([1.0, -2.0])}
>>> SGD(lr=0.5).step(w, {"w": np.array([1.0, 1.0])})
>>> w["w"]
array([ 0.5, -2.5])

Each rule reproduces the single-tensor (``foreach=False``) implementation of
its torch twin operation by operation, so float64 trajectories agree with
torch to round-off. ``step`` is the one place in the library that modifies
arrays in place; gradients are never modified.

The optimizer's ``lr`` is the one base learning rate: a schedule given as
``lr_scheduler`` starts from it (as in PyTorch), and a schedule carrying a
different rate of its own is refused.

The original course interface ``delta = optimizer.update(name, param, grad,
epoch)`` (then ``param -= delta``) is kept and runs the same per-parameter
rule on a copy.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .errors import InvalidParameterError, ShapeError
from .schedulers import Scheduler, initialize_scheduler, scheduler_from_config
from .utils.validation import (
    BOOLEAN,
    Interval,
    Real,
    build_from_kwargs,
    check_int,
    lookup,
    validate_parameter,
    validate_params,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSProp",
    "RMSprop",
    "initialize_optimizer",
    "optimizer_from_config",
    "OPTIMIZERS",
]

State = dict[str, np.ndarray]

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing; we
# copy it so clipped trajectories match torch exactly.
_CLIP_EPS = 1e-6

_NON_NEGATIVE = Interval(Real, 0, None)
_IN_0_1 = Interval(Real, 0, 1)
_BETA = Interval(Real, 0, 1, closed="left")  # [0, 1)


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """In-place ``start = start + weight * (end - start)``, as ``torch.lerp_``.

    torch switches formula at ``|weight| = 0.5`` for accuracy; we follow it so
    the moving averages round identically.
    """
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1.0 - weight)


class Optimizer(ABC):
    """Base class: bookkeeping, clipping, scheduling and (de)serialisation.

    Parameters
    ----------
    lr : float
        Learning rate (>= 0): the one base rate. Used as is without a
        scheduler; a scheduler starts from it.
    lr_scheduler : Scheduler, str, dict or None, default None
        ``None`` keeps ``lr`` constant. A name such as ``"exponential"`` is
        built with :func:`~neural_networks.schedulers.initialize_scheduler`; a
        dict is a scheduler config. The schedule starts from this optimizer's
        ``lr`` (leave the scheduler's own ``lr`` out); a scheduler given with
        an ``lr`` of its own that differs is refused with an
        ``InvalidParameterError``.
    clip_norm : float or None, default None
        If set, each gradient tensor ``g`` is first rescaled (on a copy) as
        ``g * min(1, clip_norm / (||g||_2 + 1e-6))`` -- exactly what
        ``torch.nn.utils.clip_grad_norm_`` does applied to that tensor alone.

    Attributes
    ----------
    epoch : int
        Current 0-based epoch, set by the training loop via :meth:`set_epoch`.
    iterations : int
        Number of :meth:`step` calls so far.
    state : dict[str, dict[str, ndarray]]
        Per-parameter state, e.g. ``{"0.W": {"step": ..., "exp_avg": ...}}``.
        Every entry has an int64 0-d ``"step"`` counter (number of updates of
        that parameter).
    lr_override : float or None
        A rate imposed from outside for the current epoch only (the
        ``LearningRateScheduler`` callback sets it after :meth:`set_epoch`);
        it wins over ``lr`` and ``lr_scheduler``, which it leaves untouched.
        :meth:`set_epoch` clears it. Not part of the config or state.

    >>> optimizer = SGD(lr=0.1, lr_scheduler="step")   # StepDecay from 0.1
    >>> optimizer.set_epoch(10)
    >>> round(optimizer.current_lr, 12)
    0.01
    """

    name: ClassVar[str]
    #: Names of the subclass-specific constructor arguments, for get_config.
    _config_keys: ClassVar[tuple[str, ...]] = ()
    _parameter_constraints: ClassVar[dict] = {
        "lr": [_NON_NEGATIVE],
        "lr_scheduler": [None, Scheduler, str, Mapping],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        lr: float,
        lr_scheduler: Scheduler | str | Mapping[str, Any] | None = None,
        clip_norm: float | None = None,
    ) -> None:
        validate_params(self, lr=lr, lr_scheduler=lr_scheduler, clip_norm=clip_norm)
        # Python floats: NumPy 2 keeps `float32_array * lr` float32 only for
        # Python scalars; a np.float64 rate would upcast float32 parameters.
        self.lr = float(lr)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.lr_scheduler = self._make_scheduler(lr_scheduler)
        self.lr_override: float | None = None
        self.epoch = 0
        self.iterations = 0
        self.state: dict[str, State] = {}

    def _make_scheduler(self, spec: Any) -> Scheduler | None:
        if spec is None:
            return None
        # A schedule built here carries no rate of its own: it starts from self.lr.
        scheduler = (spec if isinstance(spec, Scheduler) else
                     initialize_scheduler(spec) if isinstance(spec, str) else
                     scheduler_from_config(spec))
        try:
            scheduler.check_base_lr(self.lr)
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{type(self).__name__}: {error}") from None
        return scheduler

    # ------------------------------------------------------------------ #
    # Learning rate
    # ------------------------------------------------------------------ #
    def set_epoch(self, epoch: int) -> None:
        """Start the 0-based epoch ``epoch`` (for epoch schedules); ends any
        :attr:`lr_override` of the previous epoch."""
        self.epoch = check_int("epoch", epoch, low=0)
        self.lr_override = None

    def _lr_at(self, t: int) -> float:
        if self.lr_override is not None:
            return self.lr_override
        if self.lr_scheduler is None:
            return self.lr
        return self.lr_scheduler(t, base_lr=self.lr)

    @property
    def current_lr(self) -> float:
        """Learning rate of the next step.

        :attr:`lr_override` if set; else the scheduler, started from ``lr`` and
        evaluated at :attr:`iterations` if its ``per_batch`` flag is set, else at
        :attr:`epoch`; without a scheduler it is ``lr``.
        """
        per_batch = self.lr_scheduler is not None and self.lr_scheduler.per_batch
        return self._lr_at(self.iterations if per_batch else self.epoch)

    # ------------------------------------------------------------------ #
    # Updates
    # ------------------------------------------------------------------ #
    def step(
        self, parameters: Mapping[str, np.ndarray], gradients: Mapping[str, np.ndarray]
    ) -> None:
        """Update every parameter array in place, then count one iteration.

        Parameters
        ----------
        parameters : dict[str, ndarray]
            Floating-point arrays, modified in place (dtype preserved).
        gradients : dict[str, ndarray]
            Gradients with the same keys and shapes; never modified.

        Raises
        ------
        InvalidParameterError
            If the keys differ, or a parameter is not a writeable float array.
        ShapeError
            If a gradient's shape is not its parameter's. Everything is checked
            before anything is modified.
        """
        missing = sorted(set(parameters) - set(gradients))
        extra = sorted(set(gradients) - set(parameters))
        if missing or extra:
            raise InvalidParameterError(
                "parameters and gradients must have the same keys; "
                f"missing gradients for {missing}, gradients without a parameter {extra}"
            )
        checked = {
            name: self._check_pair(name, param, gradients[name])
            for name, param in parameters.items()
        }
        read_only = sorted(name for name, (p, _) in checked.items() if not p.flags.writeable)
        if read_only:
            raise InvalidParameterError(
                f"parameters {read_only} are read-only arrays; step updates in place"
            )
        lr = self.current_lr
        for name, (param, grad) in checked.items():
            self._apply(name, param, grad, lr)
        self.iterations += 1

    def update(
        self, param_name: str, param: np.ndarray, param_grad: np.ndarray, epoch: int
    ) -> np.ndarray:
        """Course interface: return ``delta`` such that ``param - delta`` is new.

        ``param`` is not modified; the optimizer state of ``param_name`` is
        advanced, exactly as one :meth:`step` would. Moves to ``epoch`` (as
        :meth:`set_epoch`) when it is not the current one.

        Since this is called once per parameter, a per-batch schedule is
        evaluated at the number of earlier updates of *this* parameter (equal
        to :attr:`iterations` when every parameter is updated each batch), and
        :attr:`iterations` becomes the largest such count.

        >>> import numpy as np
        >>> SGD(lr=0.1).update("w", np.ones(2), np.array([1.0, -2.0]), epoch=0)
        array([ 0.1, -0.2])
        """
        if check_int("epoch", epoch, low=0) != self.epoch:
            self.set_epoch(epoch)
        if isinstance(param, np.floating):
            # `param - delta` on a 0-d array yields a NumPy scalar; accept it
            # back, since this form never writes to `param`.
            param = np.asarray(param)
        param, grad = self._check_pair(param_name, param, param_grad)
        done = int(self.state[param_name]["step"]) if param_name in self.state else 0
        if self.lr_scheduler is not None and self.lr_scheduler.per_batch:
            lr = self._lr_at(done)
        else:
            lr = self.current_lr
        new = param.copy()
        self._apply(param_name, new, grad, lr)
        self.iterations = max(self.iterations, done + 1)
        return np.asarray(param - new)

    @staticmethod
    def _check_pair(name: str, param: Any, grad: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(param, np.ndarray) or not np.issubdtype(param.dtype, np.floating):
            raise InvalidParameterError(
                f"parameter {name!r} must be a floating-point numpy array, got "
                f"{type(param).__name__}"
                + (f" of dtype {param.dtype}" if isinstance(param, np.ndarray) else "")
            )
        grad = np.asarray(grad)
        if grad.shape != param.shape:
            raise ShapeError(
                f"gradient of {name!r} has shape {grad.shape}, expected the "
                f"parameter's shape {param.shape}"
            )
        # Compute in the parameter's precision, as torch does (grad and param
        # share a dtype there). astype copies only when needed.
        return param, grad.astype(param.dtype, copy=False)

    def _apply(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """Clip, advance the step counter and run the rule on ``param`` in place."""
        if self.clip_norm is not None:
            # Same formula as torch.nn.utils.clip_grad_norm_ on this tensor.
            coef = self.clip_norm / (float(np.linalg.norm(grad.ravel())) + _CLIP_EPS)
            if coef < 1.0:
                grad = grad * coef  # a copy: the caller's gradient is untouched
        state = self.state.get(name)
        if state is None:
            state = self.state[name] = {"step": np.zeros((), dtype=np.int64)}
            self._init_state(state, param)
        state["step"] += 1
        self._update_param(param, grad, state, lr)

    def _init_state(self, state: State, param: np.ndarray) -> None:
        """Create the per-parameter buffers (zeros like torch); default: none."""

    @abstractmethod
    def _update_param(
        self, param: np.ndarray, grad: np.ndarray, state: State, lr: float
    ) -> None:
        """The update rule: modify ``param`` and ``state`` arrays in place.

        ``grad`` may be the caller's array and must not be modified.
        ``state["step"]`` already counts the current update.
        """

    # ------------------------------------------------------------------ #
    # Serialisation
    # ------------------------------------------------------------------ #
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor settings: ``"type"`` (the registry name), ``lr``,
        the rule's settings, ``clip_norm`` and the scheduler's config without an
        ``lr`` of its own (the schedule starts from this ``lr``)."""
        config: dict[str, Any] = {"type": self.name, "lr": self.lr}
        for key in self._config_keys:
            value = getattr(self, key)
            config[key] = list(value) if isinstance(value, tuple) else value
        config["clip_norm"] = self.clip_norm
        config["lr_scheduler"] = None
        if self.lr_scheduler is not None:
            scheduler = self.lr_scheduler.get_config()
            scheduler.pop("lr")
            config["lr_scheduler"] = scheduler
        return config

    def state_dict(self) -> dict[str, Any]:
        """Snapshot, JSON-able values and arrays only::

            {"config": get_config(), "iterations": int, "epoch": int,
             "state": {param name: {"step": 0-d int64 array, buffer name: array}}}

        The arrays are copies.
        """
        return {
            "config": self.get_config(),
            "iterations": int(self.iterations),
            "epoch": int(self.epoch),
            "state": {
                name: {key: value.copy() for key, value in buffers.items()}
                for name, buffers in self.state.items()
            },
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot exactly (arrays are copied).

        Like torch, the saved hyper-parameters (and scheduler) replace the
        current ones, so the optimizer continues exactly as the saved one
        would. The saved config must be for this optimizer class (``"type"``,
        or ``"name"`` in files written before version 2 of the format).
        """
        config = state_dict["config"]
        saved = _normalize(config.get("type", config.get("name")))
        if saved != self.name:
            raise InvalidParameterError(
                f"state_dict is for optimizer {config.get('type', config.get('name'))!r}, "
                f"cannot load it into {self.name!r}"
            )
        # Rebuilding through the constructor re-validates the saved settings.
        self.__dict__.update(optimizer_from_config(config).__dict__)
        self.iterations = check_int("iterations", state_dict["iterations"], low=0)
        self.epoch = check_int("epoch", state_dict["epoch"], low=0)
        self.state = {
            str(name): {key: np.array(value, copy=True) for key, value in buffers.items()}
            for name, buffers in state_dict["state"].items()
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    .. math::
        g &\leftarrow g + \lambda p \\
        b &\leftarrow g \text{ (first step)}, \quad
             b \leftarrow \mu b + (1 - \tau) g \text{ (later)} \\
        g &\leftarrow g + \mu b \text{ (nesterov)}, \quad g \leftarrow b
             \text{ (otherwise)} \\
        p &\leftarrow p - \eta g

    with weight decay :math:`\lambda`, momentum :math:`\mu`, dampening
    :math:`\tau`; the momentum lines apply only when :math:`\mu \neq 0`.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.0
        >= 0.
    dampening : float, default 0.0
        In [0, 1].
    nesterov : bool, default False
        Requires ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient, >= 0.
    clip_norm, lr_scheduler
        See :class:`Optimizer`.

    >>> import numpy as np
    >>> optimizer = SGD(lr=0.1, momentum=0.9)
    >>> w = {"w": np.zeros(1)}
    >>> for _ in range(2):
    ...     optimizer.step(w, {"w": np.ones(1)})
    >>> w["w"]   # -0.1 * 1, then -0.1 * (0.9 * 1 + 1)
    array([-0.29])
    """

    name = "sgd"
    _config_keys = ("momentum", "dampening", "nesterov", "weight_decay")
    _parameter_constraints = {
        **Optimizer._parameter_constraints,
        "momentum": [_NON_NEGATIVE],
        "dampening": [_IN_0_1],
        "nesterov": [BOOLEAN],
        "weight_decay": [_NON_NEGATIVE],
    }

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        lr_scheduler: Scheduler | str | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(lr, lr_scheduler, clip_norm)
        validate_params(self, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise InvalidParameterError(
                "SGD: nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={self.momentum!r}, dampening={self.dampening!r}"
            )

    def _update_param(self, param: np.ndarray, grad: np.ndarray, state: State, lr: float) -> None:
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # torch starts the buffer at the first gradient, not at zero.
                # np.array copies (grad may be the caller's array) and keeps a
                # 0-d array an array (arithmetic on 0-d arrays returns scalars).
                buf = state["momentum_buffer"] = np.array(grad, dtype=param.dtype)
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= lr * grad


class Adam(Optimizer):
    r"""Adam (Kingma & Ba), as ``torch.optim.Adam``; optional AMSGrad.

    .. math::
        g &\leftarrow g + \lambda p \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v, v) \text{ (amsgrad, else } \hat v = v) \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t}\,
             \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in [0, 1).
    eps : float, default 1e-8
        >= 0.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient, >= 0 (see :class:`AdamW` for the
        decoupled form).
    amsgrad : bool, default False
    clip_norm, lr_scheduler
        See :class:`Optimizer`.

    >>> import numpy as np
    >>> w = {"w": np.zeros(2)}
    >>> Adam(lr=0.1).step(w, {"w": np.array([3.0, -0.5])})
    >>> w["w"].round(6)   # the first step moves each weight by about lr, against its gradient
    array([-0.1,  0.1])
    """

    name = "adam"
    _config_keys = ("betas", "eps", "weight_decay", "amsgrad")
    _parameter_constraints = {
        **Optimizer._parameter_constraints,
        "betas": [tuple, list],
        "eps": [_NON_NEGATIVE],
        "weight_decay": [_NON_NEGATIVE],
        "amsgrad": [BOOLEAN],
    }
    #: AdamW sets this: decay the weights directly instead of the gradient.
    _decoupled_weight_decay: ClassVar[bool] = False

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        clip_norm: float | None = None,
        lr_scheduler: Scheduler | str | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(lr, lr_scheduler, clip_norm)
        owner = type(self).__name__
        validate_params(self, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        if len(betas) != 2:
            raise InvalidParameterError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            validate_parameter(owner, f"betas[{index}]", beta, [_BETA])
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.amsgrad = bool(amsgrad)

    def _init_state(self, state: State, param: np.ndarray) -> None:
        state["exp_avg"] = np.zeros_like(param)
        state["exp_avg_sq"] = np.zeros_like(param)
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(param)

    def _update_param(self, param: np.ndarray, grad: np.ndarray, state: State, lr: float) -> None:
        beta1, beta2 = self.betas
        step = int(state["step"])
        if self.weight_decay != 0:
            if self._decoupled_weight_decay:
                param *= 1 - lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        step_size = lr / bias_correction1
        if self.amsgrad:
            # Normalise by the largest second moment seen so far.
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second_moment = state["max_exp_avg_sq"]
        else:
            second_moment = exp_avg_sq
        denom = np.sqrt(second_moment) / bias_correction2_sqrt + self.eps
        # torch: param.addcdiv_(exp_avg, denom, value=-step_size)
        param += (-step_size * exp_avg) / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    Before the Adam step the weights shrink directly,
    :math:`p \leftarrow p (1 - \eta \lambda)`, instead of adding
    :math:`\lambda p` to the gradient. Same parameters as :class:`Adam`
    except ``weight_decay`` defaults to ``1e-2``.

    >>> import numpy as np
    >>> w = {"w": np.ones(1)}
    >>> AdamW(lr=0.1, weight_decay=0.5).step(w, {"w": np.zeros(1)})
    >>> w["w"]   # a zero gradient: only the decay, 1 * (1 - 0.1 * 0.5)
    array([0.95])
    """

    name = "adamw"
    _decoupled_weight_decay = True

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        clip_norm: float | None = None,
        lr_scheduler: Scheduler | str | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, clip_norm, lr_scheduler)


class RMSProp(Optimizer):
    r"""RMSProp (Hinton), as ``torch.optim.RMSprop``.

    .. math::
        g &\leftarrow g + \lambda p \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2 \\
        \bar g &\leftarrow \alpha \bar g + (1 - \alpha) g, \quad
             \tilde v = v - \bar g^2 \text{ (centered, else } \tilde v = v) \\
        b &\leftarrow \mu b + g / (\sqrt{\tilde v} + \epsilon), \quad
             p \leftarrow p - \eta b \text{ (momentum > 0)} \\
        p &\leftarrow p - \eta\, g / (\sqrt{\tilde v} + \epsilon)
             \text{ (otherwise)}

    Parameters
    ----------
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant, in [0, 1].
    eps : float, default 1e-8
        >= 0.
    weight_decay : float, default 0.0
        >= 0.
    momentum : float, default 0.0
        >= 0.
    centered : bool, default False
        Normalise by an estimate of the gradient variance instead of the
        raw second moment.
    clip_norm, lr_scheduler
        See :class:`Optimizer`.

    >>> import numpy as np
    >>> w = {"w": np.zeros(1)}
    >>> RMSProp(lr=0.01, alpha=0.75, eps=0.0).step(w, {"w": np.array([2.0])})
    >>> w["w"]   # -lr * g / sqrt((1 - alpha) g^2) = -0.01 / sqrt(0.25)
    array([-0.02])
    """

    name = "rmsprop"
    _config_keys = ("alpha", "eps", "weight_decay", "momentum", "centered")
    _parameter_constraints = {
        **Optimizer._parameter_constraints,
        "alpha": [_IN_0_1],
        "eps": [_NON_NEGATIVE],
        "weight_decay": [_NON_NEGATIVE],
        "momentum": [_NON_NEGATIVE],
        "centered": [BOOLEAN],
    }

    def __init__(
        self,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        clip_norm: float | None = None,
        lr_scheduler: Scheduler | str | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(lr, lr_scheduler, clip_norm)
        validate_params(self, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.centered = bool(centered)

    def _init_state(self, state: State, param: np.ndarray) -> None:
        state["square_avg"] = np.zeros_like(param)
        if self.momentum > 0:
            state["momentum_buffer"] = np.zeros_like(param)
        if self.centered:
            state["grad_avg"] = np.zeros_like(param)

    def _update_param(self, param: np.ndarray, grad: np.ndarray, state: State, lr: float) -> None:
        if self.weight_decay != 0:
            grad = grad + self.weight_decay * param
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * grad * grad
        if self.centered:
            grad_avg = state["grad_avg"]
            _lerp_(grad_avg, grad, 1 - self.alpha)
            # torch: square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            avg = np.sqrt(square_avg + (-1 * grad_avg) * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += grad / avg
            param -= lr * buf
        else:
            param += (-lr * grad) / avg


#: torch spells it ``RMSprop``.
RMSprop = RMSProp


# --------------------------------------------------------------------------- #
# Factories
# --------------------------------------------------------------------------- #
OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp)
}


def _normalize(name: Any) -> str | None:
    return name.strip().lower() if isinstance(name, str) else None


def _lookup(name: Any) -> type[Optimizer]:
    return lookup(OPTIMIZERS, name, "optimizer")


def initialize_optimizer(
    name: str,
    lr: float,
    lr_scheduler: Scheduler | str | None = None,
    momentum: float | None = None,
    clip_norm: float | None = None,
    lr_decay: float | None = None,
    staircase: bool | None = None,
    stage_length: int | None = None,
    **kwargs: Any,
) -> Optimizer:
    """Build an optimizer by name (the original course interface, extended).

    Parameters
    ----------
    name : str
        ``"SGD"``, ``"adam"``, ``"adamw"`` or ``"rmsprop"``, any case.
    lr : float
        Learning rate: the base rate of the schedule too.
    lr_scheduler : str, Scheduler or None
        A name is built with ``initialize_scheduler(lr_scheduler,
        decay=lr_decay, stage_length=stage_length, staircase=staircase)`` and
        starts from ``lr``. ``lr_decay``, ``stage_length`` and ``staircase``
        are only used then.
    momentum : float or None
        For SGD and RMSProp; ``None`` keeps the class default. Adam/AdamW
        have no such argument (use ``betas``) and raise if it is given.
    clip_norm : float or None
        Per-tensor gradient norm clipping.
    **kwargs
        Further constructor arguments, e.g. ``nesterov``, ``betas``.

    Raises
    ------
    InvalidParameterError
        For an unknown name, an unexpected keyword or an invalid value.

    >>> optimizer = initialize_optimizer("SGD", lr=0.01, lr_scheduler="exponential",
    ...                                  momentum=0.9, lr_decay=0.5, stage_length=10, staircase=True)
    >>> optimizer
    SGD(lr=0.01, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0, clip_norm=None, lr_scheduler={'type': 'exponential', 'decay': 0.5, 'stage_length': 10, 'staircase': True, 'per_batch': False})
    >>> optimizer.set_epoch(10)
    >>> optimizer.current_lr
    0.005
    """
    cls = _lookup(name)
    if isinstance(lr_scheduler, str):
        lr_scheduler = initialize_scheduler(
            lr_scheduler, decay=lr_decay, stage_length=stage_length, staircase=staircase
        )
    if momentum is not None:
        if "momentum" not in inspect.signature(cls).parameters:
            raise InvalidParameterError(
                f"{cls.__name__} has no momentum argument (got momentum={momentum!r}); "
                "pass betas=(beta1, beta2) instead, or momentum=None"
            )
        kwargs["momentum"] = momentum
    return build_from_kwargs(cls, {"lr": lr, "lr_scheduler": lr_scheduler, "clip_norm": clip_norm, **kwargs})


def _legacy_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config written before version 2 of the format (keyed ``"name"``), in today's form.

    Those versions let a scheduler's own ``lr`` override the optimizer's, so the
    rate that actually trained was the scheduler's: it becomes the optimizer's ``lr``,
    and the trajectory of a resumed run is unchanged.
    """
    config = dict(config)
    config["type"] = config.pop("name")
    scheduler = config.get("lr_scheduler")
    if isinstance(scheduler, Mapping):
        scheduler = dict(scheduler)
        if scheduler.get("lr") is not None:
            config["lr"] = scheduler.pop("lr")
        config["lr_scheduler"] = scheduler
    return config


def optimizer_from_config(config: Mapping[str, Any]) -> Optimizer:
    """Rebuild an optimizer (without state) from :meth:`Optimizer.get_config`.

    The class is named by ``"type"``. A config keyed ``"name"`` (files written
    before version 2 of the format) is read as those versions trained: when its
    scheduler had an ``lr`` of its own, that rate was the base rate and becomes
    the optimizer's ``lr``.

    >>> optimizer_from_config({"type": "adam", "lr": 0.1, "lr_scheduler": {"type": "cosine", "T_max": 4}}).current_lr
    0.1
    >>> optimizer_from_config({"name": "adam", "lr": 0.1,
    ...                        "lr_scheduler": {"name": "cosine", "lr": 0.01, "T_max": 4}}).lr
    0.01
    """
    if not isinstance(config, Mapping) or ("type" not in config and "name" not in config):
        raise InvalidParameterError(
            f"optimizer config must be a dict with a 'type' key, got {config!r}"
        )
    if "type" in config and "name" in config:
        raise InvalidParameterError(
            f"optimizer config has both 'type' and 'name' keys; give only 'type', got {config!r}"
        )
    kwargs = dict(config) if "type" in config else _legacy_config(dict(config))
    cls = _lookup(kwargs.pop("type"))
    return build_from_kwargs(cls, kwargs)
