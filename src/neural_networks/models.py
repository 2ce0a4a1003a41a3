"""NeuralNetwork: the architecture and its maths.

The model owns its layers, loss and optimizer, runs forward and backward passes, holds
parameters and buffers, switches training/evaluation mode, describes itself (config,
summary) and its state (``state_dict``). The training loop is ``training.Trainer``,
which ``fit`` hands the model to; the course's interface (``train``, ``test``,
``layer_args``) lives in ``course``; files are written by ``serialization``.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import distributed as distribution, inputs, serialization
from .course import CourseModelAPI, layers_from_args
from .errors import FormatError, InvalidParameterError, NotBuiltError, ShapeError, TrainingDivergedError
from .layers import Layer, layer_from_config
from .losses import Loss, initialize_loss, loss_config
from .optimizers import OPTIMIZERS, Optimizer, initialize_optimizer, optimizer_from_config
from .training import History, Trainer
from .utils.batches import batch_indices
from .utils.random import SeedSource, generator_from_state, generator_state
from .utils.validation import Integral, Interval, StrOptions, lookup, validate_params

__all__ = ["NeuralNetwork", "initialize_model"]


def _build_optimizer(optimizer) -> Optimizer:
    if optimizer is None:
        return initialize_optimizer("SGD", lr=0.01)
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return lookup(OPTIMIZERS, optimizer, "optimizer")()  # the class defaults, lr included
    if isinstance(optimizer, dict):
        return initialize_optimizer(**optimizer)
    raise InvalidParameterError(
        f"optimizer: expected an Optimizer, a name or a dict of initialize_optimizer "
        f"arguments, got {type(optimizer).__name__}"
    )


class NeuralNetwork(CourseModelAPI):
    """A feed-forward network: layers applied in order, trained by backpropagation.

    Parameters
    ----------
    layers : list of Layer (or of layer config dicts)
        The network, first layer first. Parameters are created by ``build(input_shape)``
        (or the first forward pass / ``fit``) in ``dtype``.
    loss : str or Loss
        "cross_entropy" (with a SoftMax output the model backpropagates the fused,
        exact gradient (Ŷ − Y)/N) or "l2".
    optimizer : Optimizer, name or dict
        Default: plain SGD with lr 0.01.
    seed : int or None
        Seeds every layer's generator (initialisation, dropout) and the data order;
        None uses fresh entropy.
    dtype : "float32" (default) or "float64"
        dtype of the parameters and of the data ``predict``/``fit``/``evaluate`` take.

    The course's form ``NeuralNetwork(loss=..., layer_args=[...], optimizer_args={...},
    logger=None, seed=None)`` also works (see ``neural_networks.course``).

    >>> import numpy as np
    >>> from neural_networks.layers import FullyConnected
    >>> model = NeuralNetwork([FullyConnected(8, "relu"), FullyConnected(3, "softmax")], seed=0)
    >>> model.build((4,)).count_parameters()
    67
    >>> with model.evaluating():
    ...     model.training
    False
    >>> model.predict(np.ones((2, 4))).shape
    (2, 3)
    """

    _parameter_constraints = {"dtype": [StrOptions({"float32", "float64"})],
                              "seed": [Interval(Integral, 0, None), None]}

    def __init__(
        self,
        layers: Sequence[Layer] | None = None,
        loss: str | Loss = "cross_entropy",
        optimizer=None,
        seed: int | None = None,
        dtype: str = "float32",
        *,
        layer_args=None,
        optimizer_args: dict | None = None,
        logger=None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        dtype_name = str(np.dtype(dtype)) if isinstance(dtype, (str, type, np.dtype)) else dtype
        validate_params(self, dtype=dtype_name, seed=seed)
        if layers is not None and layer_args is not None:
            raise InvalidParameterError("NeuralNetwork: give either layers or layer_args, not both")
        if optimizer is not None and optimizer_args is not None:
            raise InvalidParameterError("NeuralNetwork: give either optimizer or optimizer_args, not both")
        self.dtype = np.dtype(dtype_name)
        self.seed = seed
        self.loss = initialize_loss(loss)
        self.optimizer = optimizer_args if optimizer_args is not None else optimizer
        self.logger = logger
        #: a course output layer whose n_out the training data decides (see ``course``)
        self._deferred_output = None
        if layer_args is not None:
            layers, self._deferred_output = layers_from_args(layer_args)
        self.layers: list[Layer] = [layer if isinstance(layer, Layer) else layer_from_config(layer)
                                    for layer in (layers or [])]
        self._seeds = SeedSource(seed)
        #: the data-order generator (shuffling in ``fit``)
        self.rng = self._seeds.generator()
        self.input_shape: tuple[int, ...] | None = None
        self.history: History | None = None
        #: what a user needs to apply the model to raw data: class names, standardisation, ...
        self.metadata: dict = {}
        self.stop_training = False
        self._training = True
        self._adopt_layers()
        if input_shape is not None:
            self.build(input_shape)

    # -- construction -----------------------------------------------------------------
    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer) -> None:
        self._optimizer = _build_optimizer(optimizer)

    def _adopt_layers(self) -> None:
        """Name each layer after its place, and give every unbuilt one the model's dtype
        and its own generator from the model's seed."""
        for index, layer in enumerate(self.layers):
            layer.name = f"layer {index} ({type(layer).__name__})"
            layer.training = self._training
            if not layer.built:
                layer.dtype = self.dtype
                layer.rng = self._seeds.generator()

    def add_output_layer(self, n_outputs: int) -> None:
        """Append the deferred course output layer, sized ``n_outputs`` (no-op without one)."""
        if self._deferred_output is not None:
            self.layers.append(layer_from_config(dict(self._deferred_output, n_out=int(n_outputs))))
            self._deferred_output = None
            self._adopt_layers()

    def build(self, input_shape: tuple[int, ...]) -> "NeuralNetwork":
        """Create every parameter for samples of ``input_shape`` (no batch axis), layer by
        layer from their output shapes, without running data through them."""
        if not self.layers:
            raise NotBuiltError("NeuralNetwork has no layers")
        shape = tuple(int(n) for n in input_shape)
        if self.input_shape is not None and shape != self.input_shape:
            raise ShapeError(f"build: the model was built for samples of shape {self.input_shape}, "
                             f"got {shape}")
        self.input_shape = shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.output_shape(shape)
        return self

    def check_loss(self) -> None:
        """Raise if the loss cannot train this output layer (cross-entropy on anything but
        a softmax over classes, say); the Trainer asks before the first step."""
        self.loss.check_output_layer(self.layers[-1].activation, int(np.prod(self.output_shape())))

    @property
    def built(self) -> bool:
        return (self.input_shape is not None and self._deferred_output is None
                and all(layer.built for layer in self.layers))

    def output_shape(self, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``input_shape``."""
        shape = tuple(input_shape if input_shape is not None else self.input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    # -- modes ----------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """True in training mode (dropout active, batch statistics), False in evaluation."""
        return self._training

    def set_training(self, training: bool = True) -> "NeuralNetwork":
        """Put the model and every layer in training (True) or evaluation (False) mode.
        (Not ``train``: that is the course's training loop.)"""
        validate_params("set_training", {"training": [bool, np.bool_]}, training=training)
        self._training = bool(training)
        for layer in self.layers:
            layer.training = self._training
        return self

    @contextmanager
    def mode(self, training: bool) -> Iterator["NeuralNetwork"]:
        """Run a block in the given mode, then restore the previous one (also on errors)."""
        previous = self._training
        self.set_training(training)
        try:
            yield self
        finally:
            self.set_training(previous)

    def evaluating(self):
        """``with model.evaluating():`` runs the block in evaluation mode."""
        return self.mode(False)

    # -- forward and backward -------------------------------------------------------------
    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        """Run every layer in order (in X's dtype); cache for backward when ``retain_derived``."""
        if not self.layers:
            raise NotBuiltError("NeuralNetwork has no layers")
        if self.input_shape is None:
            self.build(np.shape(X)[1:])
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

    def update(self, epoch: int | None = None) -> None:
        """One optimizer step on every parameter from the stored gradients."""
        if epoch is not None:
            self.optimizer.set_epoch(epoch)
        self.optimizer.step(self.named_parameters(), self.named_gradients())

    # -- parameters and buffers -------------------------------------------------------------
    def named_parameters(self) -> "OrderedDict[str, np.ndarray]":
        """Every parameter array under a unique name "<layer index>.<key>" (e.g. "2.W")."""
        return OrderedDict((f"{i}.{key}", value) for i, layer in enumerate(self.layers)
                           for key, value in layer.parameters.items())

    def named_gradients(self) -> "OrderedDict[str, np.ndarray]":
        return OrderedDict((f"{i}.{key}", value) for i, layer in enumerate(self.layers)
                           for key, value in layer.gradients.items())

    def named_buffers(self) -> "OrderedDict[str, np.ndarray]":
        """Every buffer (running statistics) under "<layer index>.<key>"."""
        return OrderedDict((f"{i}.{key}", value) for i, layer in enumerate(self.layers)
                           for key, value in layer.buffers.items())

    def count_parameters(self, trainable: bool = True) -> int:
        """Number of trained values (``trainable=False``: of buffer values)."""
        arrays = self.named_parameters() if trainable else self.named_buffers()
        return int(sum(array.size for array in arrays.values()))

    # -- inference ------------------------------------------------------------------------------
    def predict(self, X: np.ndarray, Y: np.ndarray | None = None, batch_size: int = 256):
        """Outputs for X, computed in evaluation mode, in batches, in the model's dtype,
        without touching any cache or gradient. With targets Y, returns ``(Y_hat, loss)``."""
        validate_params("predict", {"batch_size": [Interval(Integral, 1, None)]}, batch_size=batch_size)
        X = self.check_inputs(X, "X")
        self._check_finite_parameters()
        with self.evaluating():
            outputs = [self.forward(X[rows], retain_derived=False)
                       for rows in batch_indices(X.shape[0], batch_size)]
        # X holds at least one sample (checked above); one batch needs no concatenation copy
        Y_hat = np.ascontiguousarray(outputs[0]) if len(outputs) == 1 else np.concatenate(outputs)
        if Y is None:
            return Y_hat
        return Y_hat, self.loss(self.check_targets(Y, X.shape[0], "Y"), Y_hat)

    def evaluate(self, X: np.ndarray, Y: np.ndarray, batch_size: int = 256, distributed=None) -> dict:
        """{"loss": mean loss, "accuracy": fraction correct (None for regression)} on (X, Y),
        in evaluation mode. ``distributed="mpi"``: every rank evaluates its share of the
        rows and the sums are reduced (every rank gets the figures of the whole set)."""
        X = self.check_inputs(X, "X")
        Y = self.check_targets(Y, X.shape[0], "Y")
        if distributed is not None:
            return distribution.get_strategy(distributed).evaluate(self, X, Y, batch_size=batch_size)
        Y_hat = self.predict(X, batch_size=batch_size)
        return {"loss": self.loss(Y, Y_hat), "accuracy": self.loss.accuracy(Y, Y_hat)}

    def check_inputs(self, X, argument: str = "X") -> np.ndarray:
        """X validated for this model (see ``neural_networks.inputs.check_inputs``)."""
        return inputs.check_inputs(X, self.dtype, self.input_shape, argument)

    def check_targets(self, Y, n_samples: int, argument: str = "Y") -> np.ndarray:
        """Y as targets of the output's shape (class ids one-hot encoded); sizes a deferred
        course output layer from them first."""
        Y = inputs.check_numeric_targets(Y, n_samples, argument)
        if self._deferred_output is not None:
            self.add_output_layer(inputs.n_outputs_from_targets(Y, self.loss.name == "cross_entropy", argument))
        if self.input_shape is None:
            raise NotBuiltError(f"{argument}: build the model (or pass its inputs) before its targets")
        output_shape = (n_samples,) + self.output_shape(self.input_shape)
        return inputs.one_hot_targets(Y, output_shape, self.dtype, argument)

    def _check_finite_parameters(self) -> None:
        for name, array in self.named_parameters().items():
            if not np.all(np.isfinite(array)):
                raise TrainingDivergedError(f"parameter {name} holds nan or inf (training diverged?); "
                                         f"the model cannot predict")

    # -- training ------------------------------------------------------------------------------
    def fit(self, X, Y, epochs: int = 10, batch_size: int = 32, validation_data=None,
            validation_split: float = 0.0, shuffle: bool = True, callbacks: Sequence = (),
            verbose: int = 1, checkpoint=None, resume=None, distributed=None) -> History:
        """Train on (X, Y) for ``epochs`` epochs of mini-batches of ``batch_size``, in
        training mode; see ``training.Trainer`` for every argument. Returns the History.

        Y holds class ids (N,) or one-hot rows (N, k) for classification, targets
        (N, d) for regression. ``checkpoint`` (a .npz path or a folder) is rewritten after
        every epoch; ``resume`` continues such a run (``epochs`` is the total).
        ``distributed="mpi"`` trains data-parallel over the ranks of ``mpiexec -n K``
        (``batch_size`` is the global batch; see ``neural_networks.distributed``).
        """
        trainer = Trainer(self, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                          callbacks=callbacks, verbose=verbose, checkpoint=checkpoint, resume=resume,
                          distributed=distributed)
        self.history = trainer.fit(X, Y, validation_data=validation_data,
                                   validation_split=validation_split)
        return self.history

    # -- description ----------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (printed and returned)."""
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise NotBuiltError("summary: the model is not built yet; pass input_shape= or fit it first")
        if not self.built:
            self.build(shape)
        rows = [("Layer", "Output shape", "Parameters")]
        for index, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            activation = layer.activation.name if layer.activation is not None else ""
            counts = sum(p.size for p in layer.parameters.values())
            rows.append((f"{index}: {type(layer).__name__}({activation})", str((None,) + shape), f"{counts:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        rule = "-" * len(lines[0])
        text = "\n".join([lines[0], rule, *lines[1:], rule,
                          f"Trainable parameters: {self.count_parameters():,} ({self.dtype})",
                          f"Non-trainable parameters: {self.count_parameters(trainable=False):,}",
                          f"Loss: {self.loss.name}   Optimizer: {type(self.optimizer).__name__}"])
        print_fn(text)
        return text

    def get_config(self) -> dict:
        """JSON-able architecture: layers, loss, dtype, input shape, optimizer and seed."""
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": loss_config(self.loss),
            "dtype": str(self.dtype),
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "optimizer": self.optimizer.get_config(),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict) -> "NeuralNetwork":
        """An unbuilt model with the architecture of ``get_config()`` (build it, or load a
        state into it with ``load_state_dict``)."""
        layers = [layer_from_config(layer) for layer in config["layers"]]
        model = cls(layers, loss=config["loss"], optimizer=optimizer_from_config(config["optimizer"]),
                    seed=config.get("seed"), dtype=config["dtype"])
        if config.get("input_shape") is not None:
            model.input_shape = tuple(int(n) for n in config["input_shape"])
        return model

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Every layer's parameters, buffers and generator, and the data-order generator."""
        return {"layers": [layer.state_dict() for layer in self.layers], "rng": generator_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        """Copy a ``state_dict`` in; an unbuilt model is built first, after checking that the
        stored parameter shapes are the ones the architecture declares (so a forged size
        cannot make it allocate more than the state itself holds)."""
        layer_states = state.get("layers")
        if not isinstance(layer_states, list) or len(layer_states) != len(self.layers):
            raise ShapeError(f"load_state_dict: expected the state of {len(self.layers)} layers")
        if not self.built:
            if self.input_shape is None:
                raise NotBuiltError("load_state_dict: the model has no input shape; build it first")
            self._check_declared_shapes(layer_states)
            input_shape, self.input_shape = self.input_shape, None
            self.build(input_shape)
        for layer, layer_state in zip(self.layers, layer_states):
            layer.load_state_dict(layer_state)
        if state.get("rng") is not None:
            self.rng = generator_from_state(state["rng"])

    def _check_declared_shapes(self, layer_states: list) -> None:
        shape = self.input_shape
        for index, (layer, layer_state) in enumerate(zip(self.layers, layer_states)):
            stored = layer_state.get("parameters", {}) if isinstance(layer_state, dict) else {}
            for key, declared in layer.parameter_shapes(shape).items():
                held = np.shape(stored.get(key))
                if tuple(declared) != tuple(held):
                    raise ShapeError(f"{layer.name}: parameter {key} needs shape {tuple(declared)}, "
                                     f"the state holds {held}")
            shape = layer.output_shape(shape)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save architecture, metadata, parameters and buffers to one .npz file, atomically
        (see ``neural_networks.serialization`` for the format)."""
        if not self.built:
            raise NotBuiltError("save: the model has no parameters yet; fit it or call build(input_shape) first")
        return serialization.save_model(path, self.get_config(), {"model": self.state_dict()}, self.metadata)

    @classmethod
    def load(cls, path) -> "NeuralNetwork":
        """Load a model written by ``save`` (or a checkpoint's model); never executes code
        from the file; any problem is a ``FormatError``."""
        archive = serialization.read_model(path)
        try:
            model = cls.from_config(archive.config)
            model.load_state_dict(archive.state["model"])
        except FormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, NotImplementedError,
                MemoryError, OverflowError, NotBuiltError) as error:
            raise FormatError(f"{path}: the model cannot be rebuilt ({error})") from None
        model.metadata = dict(archive.metadata)
        return model

    def to_onnx(self, path=None, opset: int = 17):
        """Export to ONNX (see ``neural_networks.export.to_onnx``)."""
        from .export import to_onnx

        return to_onnx(self, path, opset=opset)


def initialize_model(name=None, loss="cross_entropy", layer_args=None, optimizer_args=None,
                     logger=None, seed=None) -> NeuralNetwork:
    """The course's factory: ``name`` is ignored (as in the course); a last ``layer_args``
    entry without ``n_out`` is sized from the data at the first ``train``.

    >>> model = initialize_model("ffnn", "cross_entropy",
    ...     [{"name": "fully_connected", "activation": "relu", "n_out": 8},
    ...      {"name": "fully_connected", "activation": "softmax", "n_out": None}],
    ...     {"name": "SGD", "lr": 0.01}, seed=0)
    >>> len(model.layers)  # the output layer waits for the data
    1
    """
    return NeuralNetwork(loss=loss, layer_args=layer_args, optimizer_args=optimizer_args,
                         logger=logger, seed=seed)
