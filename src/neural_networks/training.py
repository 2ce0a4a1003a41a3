"""The training loop behind ``NeuralNetwork.fit``: batches, metrics, progress, callbacks."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .errors import TrainingDivergedError

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


@dataclass
class History:
    """Per-epoch metrics of a ``fit`` run: ``history["val_loss"][k]`` is epoch k+1's."""

    history: dict[str, list] = field(default_factory=lambda: {key: [] for key in METRICS})
    epochs: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch + 1)
        for key in METRICS:
            self.history[key].append(logs.get(key))

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def to_dict(self) -> dict:
        return {"epoch": list(self.epochs), **{k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        history = cls()
        history.epochs = [int(e) for e in data.get("epoch", [])]
        for key in METRICS:
            history.history[key] = list(data.get(key, [None] * len(history.epochs)))
        return history


def accuracy(Y: np.ndarray, Y_hat: np.ndarray) -> float | None:
    """Fraction of rows whose argmax matches; None for single-output (regression) models."""
    if Y_hat.ndim != 2 or Y_hat.shape[1] < 2:
        return None
    return float(np.mean(np.argmax(Y_hat, axis=1) == np.argmax(Y, axis=1)))


def check_finite_step(model, loss: float, epoch: int, batch: int) -> None:
    """Stop with a clear message when the loss or any gradient is nan or inf."""
    where = f"epoch {epoch + 1}, batch {batch + 1}"
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"training diverged at {where}: the loss is {loss}. The parameters were left as "
            f"they were before this batch; try a lower learning rate or clip_norm."
        )
    for name, gradient in model.named_gradients().items():
        if not np.isfinite(np.sum(gradient)) and not np.all(np.isfinite(gradient)):
            raise TrainingDivergedError(
                f"training diverged at {where}: the gradient of {name} is not finite. The "
                f"parameters were left as they were before this batch; try a lower learning rate."
            )


class EpochProgress:
    """A tqdm bar per epoch (verbose=1 on a terminal), else one line per epoch (verbose=2,
    or verbose=1 when output is not a terminal); nothing for verbose=0."""

    def __init__(self, verbose: int, epoch: int, epochs: int, n_samples: int) -> None:
        self.verbose = verbose
        self.prefix = f"Epoch {epoch + 1}/{epochs}"
        self.bar = None
        if verbose == 1 and sys.stderr.isatty():
            self.bar = tqdm(total=n_samples, desc=self.prefix, unit="sample", unit_scale=True,
                            leave=True, dynamic_ncols=True)

    def update(self, n_samples: int, running: dict) -> None:
        if self.bar is not None:
            self.bar.update(n_samples)
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in running.items() if v is not None},
                                 refresh=False)

    def close(self, logs: dict, n_samples: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time" and v is not None})
            self.bar.close()
        elif self.verbose in (1, 2):
            rate = n_samples / logs["time"] if logs["time"] > 0 else float("inf")
            metrics = " - ".join(
                f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "lr") and v is not None
            )
            print(f"{self.prefix} - {logs['time']:.1f}s - {rate:,.0f} samples/s - {metrics} "
                  f"- lr {logs['lr']:.3g}", flush=True)


def train_on_batches(model, batches, epoch: int, progress=None) -> dict:
    """One optimizer step per (X_batch, Y_batch) of ``batches``; returns the mean loss and
    accuracy over the samples seen (accuracy None for regression)."""
    loss_sum, correct, counted, running = 0.0, 0.0, 0, {}
    for batch, (X_batch, Y_batch) in enumerate(batches):
        Y_hat = model.forward(X_batch)
        loss = model.backward(Y_batch, Y_hat)
        check_finite_step(model, loss, epoch, batch)
        model.update()
        batch_accuracy = accuracy(Y_batch, Y_hat)
        loss_sum += loss * len(X_batch)
        correct += (batch_accuracy or 0.0) * len(X_batch)
        counted += len(X_batch)
        running = {"loss": loss_sum / counted,
                   "accuracy": correct / counted if batch_accuracy is not None else None}
        if progress is not None:
            progress.update(len(X_batch), running)
    return running


def train_one_epoch(model, X, Y, batch_size: int, shuffle: bool, epoch: int, progress) -> dict:
    """One pass over (X, Y) in mini-batches, in an order drawn from the model's rng."""
    order = model.rng.permutation(X.shape[0]) if shuffle else np.arange(X.shape[0])
    batches = ((X[index], Y[index]) for index in
               (order[start : start + batch_size] for start in range(0, len(order), batch_size)))
    return train_on_batches(model, batches, epoch, progress)


def fit_loop(model, X, Y, *, epochs: int, batch_size: int, validation, shuffle: bool,
             callbacks, verbose: int, history: History, start_epoch: int = 0,
             on_epoch_saved=None) -> History:
    """Train from ``start_epoch`` to ``epochs`` (a total), recording into ``history``."""
    model.stop_training = False
    for epoch in range(start_epoch, epochs):
        model.optimizer.set_epoch(epoch)
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        lr = float(model.optimizer.current_lr)
        started = time.perf_counter()
        progress = EpochProgress(verbose, epoch, epochs, X.shape[0])
        logs = train_one_epoch(model, X, Y, batch_size, shuffle, epoch, progress)
        if validation is not None:
            scores = model.evaluate(*validation)
            logs |= {"val_loss": scores["loss"], "val_accuracy": scores["accuracy"]}
        logs |= {"lr": lr, "time": time.perf_counter() - started}
        progress.close(logs, X.shape[0])
        history.append(epoch, logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if on_epoch_saved is not None:
            on_epoch_saved(epoch)
        if model.stop_training:
            break
    return history
