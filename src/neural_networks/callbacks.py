"""Callbacks that watch or steer ``NeuralNetwork.fit``.

A callback gets ``on_train_begin(model)``, ``on_epoch_begin(epoch)``,
``on_epoch_end(epoch, logs)`` (``logs`` holds the epoch's metrics: loss, accuracy,
val_loss, val_accuracy, lr, time) and ``on_train_end()``. Setting
``model.stop_training = True`` ends training after the current epoch.
``get_state()``/``set_state()`` let a checkpoint resume a callback exactly.

In data-parallel training every process runs every callback (the logs are the same on
all of them, so ``EarlyStopping`` stops them together), except the callbacks whose
``writes_files`` is True: only the root process runs those.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Callable

import numpy as np

from .utils.files import write_json_atomic


class Callback:
    """Base class: every hook does nothing."""

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

    def get_state(self) -> dict:
        """JSON-able scalars plus arrays (under "arrays") to save in a checkpoint."""
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """JSON-able values and arrays that resume this callback exactly."""
        return self.get_state()

    def load_state_dict(self, state: dict) -> None:
        self.set_state(state)


def _resolve_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitor(Callback):
    """Tracks the best value of one logged metric."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        self.monitor = monitor
        self.mode = _resolve_mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def _current(self, logs: dict) -> float | None:
        value = logs.get(self.monitor)
        if value is None and self.monitor.startswith("val_"):
            value = logs.get(self.monitor[4:])  # no validation data: watch the training metric
        return None if value is None or not math.isfinite(value) else float(value)

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def get_state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def set_state(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs,
    and (by default) put back the weights of the best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        super().__init__(monitor, mode, min_delta)
        if int(patience) < 0:
            raise ValueError(f"patience: expected an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._current(logs)
        if value is not None and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.model.named_parameters().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch is not None:
            for name, array in self.model.named_parameters().items():
                array[...] = self.best_weights[name]

    def get_state(self) -> dict:
        state = super().get_state() | {"wait": self.wait}
        if self.best_weights is not None:
            state["arrays"] = self.best_weights
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.wait = int(state["wait"])
        arrays = state.get("arrays")
        self.best_weights = {k: np.array(v) for k, v in arrays.items()} if arrays else None


class ModelCheckpoint(_Monitor):
    """Save the model to ``path`` whenever ``monitor`` improves (or every epoch when
    ``save_best_only`` is False). Saving is atomic."""

    writes_files = True

    def __init__(self, path, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = True, min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.path = Path(path)
        self.save_best_only = save_best_only

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._current(logs)
        improved = value is not None and self._improved(value)
        if improved:
            self.best, self.best_epoch = value, epoch
        if improved or not self.save_best_only:
            self.model.save(self.path)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate to ``schedule(epoch)`` before every epoch."""

    def __init__(self, schedule: Callable[[int], float]) -> None:
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int) -> None:
        lr = float(self.schedule(epoch))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule({epoch}) returned {lr!r}, expected a finite lr >= 0")
        self.model.optimizer.lr = lr
        if getattr(self.model.optimizer, "lr_scheduler", None) is not None:
            self.model.optimizer.lr_scheduler = None


class CSVLogger(Callback):
    """Append one row of metrics per epoch to a CSV file (header written once)."""

    writes_files = True

    def __init__(self, path, append: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.append = append
        self._start_fresh = not append

    def on_train_begin(self, model) -> None:
        super().on_train_begin(model)
        self._start_fresh = not self.append

    def set_state(self, state: dict) -> None:
        self._start_fresh = False  # a resumed run continues its file

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._start_fresh and self.path.exists():
            self.path.unlink()
        self._start_fresh = False
        row = {"epoch": epoch + 1, **logs}
        new_file = not self.path.exists()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)


class JSONLogger(Callback):
    """Keep the whole history in a JSON file, rewritten atomically after every epoch."""

    writes_files = True

    def __init__(self, path) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.rows.append({"epoch": epoch + 1, **logs})
        write_json_atomic(self.path, self.rows)

    def get_state(self) -> dict:
        return {"rows": self.rows}

    def set_state(self, state: dict) -> None:
        self.rows = list(state["rows"])
