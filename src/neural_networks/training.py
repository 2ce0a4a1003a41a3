"""The training loop, apart from the model: ``Trainer``.

The Trainer runs epochs of optimizer steps on mini-batches, validates, reports progress,
calls callbacks and writes/reads checkpoints. It needs only the model's protocol:
``forward``, ``backward``, ``update``, ``named_gradients``, ``evaluate``, ``mode``,
``check_inputs``/``check_targets``, ``build``, ``rng``, ``optimizer``, ``get_config``,
``state_dict``/``load_state_dict`` and ``stop_training``. ``NeuralNetwork.fit`` and the
course's ``train`` both run through ``Trainer.run``: there is one epoch loop.

Where processes would have to talk to each other (data-parallel training), the loop calls
its ``distributed`` strategy (``neural_networks.distributed``); the default one, ``Local``,
does nothing at each of those points.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import serialization
from .distributed import Strategy, get_strategy
from .errors import (FormatError, InvalidParameterError, ShapeError, TrainingDivergedError,
                     TrainingStalledWarning)
from .progress import EpochProgress
from .utils.batches import batch_indices
from .utils.validation import BOOLEAN, Integral, Interval, Real, StrOptions, validate_params

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")
#: epochs in a row with a loss at its clipping ceiling, and not falling, after which the
#: Trainer warns that training looks diverged (a warning, not an error: badly scaled data
#: can start there honestly and recover)
STUCK_EPOCHS = 3

__all__ = ["Trainer", "History", "METRICS"]


@dataclass
class History:
    """Per-epoch metrics of a training run: ``history["val_loss"][k]`` is epoch k+1's.

    >>> history = History()
    >>> history.append(0, {"loss": 0.5, "lr": 0.1})
    >>> history["loss"], history.epochs
    ([0.5], [1])
    """

    history: dict[str, list] = field(default_factory=lambda: {key: [] for key in METRICS})
    epochs: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch + 1)
        for key in METRICS:
            self.history[key].append(logs.get(key))

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def state_dict(self) -> dict:
        return {"epoch": list(self.epochs), **{k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.epochs = [int(e) for e in state.get("epoch", [])]
        for key in METRICS:
            self.history[key] = list(state.get(key, [None] * len(self.epochs)))

    # the names plotting and older code use
    to_dict = state_dict

    @classmethod
    def from_dict(cls, state: dict) -> "History":
        history = cls()
        history.load_state_dict(state)
        return history


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


def checkpoint_file(path) -> Path:
    """A checkpoint path: a .npz file as given, or ``<folder>/last.npz`` for a folder."""
    path = Path(path)
    return path if path.suffix == ".npz" else path / "last.npz"


class Trainer:
    """Trains a model: epochs of mini-batch steps, validation, callbacks, progress,
    checkpoints.

    Parameters
    ----------
    model : NeuralNetwork
    epochs : int
        Total number of epochs (on resume, the total including those already done).
    batch_size : int
    shuffle : bool
        A new order each epoch, drawn from ``model.rng`` (so seeded runs repeat exactly).
    callbacks : sequence of Callback
    verbose : 0, 1 or 2
        0 silent, 1 a progress bar (one line per epoch when not on a terminal), 2 one line
        per epoch.
    checkpoint : path or None
        A .npz path, or a folder for ``<folder>/last.npz``, rewritten atomically before
        training and after every epoch with everything needed to go on.
    resume : path or None
        Continue such a run from its last completed epoch: the result is exactly the
        weights of an uninterrupted run (same data, batch size, callbacks, seed, threads).
    distributed : None, "mpi" or a ``neural_networks.distributed.Strategy``
        None trains in this process. "mpi" trains data-parallel over the ranks of
        ``mpiexec -n K``: ``batch_size`` is the global batch, each rank computes on its
        share of it, gradients are averaged across ranks every step, and only rank 0
        shows progress and writes files (checkpoints, and the callbacks whose
        ``writes_files`` is True); see ``neural_networks.distributed``.

    >>> import numpy as np
    >>> from neural_networks import NeuralNetwork
    >>> from neural_networks.layers import FullyConnected
    >>> model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0)
    >>> X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    >>> history = Trainer(model, epochs=3, batch_size=8, verbose=0).fit(X, y)
    >>> len(history["loss"]), model.training
    (3, True)
    """

    _parameter_constraints = {
        "epochs": [Interval(Integral, 0, None)],
        "batch_size": [Interval(Integral, 1, None)],
        "shuffle": [BOOLEAN],
        "verbose": [Interval(Integral, 0, 2)],
        "callbacks": [list, tuple],
        "checkpoint": [str, Path, None],
        "resume": [str, Path, None],
        "distributed": [StrOptions({"mpi"}), Strategy, None],
    }

    def __init__(self, model, *, epochs: int = 10, batch_size: int = 32, shuffle: bool = True,
                 callbacks: Sequence = (), verbose: int = 1, checkpoint=None, resume=None,
                 distributed=None) -> None:
        validate_params(self, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                        verbose=verbose, callbacks=callbacks, checkpoint=checkpoint, resume=resume,
                        distributed=distributed)
        self.model = model
        self.epochs, self.batch_size, self.shuffle = int(epochs), int(batch_size), bool(shuffle)
        self.callbacks = list(callbacks)
        self.verbose = int(verbose)
        self.checkpoint = checkpoint_file(checkpoint) if checkpoint is not None else None
        self.resume = checkpoint_file(resume) if resume is not None else None
        self.history = History()
        self.start_epoch = 0
        self.stopped_early = False
        self._epochs_stuck, self._last_loss = 0, None
        self.distributed = get_strategy(distributed)

    # -- entry points -------------------------------------------------------------------------
    def fit(self, X, Y, validation_data=None, validation_split: float = 0.0) -> History:
        """Validate (X, Y) and the validation data, build the model, then ``run``."""
        model = self.model
        X = model.check_inputs(X, "X")
        if model.input_shape is None:
            model.build(X.shape[1:])
        Y = model.check_targets(Y, X.shape[0], "Y")
        model.build(X.shape[1:])  # a deferred output layer sized from Y, if any
        if validation_data is None and validation_split:
            X, Y, validation_data = self._split(X, Y, validation_split)
        elif validation_data is not None:
            validation_data = self._checked_validation(validation_data)
        order_of = ((lambda: model.rng.permutation(X.shape[0])) if self.shuffle else (lambda: None))

        def epoch_batches(epoch: int) -> Iterable:
            # each process gathers only its own rows of every global batch
            shards = map(self.distributed.shard, batch_indices(X.shape[0], self.batch_size, order_of()))
            return ((X[rows], Y[rows]) for rows in shards)

        return self.run(epoch_batches, X.shape[0], validation_data)

    def run(self, epoch_batches: Callable[[int], Iterable], n_samples: int, validation=None) -> History:
        """The epoch loop: for each epoch, one optimizer step per batch of
        ``epoch_batches(epoch)``, validation on ``validation`` (X_val, Y_val), callbacks,
        progress and the checkpoint. The model trains in training mode and returns to the
        mode it was in, also when training raises. Under a distributed strategy,
        ``epoch_batches`` yields this process's share of each global batch
        (``strategy.shard``) and ``n_samples`` counts the global samples."""
        model, distributed = self.model, self.distributed
        model.check_loss()
        with distributed.together():  # a failure here on one process stops them all
            for callback in self._callbacks():
                callback.on_train_begin(model)
            if self.resume is not None and distributed.is_root:
                self._restore(self.resume)
            if self.checkpoint is not None and self.start_epoch == 0 and distributed.is_root:
                self._save(0)  # so an interrupted first epoch can be resumed too
        distributed.begin(self)  # every process continues from the same state
        model.stop_training = False
        first_epoch = self.epochs if self.stopped_early else self.start_epoch
        with model.mode(True):
            for epoch in range(first_epoch, self.epochs):
                logs = self._run_epoch(epoch, epoch_batches(epoch), n_samples, validation)
                with distributed.deferred():
                    for callback in self._callbacks():
                        callback.on_epoch_end(epoch, logs)
                    if self.checkpoint is not None and distributed.is_root:
                        self._save(epoch + 1)
                # one process's stop (or failure) is every process's
                model.stop_training = distributed.any(model.stop_training)
                if model.stop_training:
                    break
        with distributed.together():
            for callback in self._callbacks():
                callback.on_train_end()
        return self.history

    def _callbacks(self) -> list:
        """The callbacks this process runs: all of them, except that only the root process
        runs those that write files."""
        if self.distributed.is_root:
            return self.callbacks
        return [callback for callback in self.callbacks if not getattr(callback, "writes_files", False)]

    # -- one epoch ----------------------------------------------------------------------------
    def _run_epoch(self, epoch: int, batches: Iterable, n_samples: int, validation) -> dict:
        model, distributed = self.model, self.distributed
        model.optimizer.set_epoch(epoch)
        with distributed.deferred():  # (see train_on_batches)
            for callback in self._callbacks():
                callback.on_epoch_begin(epoch)
        lr = float(model.optimizer.current_lr)
        started = time.perf_counter()
        progress = EpochProgress(self.verbose if distributed.is_root else 0, epoch, self.epochs, n_samples)
        logs = self.train_on_batches(batches, epoch, progress)
        self._warn_if_stuck(epoch, logs["loss"])
        distributed.synchronize(model, epoch)  # running statistics from rank 0
        if validation is not None:
            scores = distributed.evaluate(model, *validation)
            logs |= {"val_loss": scores["loss"], "val_accuracy": scores["accuracy"]}
        logs |= {"lr": lr, "time": time.perf_counter() - started}
        with distributed.deferred():
            progress.close(logs, n_samples)
            self.history.append(epoch, logs)
        return logs

    def train_on_batches(self, batches: Iterable, epoch: int, progress=None) -> dict:
        """One optimizer step per (X_batch, Y_batch); the mean loss and accuracy over the
        samples seen (accuracy None for regression). Under a distributed strategy the
        gradients, loss and accuracy are those of the global batch."""
        model = self.model
        loss_sum, correct, counted, running = 0.0, 0.0, 0, {}
        for batch, (X_batch, Y_batch) in enumerate(batches):
            loss, batch_accuracy, n_rows = self.distributed.step(model, self._forward_backward,
                                                                 X_batch, Y_batch)
            # distributed: a failure of this process here stops every process at the next step
            with self.distributed.deferred():
                check_finite_step(model, loss, epoch, batch)
                model.update()
                loss_sum += loss * n_rows
                correct += (batch_accuracy or 0.0) * n_rows
                counted += n_rows
                running = {"loss": loss_sum / counted,
                           "accuracy": correct / counted if batch_accuracy is not None else None}
                if progress is not None:
                    progress.update(n_rows, running)
        return running

    def _forward_backward(self, X_batch, Y_batch) -> tuple[float, float | None]:
        """Forward and backward on one batch (gradients left in the layers): its loss and accuracy."""
        Y_hat = self.model.forward(X_batch)
        loss = self.model.backward(Y_batch, Y_hat)
        return loss, self.model.loss.accuracy(Y_batch, Y_hat)

    def _warn_if_stuck(self, epoch: int, loss: float) -> None:
        """Warn once when the loss has stayed at its clipping ceiling, not falling, for
        ``STUCK_EPOCHS`` epochs (a divergence that clipping keeps finite)."""
        model = self.model
        at_ceiling = model.loss.diverged(loss, model.dtype, int(np.prod(model.output_shape())))
        improving = self._last_loss is not None and loss < 0.99 * self._last_loss
        self._epochs_stuck = self._epochs_stuck + 1 if at_ceiling and not improving else 0
        self._last_loss = loss
        if self._epochs_stuck == STUCK_EPOCHS:  # warned once per run
            warnings.warn(
                f"training looks diverged: for {STUCK_EPOCHS} epochs up to epoch {epoch + 1} the mean "
                f"loss (now {loss:.4g}) has stayed near its clipping ceiling (the target's "
                f"probability is at the floor for most samples); if the inputs are standardised, "
                f"try a lower learning rate", TrainingStalledWarning, stacklevel=3)

    # -- data ---------------------------------------------------------------------------------
    def _split(self, X, Y, fraction):
        validate_params("fit", {"validation_split": [Interval(Real, 0, 1, closed="neither")]},
                        validation_split=fraction)
        n_train = X.shape[0] - max(1, int(round(X.shape[0] * float(fraction))))
        if n_train < 1:
            raise InvalidParameterError(f"validation_split={fraction} leaves no training samples")
        return X[:n_train], Y[:n_train], (X[n_train:], Y[n_train:])

    def _checked_validation(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise InvalidParameterError("validation_data: expected a pair (X_val, Y_val), got "
                                        f"{type(validation_data).__name__}")
        X_val = self.model.check_inputs(validation_data[0], "validation_data[0] (X_val)")
        Y_val = self.model.check_targets(validation_data[1], X_val.shape[0], "validation_data[1] (Y_val)")
        return X_val, Y_val

    # -- state and checkpoints ------------------------------------------------------------------
    def state_dict(self, completed_epochs: int) -> dict:
        """Everything a run needs to go on after ``completed_epochs`` epochs: the model's and
        the optimizer's state, the history and every callback's state."""
        model = self.model
        return {
            "model": model.state_dict(),
            "optimizer": model.optimizer.state_dict(),
            "trainer": {
                "epoch": int(completed_epochs),
                "epochs": self.epochs,
                "stopped_early": bool(model.stop_training),
                "history": self.history.state_dict(),
                "callbacks": [{"type": type(c).__name__, "state": c.state_dict()} for c in self.callbacks],
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict`` (the next epoch is its completed epochs)."""
        model = self.model
        model.load_state_dict(state["model"])
        model.optimizer.load_state_dict(state["optimizer"])
        trainer = state["trainer"]
        self.history.load_state_dict(trainer["history"])
        for entry, callback in zip(trainer.get("callbacks", []), self.callbacks):
            if entry.get("format") == 1:  # a checkpoint of format version 1
                callback.set_state(entry["state"])
            else:
                callback.load_state_dict(entry["state"])
        self.start_epoch = int(trainer["epoch"])
        # a run a callback ended (early stopping) stays ended: resuming trains no more
        self.stopped_early = bool(trainer.get("stopped_early", False))

    def _save(self, completed_epochs: int) -> None:
        model = self.model
        serialization.save_checkpoint(self.checkpoint, model.get_config(), self.state_dict(completed_epochs),
                                      model.metadata)

    def _restore(self, path: Path) -> None:
        model = self.model
        archive = serialization.read_checkpoint(path)
        self._check_same_architecture(path, archive.config)
        saved_callbacks = archive.state["trainer"].get("callbacks", [])
        saved_types = [entry.get("type") for entry in saved_callbacks]
        given = [type(callback).__name__ for callback in self.callbacks]
        if saved_types != given:
            raise InvalidParameterError(f"{path}: the checkpoint was written with callbacks {saved_types}; "
                                        f"resume with the same callbacks, got {given}")
        try:
            self.load_state_dict(archive.state)
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(f"{path}: the checkpoint cannot be restored ({error})") from None
        model.metadata = {**archive.metadata, **model.metadata}  # what the caller set wins

    def _check_same_architecture(self, path: Path, saved: dict) -> None:
        current = json.loads(json.dumps(self.model.get_config()))
        differs = [key for key in ("layers", "loss", "dtype") if saved.get(key) != current[key]]
        shapes = (saved.get("input_shape"), current["input_shape"])
        if None not in shapes and list(shapes[0]) != list(shapes[1]):
            differs.append("input_shape")
        if differs:
            raise ShapeError(f"{path}: this model does not match the checkpoint ({', '.join(differs)} "
                             f"differ); resume with the model the checkpoint was written for")
