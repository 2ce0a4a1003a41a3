"""Callbacks that watch or steer ``NeuralNetwork.fit``: what this module owns.

It owns the hooks a training loop calls (:class:`Callback`) and the callbacks built on
them: :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`LearningRateScheduler`,
:class:`CSVLogger` and :class:`JSONLogger`. The loop itself (``training``) owns when the
hooks run.

A callback gets ``on_train_begin(model)``, ``on_epoch_begin(epoch)``,
``on_epoch_end(epoch, logs)`` (``logs`` holds the epoch's metrics: loss, accuracy,
val_loss, val_accuracy, lr, time; a metric without a value, such as accuracy for a
regression, is None) and ``on_train_end()``. Setting ``model.stop_training = True`` ends
training after the current epoch.

``state_dict()`` / ``load_state_dict(state)`` let a checkpoint resume a callback exactly:
a dict of JSON-able values and NumPy arrays (nested dicts allowed), as for every other
stateful object of the library.

In data-parallel training every process runs every callback (the logs are the same on
all of them, so ``EarlyStopping`` stops them together), except the callbacks whose
``writes_files`` is True: only the root process runs those.

>>> import numpy as np
>>> from neural_networks import NeuralNetwork
>>> from neural_networks.layers import FullyConnected
>>> X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
>>> model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0)
>>> history = model.fit(X, y, epochs=50, verbose=0,
...                     callbacks=[EarlyStopping(monitor="loss", patience=3)])
>>> len(history.epochs) <= 50
True
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from .errors import InvalidParameterError
from .schedulers import Scheduler
from .utils.files import write_json_atomic
from .utils.validation import BOOLEAN, PATH, Integral, Interval, StrOptions, validate_params

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "CSVLogger", "JSONLogger"]


class Callback:
    """Base class: every hook does nothing, and there is no state.

    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(f"epoch {epoch + 1}: loss {logs['loss']:.2f}")
    >>> PrintLoss().on_epoch_end(0, {"loss": 0.25})
    epoch 1: loss 0.25
    """

    #: what each ``__init__`` argument accepts (see ``utils.validation``)
    _parameter_constraints: ClassVar[dict] = {}

    #: True for callbacks that write files: in data-parallel training only rank 0 runs them
    writes_files = False

    def __init__(self) -> None:
        self.model = None

    def on_train_begin(self, model) -> None:
        self.model = model

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self) -> None:
        pass

    def state_dict(self) -> dict:
        """What a checkpoint saves to resume this callback: JSON-able values and arrays."""
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from a :meth:`state_dict` (called after ``on_train_begin``)."""
        _check_state(self, state, ())

    # Aliases in the format of version-1 checkpoints (scalars, plus arrays under "arrays").
    def get_state(self) -> dict:
        return self.state_dict()

    def set_state(self, state: dict) -> None:
        self.load_state_dict(state)


def _check_state(owner: Callback, state: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(state, Mapping):
        raise InvalidParameterError(
            f"{type(owner).__name__}.load_state_dict: expected a dict, got {type(state).__name__}")
    missing = [key for key in keys if key not in state]
    if missing:
        raise InvalidParameterError(
            f"{type(owner).__name__}.load_state_dict: the state has no {missing}; got keys {sorted(state)}")


def _optional_int(owner: Callback, key: str, value: Any) -> int | None:
    """An epoch index or None (version-1 files wrote -1 for none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParameterError(
            f"{type(owner).__name__}.load_state_dict: {key} must be an integer or None, got {value!r}")
    return None if value < 0 else int(value)


def _file_path(owner: Callback, path) -> Path:
    """``path`` as a Path, refusing a folder now rather than after an epoch of training."""
    validate_params(owner, path=path)
    path = Path(path)
    if path.is_dir():
        raise InvalidParameterError(
            f"{type(owner).__name__}: path must be a file path, got the folder {str(path)!r}")
    return path


def _number(value: Any) -> float | None:
    """A logged metric as a float, or None when it has no value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        return None
    return float(value)


_MONITOR_CONSTRAINTS = {
    "monitor": [str],
    "mode": [StrOptions(("auto", "min", "max"))],
    "min_delta": [Interval(Real, 0, None)],
}


class _Monitor(Callback):
    """Tracks the best value of one logged metric.

    ``monitor`` names a key of the epoch's logs. ``val_<metric>`` falls back to
    ``<metric>`` when the epoch logged no validation value (no validation data). Any
    other metric missing from the logs is an error at the end of the first epoch,
    listing the metrics that were logged.
    """

    _parameter_constraints = _MONITOR_CONSTRAINTS

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        validate_params(self, monitor=monitor, mode=mode, min_delta=min_delta)
        self.monitor = monitor
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self._reset_best()

    def _reset_best(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def _current(self, logs: dict) -> float | None:
        """The monitored value of this epoch; None when it is nan or inf (no improvement)."""
        value = _number(logs.get(self.monitor))
        if value is None and self.monitor.startswith("val_"):
            value = _number(logs.get(self.monitor[4:]))  # no validation data: the training metric
        if value is None:
            logged = [key for key, item in logs.items() if _number(item) is not None]
            raise InvalidParameterError(
                f"{type(self).__name__}: monitor {self.monitor!r} is not a metric of this "
                f"training run; the logs hold {logged}"
            )
        return value if math.isfinite(value) else None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict:
        """``{"best": float or None (nothing seen yet), "best_epoch": int or None}``."""
        return {"best": self.best if math.isfinite(self.best) else None, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping) -> None:
        _check_state(self, state, ("best", "best_epoch"))
        best = state["best"]
        if best is not None and _number(best) is None:
            raise InvalidParameterError(
                f"{type(self).__name__}.load_state_dict: best must be a number or None, got {best!r}")
        self._reset_best()
        if best is not None and math.isfinite(best):
            self.best = float(best)
        self.best_epoch = _optional_int(self, "best_epoch", state["best_epoch"])

    def get_state(self) -> dict:
        # version-1 format: an infinite best and best_epoch -1 when nothing was seen yet
        return {"best": self.best, "best_epoch": -1 if self.best_epoch is None else self.best_epoch}


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` stops improving; by default put back the best weights.

    Patience works exactly as in Keras: the first epoch sets the best value; every later
    epoch that does not improve on it by more than ``min_delta`` adds one to ``wait``
    (an improvement resets it to 0), and training stops at the end of the epoch where
    ``wait`` reaches ``patience``. So ``patience=2`` on a metric that never improves
    runs 3 epochs, and ``patience=0`` stops, like ``patience=1``, at the first epoch
    without improvement. A nan or inf value is no improvement.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A metric of the logs (see the module docstring); ``val_<metric>`` watches
        ``<metric>`` when there is no validation data. An unknown metric raises an
        ``InvalidParameterError`` at the end of the first epoch, listing the metrics.
    patience : int, default 5
        Epochs without improvement before stopping, >= 0.
    min_delta : float, default 0.0
        Smallest change that counts as an improvement, >= 0.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher is better; "auto" is "max" for metrics whose name
        contains "acc", else "min".
    restore_best_weights : bool, default True
        When training stops early, put back the parameters of the best epoch.

    Every ``fit`` starts afresh (``on_train_begin`` resets the state, as Keras);
    a resumed run then loads the saved state.

    >>> from types import SimpleNamespace
    >>> model = SimpleNamespace(stop_training=False)
    >>> stopper = EarlyStopping(monitor="loss", patience=2, restore_best_weights=False)
    >>> stopper.on_train_begin(model)
    >>> for epoch, loss in enumerate([0.9, 1.0, 1.1, 0.5]):
    ...     stopper.on_epoch_end(epoch, {"loss": loss})
    ...     if model.stop_training:
    ...         break
    >>> epoch + 1, stopper.best_epoch, stopper.wait
    (3, 0, 2)
    """

    _parameter_constraints = {
        **_MONITOR_CONSTRAINTS,
        "patience": [Interval(Integral, 0, None)],
        "restore_best_weights": [BOOLEAN],
    }

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        super().__init__(monitor, mode, min_delta)
        validate_params(self, patience=patience, restore_best_weights=restore_best_weights)
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self) -> None:
        self._reset_best()
        self.wait = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, model) -> None:
        super().on_train_begin(model)
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._current(logs)
        self.wait += 1
        if value is not None and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.model.named_parameters().items()}
            return
        if self.wait >= self.patience and epoch > 0:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            for name, array in self.model.named_parameters().items():
                array[...] = self.best_weights[name]

    def state_dict(self) -> dict:
        """``{"best", "best_epoch"`` (as ModelCheckpoint), ``"wait": int,
        "stopped_epoch": int or None, "best_weights": {parameter name: array} or None}``
        (arrays copied)."""
        weights = None if self.best_weights is None else {k: v.copy() for k, v in self.best_weights.items()}
        return super().state_dict() | {"wait": self.wait, "stopped_epoch": self.stopped_epoch,
                                       "best_weights": weights}

    def load_state_dict(self, state: Mapping) -> None:
        _check_state(self, state, ("best", "best_epoch", "wait"))
        weights = state.get("best_weights")
        if weights is not None and not isinstance(weights, Mapping):
            raise InvalidParameterError(
                f"EarlyStopping.load_state_dict: best_weights must be a dict of arrays or None, "
                f"got {type(weights).__name__}")
        super().load_state_dict(state)
        wait = _optional_int(self, "wait", state["wait"])
        self.wait = 0 if wait is None else wait
        self.stopped_epoch = _optional_int(self, "stopped_epoch", state.get("stopped_epoch"))
        self.best_weights = None if not weights else {str(k): np.array(v, copy=True) for k, v in weights.items()}

    def get_state(self) -> dict:
        state = super().get_state() | {"wait": self.wait}
        if self.best_weights is not None:
            state["arrays"] = self.best_weights
        return state

    def set_state(self, state: dict) -> None:
        self.load_state_dict({**state, "best_weights": state.get("arrays")})


class ModelCheckpoint(_Monitor):
    """Save the model to ``path`` whenever ``monitor`` improves (or every epoch when
    ``save_best_only`` is False). Saving is atomic.

    Parameters
    ----------
    path : str or os.PathLike
        The model file to (over)write; its folder is created if needed.
    monitor, mode, min_delta
        As for :class:`EarlyStopping`: an unknown metric raises an
        ``InvalidParameterError`` at the end of the first epoch, listing the metrics.
    save_best_only : bool, default True

    The best value is kept across ``fit`` calls, so the file always holds the best
    model seen.

    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from neural_networks import NeuralNetwork, load
    >>> from neural_networks.layers import FullyConnected
    >>> X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    >>> model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     best = Path(folder) / "best.npz"
    ...     _ = model.fit(X, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(best, monitor="loss")])
    ...     load(best).count_parameters()
    8
    """

    _parameter_constraints = {**_MONITOR_CONSTRAINTS, "path": [PATH], "save_best_only": [BOOLEAN]}

    writes_files = True

    def __init__(self, path, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = True, min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        validate_params(self, save_best_only=save_best_only)
        self.path = _file_path(self, path)
        self.save_best_only = bool(save_best_only)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._current(logs)
        improved = value is not None and self._improved(value)
        if improved:
            self.best, self.best_epoch = value, epoch
        if improved or not self.save_best_only:
            self.model.save(self.path)


class LearningRateScheduler(Callback):
    """Train every epoch at the learning rate ``schedule(epoch)``, during ``fit`` only.

    Before each epoch it sets the optimizer's ``lr_override``, which wins over the
    optimizer's ``lr`` and ``lr_scheduler`` for that epoch without changing them; the
    optimizer drops the override at its next ``set_epoch``, and ``on_train_end`` drops
    the last one, so after ``fit`` the optimizer is exactly as it was (its own
    scheduler in charge again). Nothing to save: a resumed run calls the schedule
    again.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch) -> lr`` (epoch 0-based); the rate must be a finite number
        >= 0. A :class:`~neural_networks.schedulers.Scheduler` works too; one without
        an ``lr`` of its own starts from the optimizer's ``lr``.

    >>> from types import SimpleNamespace
    >>> from neural_networks.optimizers import SGD
    >>> from neural_networks.schedulers import StepDecay
    >>> model = SimpleNamespace(optimizer=SGD(lr=0.1, lr_scheduler=StepDecay(step_size=5)))
    >>> callback = LearningRateScheduler(lambda epoch: 0.5 / (epoch + 1))
    >>> callback.on_train_begin(model)
    >>> model.optimizer.set_epoch(1); callback.on_epoch_begin(1)
    >>> model.optimizer.current_lr
    0.25
    >>> callback.on_train_end()
    >>> model.optimizer.current_lr, model.optimizer.lr_scheduler
    (0.1, StepDecay(lr=None, step_size=5, gamma=0.1, per_batch=False))
    """

    _parameter_constraints = {"schedule": [callable]}

    def __init__(self, schedule: Callable[[int], float]) -> None:
        super().__init__()
        validate_params(self, schedule=schedule)
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int) -> None:
        optimizer = self.model.optimizer
        if isinstance(self.schedule, Scheduler) and self.schedule.lr is None:
            lr = self.schedule(epoch, base_lr=optimizer.lr)
        else:
            lr = self.schedule(epoch)
        value = _number(lr)
        if value is None or not math.isfinite(value) or value < 0:
            raise InvalidParameterError(
                f"LearningRateScheduler: schedule({epoch}) returned {lr!r}, expected a finite lr >= 0")
        optimizer.lr_override = value

    def on_train_end(self) -> None:
        self.model.optimizer.lr_override = None


class CSVLogger(Callback):
    """Write one row of metrics per epoch to a CSV file (header written once).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; its folder is created if needed. Without ``append`` each ``fit``
        starts a new file, except a resumed run, which continues its file.
    append : bool, default False
        Add the rows of this run to an existing file.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     logger = CSVLogger(Path(folder) / "log.csv")
    ...     logger.on_train_begin(model=None)
    ...     logger.on_epoch_end(0, {"loss": 0.5, "accuracy": None})
    ...     logger.path.read_text().splitlines()
    ['epoch,loss,accuracy', '1,0.5,']
    """

    _parameter_constraints = {"path": [PATH], "append": [BOOLEAN]}

    writes_files = True

    def __init__(self, path, append: bool = False) -> None:
        super().__init__()
        validate_params(self, append=append)
        self.path = _file_path(self, path)
        self.append = bool(append)
        self._start_fresh = not self.append

    def on_train_begin(self, model) -> None:
        super().on_train_begin(model)
        self._start_fresh = not self.append

    def load_state_dict(self, state: Mapping) -> None:
        """A resumed run continues its file (the state itself is empty)."""
        super().load_state_dict(state)
        self._start_fresh = False

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._start_fresh and self.path.exists():
            self.path.unlink()
        self._start_fresh = False
        row = {"epoch": epoch + 1, **logs}
        new_file = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class JSONLogger(Callback):
    """Keep the whole history in a JSON file, rewritten atomically after every epoch.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file (a list of one dict per epoch); its folder is created if needed.

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     logger = JSONLogger(Path(folder) / "history.json")
    ...     logger.on_epoch_end(0, {"loss": 0.5})
    ...     json.loads(logger.path.read_text())
    [{'epoch': 1, 'loss': 0.5}]
    """

    _parameter_constraints = {"path": [PATH]}

    writes_files = True

    def __init__(self, path) -> None:
        super().__init__()
        self.path = _file_path(self, path)
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.rows.append({"epoch": epoch + 1, **logs})
        write_json_atomic(self.path, self.rows)

    def state_dict(self) -> dict:
        """``{"rows": [one dict of metrics per epoch so far]}``."""
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state: Mapping) -> None:
        _check_state(self, state, ("rows",))
        rows = state["rows"]
        if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
            raise InvalidParameterError("JSONLogger.load_state_dict: rows must be a list of dicts")
        self.rows = [dict(row) for row in rows]
