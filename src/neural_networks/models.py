"""NeuralNetwork: a sequence of layers, a loss and an optimizer."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ShapeError
from .layers import Layer, initialize_layer
from .losses import CrossEntropy, Loss, initialize_loss
from .optimizers import OPTIMIZERS, Optimizer, initialize_optimizer
from .serialization import checkpoint_file, load_model, restore_checkpoint, save_checkpoint, save_model
from .training import History, accuracy, fit_loop, train_on_batches
from .utils.validation import lookup

_FLOAT_DTYPES = ("float32", "float64")
#: guard against sizing an output layer from a corrupt label (e.g. 10⁹ → 150 GiB of weights)
_MAX_CLASSES_FROM_IDS = 100_000


def _layer_from_args(args) -> Layer:
    """A layer from a course-style config dict ({"name": "fully_connected", ...})."""
    settings = dict(args)
    kind = settings.pop("type", None) or settings.pop("name", None)
    if kind is None:
        raise ValueError(f"layer_args: each entry needs a 'name' (layer type), got {args!r}")
    return initialize_layer(kind, **settings)


def _build_optimizer(optimizer) -> Optimizer:
    if optimizer is None:
        return initialize_optimizer("SGD", lr=0.01)
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return lookup(OPTIMIZERS, optimizer, "optimizer")()  # the class defaults, lr included
    if isinstance(optimizer, dict):
        return initialize_optimizer(**optimizer)
    raise TypeError(
        f"optimizer: expected an Optimizer, a name or a dict of initialize_optimizer "
        f"arguments, got {type(optimizer).__name__}"
    )


def _check_count(argument: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _now() -> float:
    return time.perf_counter()


class NeuralNetwork:
    """A feed-forward network: layers applied in order, trained by backpropagation.

    Parameters
    ----------
    layers : list of Layer (or of config dicts)
        The network, first layer first. Parameters are created by the first
        forward pass (or by ``build(input_shape)``) in ``dtype``.
    loss : str or Loss
        "cross_entropy" (with a SoftMax output, the model backpropagates the fused,
        exact gradient (Ŷ − Y)/N) or "l2".
    optimizer : Optimizer, name or dict
        Default: plain SGD with lr 0.01.
    seed : int or None
        Seeds weight initialisation and data shuffling; None uses NumPy's global state.
    dtype : "float32" (default) or "float64"
        dtype of the parameters and of the data ``predict``/``fit``/``evaluate`` take.

    The course's form ``NeuralNetwork(loss=..., layer_args=[...], optimizer_args={...},
    logger=None, seed=None)`` also works; an output layer whose ``n_out`` is None is
    built when training data shows the number of outputs.
    """

    def __init__(
        self,
        layers: Sequence[Layer] | None = None,
        loss: str | Loss = "cross_entropy",
        optimizer=None,
        seed: int | None = None,
        dtype: str = "float32",
        *,
        layer_args: Iterable[dict] | None = None,
        optimizer_args: dict | None = None,
        logger=None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        if str(np.dtype(dtype)) not in _FLOAT_DTYPES:
            raise ValueError(f"dtype: expected one of {_FLOAT_DTYPES}, got {dtype!r}")
        if layers is not None and layer_args is not None:
            raise ValueError("give either layers or layer_args, not both")
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.loss = initialize_loss(loss)
        self.optimizer = _build_optimizer(optimizer_args if optimizer_args is not None else optimizer)
        self.logger = logger
        self.layer_args = list(layer_args) if layer_args is not None else None
        self._output_args = None
        if layer_args is not None:
            layers, self._output_args = self._layers_from_args(self.layer_args)
        self.layers: list[Layer] = list(layers or [])
        if not all(isinstance(layer, Layer) for layer in self.layers):
            self.layers = [l if isinstance(l, Layer) else _layer_from_args(l) for l in self.layers]
        self._seed_sequence = np.random.SeedSequence(seed) if seed is not None else None
        self.rng = np.random.default_rng(self._spawn_seed()) if seed is not None else np.random.default_rng()
        self.input_shape = None
        self.history: History | None = None
        #: what a user needs to apply the model to raw data: class names, standardisation, ...
        self.metadata: dict = {}
        self.stop_training = False
        self._name_layers()
        if input_shape is not None:
            self.build(input_shape)

    # -- construction -----------------------------------------------------------------
    @staticmethod
    def _layers_from_args(layer_args: list) -> tuple[list[Layer], dict | None]:
        """Build every layer; an output layer with n_out None waits for the data."""
        if layer_args and layer_args[-1].get("n_out", 0) is None:
            return [_layer_from_args(a) for a in layer_args[:-1]], dict(layer_args[-1])
        return [_layer_from_args(a) for a in layer_args], None

    def _complete_output_layer(self, n_outputs: int) -> None:
        """Append the deferred output layer with n_out taken from the targets."""
        if self._output_args is not None:
            args = dict(self._output_args, n_out=int(n_outputs))
            self.layers.append(_layer_from_args(args))
            self._output_args = None
            self._name_layers()

    def _spawn_seed(self):
        return self._seed_sequence.spawn(1)[0] if self._seed_sequence is not None else None

    def _name_layers(self) -> None:
        for index, layer in enumerate(self.layers):
            layer.name = f"layer {index} ({type(layer).__name__})"
            if not layer.built:
                layer.dtype = self.dtype
                if self._seed_sequence is not None and layer.rng is None:
                    layer.rng = np.random.default_rng(self._spawn_seed())

    def build(self, input_shape: tuple[int, ...]) -> "NeuralNetwork":
        """Create every parameter for samples of ``input_shape`` (without the batch axis)."""
        input_shape = tuple(int(n) for n in input_shape)
        self.forward(np.zeros((1,) + input_shape, dtype=self.dtype), retain_derived=False)
        return self

    @property
    def built(self) -> bool:
        return self.input_shape is not None and self._output_args is None

    # -- forward and backward -------------------------------------------------------------
    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        """Run every layer in order (in X's dtype); cache for backward when ``retain_derived``."""
        if not self.layers:
            raise ValueError("NeuralNetwork has no layers")
        if self.input_shape is None:
            self.input_shape = tuple(np.shape(X)[1:])
        out = X
        for layer in self.layers:
            out = layer.forward(out, retain_derived=retain_derived)
        return out

    def backward(self, target: np.ndarray, out: np.ndarray) -> float:
        """Compute the loss of ``out`` against ``target`` and backpropagate it through every
        layer, leaving each layer's ``gradients`` set. Returns the loss."""
        target = np.asarray(target)
        if target.shape != np.shape(out):
            raise ShapeError(f"target must have the output's shape {np.shape(out)}, got {target.shape}")
        loss = self.loss(target, out)
        last, first = self.layers[-1], self.layers[0]
        dZ = (self.loss.pre_activation_gradient(last.activation, target, out)
              if last.activation is not None else None)
        if dZ is not None:  # the loss fuses with the output activation
            gradient = last.backward_pre_activation(dZ, input_gradient=last is not first)
            remaining = self.layers[-2::-1]
        else:
            gradient = self.loss.backward(target, out)
            remaining = self.layers[::-1]
        for layer in remaining:
            # nothing needs the gradient of the network's input: the first layer skips it
            gradient = layer.backward(gradient, input_gradient=layer is not first)
        return loss

    # -- parameters ---------------------------------------------------------------------------
    def named_parameters(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter array under a unique name "<layer index>.<key>" (e.g. "2.W")."""
        return OrderedDict(
            (f"{i}.{key}", value)
            for i, layer in enumerate(self.layers)
            for key, value in layer.parameters.items()
        )

    def named_gradients(self) -> "OrderedDict[str, np.ndarray]":
        return OrderedDict(
            (f"{i}.{key}", value)
            for i, layer in enumerate(self.layers)
            for key, value in layer.gradients.items()
        )

    def update(self, epoch: int | None = None) -> None:
        """One optimizer step on every parameter from the stored gradients, then clear them."""
        if epoch is not None:
            self.optimizer.set_epoch(epoch)
        self.optimizer.step(self.named_parameters(), self.named_gradients())

    # -- inference ------------------------------------------------------------------------------
    def predict(self, X: np.ndarray, Y: np.ndarray | None = None, batch_size: int = 256):
        """Outputs for X, computed in batches in the model's dtype without touching any
        cache or gradient. With targets Y, returns ``(Y_hat, loss)`` instead."""
        X = self._as_model_dtype(X, "X")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        outputs = [
            self.forward(X[start : start + batch_size], retain_derived=False)
            for start in range(0, X.shape[0], batch_size)
        ]
        # X holds at least one sample (checked above); one batch needs no concatenation copy
        Y_hat = np.ascontiguousarray(outputs[0]) if len(outputs) == 1 else np.concatenate(outputs)
        if Y is None:
            return Y_hat
        return Y_hat, self.loss(self._targets_like(Y, Y_hat), Y_hat)

    def _as_model_dtype(self, X, argument: str) -> np.ndarray:
        """Validate inputs at the model boundary: numeric, a non-empty batch, samples of the
        built model's shape and finite (after conversion to the model dtype)."""
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{argument}: expected a numeric array, got dtype {X.dtype}")
        if X.ndim < 1:
            raise ShapeError(f"{argument}: expected a batch of samples, got a scalar")
        if X.shape[0] == 0:
            raise ValueError(f"{argument}: expected at least one sample, got shape {X.shape}")
        if self.input_shape is not None and X.shape[1:] != tuple(self.input_shape):
            raise ShapeError(f"{argument}: the model was built for samples of shape "
                             f"{tuple(self.input_shape)}, got {X.shape[1:]}")
        with np.errstate(over="ignore", invalid="ignore"):  # too large for the dtype: inf, refused below
            X = X.astype(self.dtype, copy=False)
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{argument}: contains nan or inf values (in {self.dtype})")
        return X

    @staticmethod
    def _numeric_targets(Y, argument: str) -> np.ndarray:
        """Y as an array, or a clear error when it is not numeric or holds nan/inf."""
        Y = np.asarray(Y)
        if Y.dtype.kind not in "biuf":
            raise TypeError(f"{argument}: expected numeric targets, got dtype {Y.dtype}")
        if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
            raise ValueError(f"{argument}: contains nan or inf values")
        return Y

    def _targets_like(self, Y, Y_hat: np.ndarray, argument: str = "Y") -> np.ndarray:
        """Targets as an array of Y_hat's shape: class ids (N,) become one-hot rows."""
        Y = self._numeric_targets(Y, argument)
        if Y.ndim == 1 and Y_hat.ndim == 2 and Y_hat.shape[1] > 1 and Y.shape[0] == Y_hat.shape[0]:
            ids = Y.astype(np.int64)
            if np.any(ids != Y) or ids.min(initial=0) < 0 or ids.max(initial=0) >= Y_hat.shape[1]:
                raise ValueError(
                    f"{argument}: class ids must be integers in 0..{Y_hat.shape[1] - 1}, "
                    f"got values from {Y.min()} to {Y.max()}"
                )
            one_hot = np.zeros(Y_hat.shape, dtype=Y_hat.dtype)
            one_hot[np.arange(ids.size), ids] = 1
            return one_hot
        if Y.ndim == 1 and Y_hat.ndim == 2 and Y_hat.shape[1] == 1:
            Y = Y.reshape(-1, 1)
        if Y.shape != Y_hat.shape:
            raise ShapeError(f"{argument}: expected targets of shape {Y_hat.shape} (or class ids of shape "
                             f"({Y_hat.shape[0]},)), got {Y.shape}")
        return Y.astype(Y_hat.dtype, copy=False)

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        epochs: int = 10,
        batch_size: int = 32,
        validation_data: tuple | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence = (),
        verbose: int = 1,
        checkpoint=None,
        resume=None,
    ) -> History:
        """Train on (X, Y) for ``epochs`` epochs of mini-batches of ``batch_size``.

        Y holds class ids (N,) or one-hot rows (N, k) for classification, targets
        (N, d) for regression. ``validation_data=(X_val, Y_val)``, or the last
        ``validation_split`` fraction of (X, Y), is evaluated after every epoch.
        Returns a History of per-epoch loss, accuracy, val_loss, val_accuracy, lr and time.

        ``checkpoint`` (a .npz path, or a folder for ``<folder>/last.npz``) is rewritten
        atomically before training and after every epoch with everything needed to go
        on: parameters, optimizer and scheduler state, the data-order random state, the
        history and the callbacks' state. ``resume`` (same forms) continues such a run
        from its last completed epoch; ``epochs`` is the total, so a 10-epoch run saved
        after epoch 4 trains epochs 5-10 and ends with exactly the weights of an
        uninterrupted run (same data, batch size, callbacks, seed and BLAS threads).
        """
        epochs = _check_count("epochs", epochs, minimum=0)
        batch_size = _check_count("batch_size", batch_size, minimum=1)
        X, Y = self._training_arrays(X, Y, "X", "Y")
        if validation_data is None and validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
            n_train = X.shape[0] - max(1, int(round(X.shape[0] * float(validation_split))))
            if n_train < 1:
                raise ValueError(f"validation_split={validation_split} leaves no training samples")
            validation_data = (X[n_train:], Y[n_train:])
            X, Y = X[:n_train], Y[:n_train]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data: expected a pair (X_val, Y_val)")
            validation_data = self._training_arrays(*validation_data, "X_val", "Y_val")
        if not self.built:
            # now, not at the first batch: the checkpoint written before epoch 1 needs parameters
            self.build(X.shape[1:])
        callbacks = list(callbacks)
        for callback in callbacks:
            callback.on_train_begin(self)
        history, start_epoch = History(), 0
        if resume is not None:
            start_epoch, history = restore_checkpoint(self, checkpoint_file(resume), callbacks)
        save = None
        if checkpoint is not None:
            path = checkpoint_file(checkpoint)
            save = lambda epoch: save_checkpoint(  # noqa: E731  (after epoch `epoch` completed)
                self, path, epoch=epoch + 1, history=history, callbacks=callbacks)
            if start_epoch == 0:
                save(-1)  # so an interrupted first epoch can be resumed too
        history = fit_loop(self, X, Y, epochs=epochs, batch_size=batch_size,
                           validation=validation_data, shuffle=shuffle, callbacks=callbacks,
                           verbose=verbose, history=history, start_epoch=start_epoch,
                           on_epoch_saved=save)
        for callback in callbacks:
            callback.on_train_end()
        self.history = history
        return history

    def evaluate(self, X: np.ndarray, Y: np.ndarray, batch_size: int = 256) -> dict:
        """{"loss": mean loss, "accuracy": fraction correct (None for regression)} on (X, Y)."""
        X, Y = self._training_arrays(X, Y, "X", "Y")
        Y_hat = self.predict(X, batch_size=batch_size)
        return {"loss": self.loss(Y, Y_hat), "accuracy": accuracy(Y, Y_hat)}

    def _training_arrays(self, X, Y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
        """Validate (X, Y) at the model boundary; X in the model dtype, Y shaped like the output."""
        X = self._as_model_dtype(X, x_name)
        Y = np.asarray(Y)
        if Y.ndim < 1 or Y.shape[0] != X.shape[0]:
            raise ShapeError(f"{y_name}: expected {X.shape[0]} targets (one per row of {x_name}), "
                             f"got shape {Y.shape}")
        Y = self._numeric_targets(Y, y_name)  # before _n_outputs reads its largest class id
        self._complete_output_layer(self._n_outputs(Y))
        Y_hat_shape = (X.shape[0],) + self.output_shape(X.shape[1:])
        return X, self._targets_like(Y, np.empty(Y_hat_shape, dtype=self.dtype), y_name)

    def _n_outputs(self, Y: np.ndarray) -> int:
        if Y.ndim == 1 and isinstance(self.loss, CrossEntropy):
            n_classes = int(Y.max()) + 1 if Y.size else 1
            if self._output_args is not None and n_classes > _MAX_CLASSES_FROM_IDS:
                raise ValueError(f"Y: class ids go up to {n_classes - 1}; expected ids 0..k-1 "
                                 f"with k at most {_MAX_CLASSES_FROM_IDS:,}")
            return n_classes
        return int(np.prod(Y.shape[1:])) if Y.ndim > 1 else 1

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    # -- the course's training interface ----------------------------------------------------
    def train(self, dataset, epochs: int) -> History:
        """Train on a course-style ``Dataset`` (``dataset.train.sample()`` batches, one
        ``samples_per_epoch`` per epoch), validating on ``dataset.validate`` when present."""
        epochs = _check_count("epochs", epochs, minimum=0)
        self._complete_output_layer(dataset.out_dim)
        history = History()
        for epoch in range(epochs):
            self.optimizer.set_epoch(epoch)
            started, lr = _now(), float(self.optimizer.current_lr)
            batches = (self._training_arrays(*dataset.train.sample(), "X", "Y")
                       for _ in range(dataset.train.samples_per_epoch))
            logs = train_on_batches(self, batches, epoch) | {"lr": lr}
            if getattr(dataset, "validate", None) is not None:
                scores = self.evaluate(dataset.validate.data_, dataset.validate.labels)
                logs |= {"val_loss": scores["loss"], "val_accuracy": scores["accuracy"]}
            logs["time"] = _now() - started
            history.append(epoch, logs)
            self._log_to_course_logger(logs)
        self.history = history
        return history

    def test(self, dataset, save_predictions: bool = False) -> dict:
        """Loss and error (1 − accuracy) per test batch, in order; optionally the predictions."""
        data = dataset.test
        results = {"loss": [], "error": []}
        if save_predictions:
            results["prediction"] = []
        for start in range(0, data.n_samples, data.batch_size):
            X = data.data_[start : start + data.batch_size]
            Y_hat, loss = self.predict(X, data.labels[start : start + data.batch_size])
            Y = self._targets_like(data.labels[start : start + data.batch_size], Y_hat)
            results["loss"].append(loss)
            results["error"].append(1.0 - (accuracy(Y, Y_hat) or 0.0))
            if save_predictions:
                results["prediction"].append(Y_hat)
        return results

    def _log_to_course_logger(self, logs: dict) -> None:
        if self.logger is None:
            return
        def error(accuracy_value):  # the course logged 1 − accuracy
            return None if accuracy_value is None else 1.0 - accuracy_value

        log = {
            "loss": {"train": logs["loss"], "validate": logs.get("val_loss")},
            "error": {"train": error(logs["accuracy"]), "validate": error(logs.get("val_accuracy"))},
        }
        self.logger.push(log)

    def summary(self, input_shape: tuple[int, ...] | None = None, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (printed and returned)."""
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError("summary: the model is not built yet; pass input_shape= or fit it first")
        if not all(layer.built for layer in self.layers):
            self.build(shape)
        rows = [("Layer", "Output shape", "Parameters")]
        for index, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            rows.append((f"{index}: {type(layer).__name__}({layer.activation.name if layer.activation else ''})",
                         str((None,) + shape), f"{sum(p.size for p in layer.parameters.values()):,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        rule = "-" * len(lines[0])
        text = "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Total parameters: {self.count_parameters():,} ({self.dtype})",
                          f"Loss: {self.loss.name}   Optimizer: {type(self.optimizer).__name__}"])
        print_fn(text)
        return text

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save architecture, metadata and parameters to one .npz file, atomically
        (see ``neural_networks.serialization`` for the format)."""
        return save_model(self, path)

    @staticmethod
    def load(path) -> "NeuralNetwork":
        """Load a model written by ``save``; never executes code from the file."""
        return load_model(path)

    def count_parameters(self) -> int:
        return int(sum(p.size for p in self.named_parameters().values()))

    def get_config(self) -> dict:
        """JSON-able architecture: layers, loss, dtype, input shape and optimizer."""
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": self.loss.get_config()["type"],
            "dtype": str(self.dtype),
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "optimizer": self.optimizer.get_config(),
            "seed": self.seed,
        }

    def to_onnx(self, path=None, opset: int = 17):
        """The model as an ``onnx.ModelProto``, written to ``path`` if given (``export.to_onnx``)."""
        from .export import to_onnx
        return to_onnx(self, path, opset=opset)
