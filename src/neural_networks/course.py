"""The course framework's interface, as one adapter over the library.

The course built a model from ``layer_args`` (AttrDicts with a ``name``), trained it with
``model.train(dataset, epochs)`` on a ``Dataset`` whose ``train.sample()`` serves
mini-batches, logged to a ``Logger``, and tested it with ``model.test(dataset)``. All of
that runs here over the library's own pieces: the one epoch loop (``training.Trainer``),
the one mini-batch iterator and the callbacks. ``initialize_model`` is in ``models``.
"""

from __future__ import annotations

import inspect

import numpy as np

from .callbacks import Callback
from .errors import InvalidParameterError
from .layers import LAYERS, Layer, layer_from_config
from .losses import L2
from .training import History, Trainer
from .utils.batches import batch_indices
from .utils.validation import Integral, Interval, validate_params

__all__ = ["CourseModelAPI", "CourseLogger", "layers_from_args"]


def _layer_config(args) -> dict:
    """A layer config from a course entry ({"name": "fully_connected", ...})."""
    settings = dict(args)
    kind = settings.pop("type", None) or settings.pop("name", None)
    if kind is None:
        raise InvalidParameterError(f"layer_args: each entry needs a 'name' (layer type), got {args!r}")
    return {"type": kind, **{key: value for key, value in settings.items() if value is not None}}


def layers_from_args(layer_args) -> tuple[list[Layer], dict | None]:
    """Build every layer of a course ``layer_args`` list. A last entry whose ``n_out`` is
    None or absent is returned as a config to build once the data shows its size (the
    course set it from ``dataset.out_dim``)."""
    configs = [_layer_config(args) for args in layer_args]
    deferred = None
    if configs and configs[-1].get("n_out") is None and _takes_n_out(configs[-1]["type"]):
        deferred = configs.pop()
    return [layer_from_config(config) for config in configs], deferred


def _takes_n_out(layer_type) -> bool:
    cls = LAYERS.get(layer_type) if isinstance(layer_type, str) else None
    return cls is not None and "n_out" in inspect.signature(cls).parameters


def course_error(loss, Y, Y_hat) -> float:
    """The course's error: 1 − accuracy for a classification loss, else the mean squared
    error over every output value (the course's ``models.error`` for "l2")."""
    accuracy = loss.accuracy(Y, Y_hat)
    return 1.0 - accuracy if accuracy is not None else float(np.mean((Y_hat - Y) ** 2))


class CourseLogger(Callback):
    """Pushes each epoch's loss and error to the course's ``Logger``: the error is
    1 − accuracy for a classification loss, the mean squared error for "l2" (its loss
    divided by the number of outputs), and None for the other regression losses."""

    def __init__(self, logger) -> None:
        super().__init__()
        self.logger = logger

    def _error(self, loss_value, accuracy_value):
        if accuracy_value is not None:
            return 1.0 - accuracy_value
        if loss_value is not None and isinstance(self.model.loss, L2):
            return loss_value / int(np.prod(self.model.output_shape()))
        return None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.logger.push({
            "loss": {"train": logs["loss"], "validate": logs.get("val_loss")},
            "error": {"train": self._error(logs["loss"], logs["accuracy"]),
                      "validate": self._error(logs.get("val_loss"), logs.get("val_accuracy"))},
        })


class CourseModelAPI:
    """``train``, ``test`` and the logger hooks of the course's ``NeuralNetwork``."""

    def train(self, dataset, epochs: int) -> History:
        """Train on a course ``Dataset``: each epoch takes ``dataset.train.samples_per_epoch``
        batches from ``dataset.train.sample()``, then validates on ``dataset.validate``
        when present; each epoch is pushed to the model's ``logger``."""
        validate_params("train", {"epochs": [Interval(Integral, 0, None)]}, epochs=epochs)
        data = dataset.train
        self.add_output_layer(dataset.out_dim)
        if not self.built:
            self.build(self.check_inputs(data.data_[:1], "dataset.train").shape[1:])
        validation = None
        if getattr(dataset, "validate", None) is not None:
            X_val = self.check_inputs(dataset.validate.data_, "dataset.validate")
            validation = (X_val, self.check_targets(dataset.validate.labels, X_val.shape[0],
                                                    "dataset.validate labels"))
        callbacks = [CourseLogger(self.logger)] if self.logger is not None else []
        trainer = Trainer(self, epochs=epochs, batch_size=data.batch_size, shuffle=False,
                          callbacks=callbacks, verbose=0)

        def epoch_batches(epoch: int):
            for _ in range(data.samples_per_epoch):
                X, Y = data.sample()
                X = self.check_inputs(X, "dataset.train")
                yield X, self.check_targets(Y, X.shape[0], "dataset.train labels")

        self.history = trainer.run(epoch_batches, data.n_samples, validation)
        return self.history

    def test(self, dataset, save_predictions: bool = False) -> dict:
        """Loss and error (1 − accuracy, or for a regression the mean squared error) per
        test batch, in order; optionally the predictions."""
        data = dataset.test
        results = {"loss": [], "error": []}
        if save_predictions:
            results["prediction"] = []
        for rows in batch_indices(data.n_samples, data.batch_size):
            X = self.check_inputs(data.data_[rows], "dataset.test")
            Y = self.check_targets(data.labels[rows], X.shape[0], "dataset.test labels")
            Y_hat, loss = self.predict(X, Y)
            results["loss"].append(loss)
            results["error"].append(course_error(self.loss, Y, Y_hat))
            if save_predictions:
                results["prediction"].append(Y_hat)
        return results
