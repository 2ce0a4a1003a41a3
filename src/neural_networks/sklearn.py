"""scikit-learn estimators backed by a ``NeuralNetwork``: ``NeuralNetworkClassifier`` and
``NeuralNetworkRegressor``.

They take the parameters of ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``
where the meaning is the same (``hidden_layer_sizes``, ``activation``, ``batch_size``,
``learning_rate_init``, ``max_iter`` (epochs), ``shuffle``, ``random_state``, ``tol``,
``verbose``, ``warm_start``, ``early_stopping``, ``validation_fraction``,
``n_iter_no_change``), plus

- ``layers``: a list of layer configs (``{"type": "conv2d", "n_out": 8, ...}``, as
  ``Layer.get_config()`` writes them) or ``Layer`` objects, used instead of the hidden
  layers; the output layer is always added, sized from the data;
- ``input_shape``: the shape of one sample, to reshape the 2-D ``X`` scikit-learn passes
  (``(8, 8, 1)`` turns 64 columns into an NHWC image), so a CNN can sit in a Pipeline;
- ``optimizer``: "adam" (default), "adamw", "sgd", "rmsprop" (with ``lr`` =
  ``learning_rate_init`` and the library's defaults otherwise), a dict of
  ``initialize_optimizer`` arguments (``{"name": "sgd", "momentum": 0.9}``; ``lr``
  defaults to ``learning_rate_init``) or an ``Optimizer``;
- ``dtype``: "float32" or "float64"; None (default) keeps float32 data in float32 and
  computes everything else in float64, as scikit-learn's MLP does.

They follow scikit-learn's conventions: ``__init__`` only stores its arguments, ``fit``
starts afresh unless ``warm_start``, ``partial_fit`` trains one more epoch, learned state
ends with an underscore (``model_`` is the fitted ``NeuralNetwork``), an int
``random_state`` makes ``fit`` repeatable bit for bit, and fitted estimators survive
``clone``, ``pickle`` and ``joblib``.

Training stops as MLP's does: after more than ``n_iter_no_change`` consecutive epochs in
which the training loss did not fall by at least ``tol`` (or, with ``early_stopping``,
the score on a held-out ``validation_fraction`` did not rise by ``tol``; the weights of
the best validation score are kept). ``loss_curve_`` holds the library's loss:
cross-entropy for the classifier and, for the regressor, the squared error summed over
outputs and averaged over samples (MLP reports half the mean over outputs).

>>> from sklearn.datasets import load_iris
>>> X, y = load_iris(return_X_y=True)
>>> clf = NeuralNetworkClassifier((16,), learning_rate_init=0.01, batch_size=16,
...                               random_state=0).fit(X, y)
>>> clf.predict_proba(X[:2]).shape, clf.n_iter_ < clf.max_iter, clf.score(X, y) > 0.95
((2, 3), True, True)
"""

from __future__ import annotations

import copy
import math
import warnings
from numbers import Integral, Real

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        check_classification_targets,
        type_of_target,
    )
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "neural_networks.sklearn needs scikit-learn >= 1.6: "
        "pip install 'neural-networks[datasets]'"
    ) from error

from .callbacks import Callback
from .errors import InvalidParameterError
from .layers import LAYERS, Flatten, FullyConnected, Layer
from .models import NeuralNetwork
from .optimizers import Optimizer, initialize_optimizer

__all__ = ["NeuralNetworkClassifier", "NeuralNetworkRegressor"]

#: MLP's activation names, and the library's own
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                "linear": "linear", "sigmoid": "sigmoid", "arctan": "arctan"}
_OPTIMIZER_NAMES = {"adam", "adamw", "sgd", "rmsprop"}
#: MLP's batch_size="auto"
_AUTO_BATCH_SIZE = 200


def _snapshot(model: NeuralNetwork) -> list[dict]:
    """Copies of every layer's parameters and buffers (not its random state)."""
    return [{"parameters": {k: v.copy() for k, v in layer.parameters.items()},
             "buffers": {k: v.copy() for k, v in layer.buffers.items()}}
            for layer in model.layers]


def _restore(model: NeuralNetwork, snapshot: list[dict]) -> None:
    for layer, state in zip(model.layers, snapshot):
        layer.load_state_dict(state)  # copies in place; no "rng" key: the generator goes on


class _StoppingRule(Callback):
    """MLP's stopping rule, epoch by epoch.

    Without validation data: an epoch counts as "no improvement" when its training loss
    is above ``best_loss_ − tol``; with it, when the validation score is below
    ``best_validation_score_ + tol`` (and the weights of the best score are kept and put
    back at the end). Training stops once more than ``n_iter_no_change`` consecutive
    epochs brought no improvement. The counters live on the estimator, so a warm start
    or ``partial_fit`` goes on counting where the previous call stopped.
    """

    def __init__(self, estimator, validation=None) -> None:
        super().__init__()
        self.estimator = estimator
        self.validation = validation
        self.stopped = False
        self.best_state = None

    def on_train_begin(self, model) -> None:
        super().on_train_begin(model)
        if self.validation is not None and np.isfinite(self.estimator.best_validation_score_):
            self.best_state = _snapshot(model)  # a warm start: the weights a previous fit kept

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        est = self.estimator
        if self.validation is not None:
            score = est._validation_score(self.model, *self.validation)
            est.validation_scores_.append(score)
            improved = score >= est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_state = _snapshot(self.model)
            what = "Validation score did not improve"
        else:
            loss = logs["loss"]
            improved = loss <= est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, loss)
            what = "Training loss did not improve"
        est._no_improvement_count = 0 if improved else est._no_improvement_count + 1
        if est._no_improvement_count > est.n_iter_no_change:
            self.model.stop_training = True
            self.stopped = True
            if est.verbose:
                print(f"{what} more than tol={est.tol:f} for {est.n_iter_no_change} "
                      f"consecutive epochs. Stopping.")

    def on_train_end(self) -> None:
        if self.best_state is not None:
            _restore(self.model, self.best_state)


def _layer_from_spec(spec, index: int) -> Layer:
    """A fresh layer from a config dict ({"type": ..., ...}) or a copy of a Layer."""
    if isinstance(spec, Layer):
        return copy.deepcopy(spec)  # the parameter itself stays untouched by fit
    if not isinstance(spec, dict):
        raise InvalidParameterError(
            f"layers[{index}]: expected a layer config dict or a Layer, got {type(spec).__name__}")
    settings = dict(spec)
    kind = settings.pop("type", None) or settings.pop("name", None)
    if kind not in LAYERS:
        raise InvalidParameterError(
            f"layers[{index}]: expected a 'type' among {sorted(LAYERS)}, got {kind!r}")
    return LAYERS[kind].from_config({"type": kind, **settings})


class _NeuralNetworkEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, model building, training."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "layers": [list, None],
        "input_shape": ["array-like", None],
        "optimizer": [StrOptions(_OPTIMIZER_NAMES), dict, Optimizer],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "dtype": [StrOptions({"float32", "float64"}), None],
    }

    #: set by the subclasses
    _loss: str
    _output_activation: str

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        layers=None,
        input_shape=None,
        optimizer="adam",
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.layers = layers
        self.input_shape = input_shape
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype

    # -- building -----------------------------------------------------------------------
    def _input_dtypes(self):
        """What validate_data converts X to (the model converts on to its own dtype)."""
        return [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)

    def _sample_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(self.input_shape)
        if not shape or not all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1
                                for n in shape):
            raise InvalidParameterError(
                f"input_shape: expected a tuple of ints >= 1, got {self.input_shape!r}")
        if math.prod(shape) != n_features:
            raise ValueError(f"input_shape {shape} holds {math.prod(shape)} features per sample, "
                             f"but X has {n_features} features")
        return tuple(int(n) for n in shape)

    def _hidden_layers(self, sample_shape: tuple[int, ...]) -> list[Layer]:
        if self.layers is not None:
            return [_layer_from_spec(spec, i) for i, spec in enumerate(self.layers)]
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        activation = _ACTIVATIONS[self.activation]
        hidden = [FullyConnected(int(n), activation) for n in sizes]
        return ([Flatten()] if len(sample_shape) > 1 else []) + hidden

    def _make_optimizer(self) -> Optimizer:
        spec = self.optimizer
        if isinstance(spec, str):
            return initialize_optimizer(spec, lr=self.learning_rate_init)
        if isinstance(spec, dict):
            settings = dict(spec)
            name = settings.pop("name", None)
            if name is None:
                raise InvalidParameterError(
                    f"optimizer: a dict needs a 'name' (one of {sorted(_OPTIMIZER_NAMES)}), got {spec!r}")
            settings.setdefault("lr", self.learning_rate_init)
            return initialize_optimizer(name, **settings)
        return copy.deepcopy(spec)  # the parameter itself keeps no training state

    def _build_model(self, sample_shape, n_outputs: int, dtype, seed: int) -> NeuralNetwork:
        layers = self._hidden_layers(sample_shape)
        shape = sample_shape
        for layer in layers:
            shape = layer.output_shape(shape)
        if len(shape) != 1:  # the dense output layer takes vectors
            layers.append(Flatten())
        layers.append(FullyConnected(n_outputs, self._output_activation))
        model = NeuralNetwork(layers, loss=self._loss, optimizer=self._make_optimizer(),
                              seed=seed, dtype=dtype)
        return model.build(sample_shape)

    # -- training -------------------------------------------------------------------------
    def _fit(self, X, y, incremental: bool):
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y = validate_data(self, X, y, reset=first_pass, dtype=self._input_dtypes(),
                             **self._target_validation())
        targets, n_outputs = self._encode_targets(y, first_pass, incremental)
        random_state = check_random_state(self.random_state)
        if first_pass:
            dtype = self.dtype or ("float32" if X.dtype == np.float32 else "float64")
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            self.model_ = self._build_model(self._sample_shape(X.shape[1]), n_outputs, dtype, seed)
            self._reset_progress()
        elif not incremental:  # a warm start: the weights go on, the optimizer starts anew (as MLP)
            self.model_.optimizer = self._make_optimizer()
        X = X.reshape((X.shape[0],) + tuple(self.model_.input_shape))

        validation = None
        if self.early_stopping:
            X, X_val, targets, targets_val = train_test_split(
                X, targets, random_state=random_state, test_size=self.validation_fraction,
                stratify=self._stratify(targets))
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            validation = (X_val, targets_val)
        n_samples = X.shape[0]
        batch_size = min(_AUTO_BATCH_SIZE if self.batch_size == "auto" else self.batch_size, n_samples)

        rule = _StoppingRule(self, validation)
        history = self.model_.fit(X, targets, epochs=1 if incremental else self.max_iter,
                                  batch_size=batch_size, shuffle=self.shuffle, callbacks=[rule],
                                  verbose=2 if self.verbose else 0)
        for layer in self.model_.layers:
            layer.clear_gradients()  # drop the last batch's cache: nothing needs it, pickles stay small
        losses = [float(loss) for loss in history["loss"]]
        self.loss_curve_.extend(losses)
        self.loss_ = losses[-1]
        self.n_iter_ = len(losses)
        self.t_ += self.n_iter_ * n_samples
        if not incremental and not rule.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                          f"the optimization hasn't converged yet.", ConvergenceWarning)
        return self

    def _reset_progress(self) -> None:
        self.loss_curve_ = []
        self.t_ = 0
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _model_outputs(self, X) -> np.ndarray:
        """The fitted model's outputs for X, checked as scikit-learn checks it."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self._input_dtypes())
        return self.model_.predict(X.reshape((X.shape[0],) + tuple(self.model_.input_shape)))

    def _stratify(self, targets):
        return None


class NeuralNetworkClassifier(ClassifierMixin, _NeuralNetworkEstimator):
    """A neural-network classifier: hidden layers, then a softmax layer of one unit per
    class, trained on cross-entropy by mini-batches.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units of each fully connected hidden layer (ignored when ``layers`` is given).
    activation : {"relu", "tanh", "logistic", "identity", "sigmoid", "linear", "arctan"}, default "relu"
        Activation of those hidden layers (MLP's names or the library's).
    layers : list of layer configs or Layer, default None
        The hidden part of the network instead of ``hidden_layer_sizes``, e.g.
        ``[{"type": "conv2d", "n_out": 8, "kernel_shape": 3, "activation": "relu"},
        {"type": "pool2d", "kernel_shape": 2, "stride": 2}, {"type": "flatten"}]``.
        A Flatten is added before the output layer when the last layer's output is not a
        vector.
    input_shape : tuple of int, default None
        Shape of one sample; each row of X (n_features = the product) is reshaped to it.
    optimizer : str, dict or Optimizer, default "adam"
        See the module's docstring.
    batch_size : int or "auto", default "auto"
        Mini-batch size; "auto" is min(200, n_samples), larger sizes are clipped to n_samples.
    learning_rate_init : float, default 0.001
        Learning rate of an optimizer given by name (or a dict without "lr").
    max_iter : int, default 200
        Maximum number of epochs of ``fit``.
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default None
        Seeds the initial weights, the data order and the validation split.
    tol : float, default 1e-4
        Improvement below which an epoch counts as no improvement.
    verbose : bool, default False
        Print one line per epoch.
    warm_start : bool, default False
        Let ``fit`` go on from the fitted weights (with a fresh optimizer) instead of
        starting afresh.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified), stop on its accuracy and
        keep the weights of its best epoch.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
        Epochs without improvement tolerated before stopping.
    dtype : {"float32", "float64"} or None, default None
        Precision of the network; None: float32 for float32 X, float64 otherwise.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any sortable labels, strings included).
    model_ : NeuralNetwork
        The fitted network (``model_.save(path)`` stores it; it predicts probabilities).
    loss_ : float
        Training loss of the last epoch.
    loss_curve_ : list of float
        Training loss of every epoch (across warm starts and ``partial_fit`` calls).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 for ``partial_fit``).
    t_ : int
        Training samples seen.
    best_loss_, validation_scores_, best_validation_score_
        As MLP's: the best training loss (without early stopping), the validation accuracy
        of every epoch and its best value (with early stopping), None otherwise.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame X.
    """

    _loss = "cross_entropy"
    _output_activation = "softmax"

    def _target_validation(self) -> dict:
        return {"multi_output": False}

    def _encode_targets(self, y, first_pass: bool, incremental: bool):
        check_classification_targets(y)
        if type_of_target(y, input_name="y") not in ("binary", "multiclass"):
            raise ValueError(f"y: expected binary or multiclass labels, got {type_of_target(y)}")
        labels = np.unique(y)
        if first_pass and not incremental:
            self.classes_ = labels
        elif not incremental and not np.array_equal(labels, self.classes_):
            raise ValueError(
                f"warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previously got {self.classes_}, `y` has {labels}")
        elif incremental and np.setdiff1d(labels, self.classes_).size:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {labels}.")
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs samples "
                             f"of at least 2 classes")
        return np.searchsorted(self.classes_, y), len(self.classes_)

    def _stratify(self, targets):
        return targets

    @staticmethod
    def _validation_score(model, X_val, ids_val) -> float:
        return float(np.mean(np.argmax(model.predict(X_val), axis=1) == ids_val))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on X (n_samples, n_features) and labels y (n_samples,); returns self."""
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One more epoch on (X, y). ``classes`` (every label y will ever hold) is required
        on the first call; returns self."""
        _check_partial_fit_first_call(self, classes)
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class (columns in the order of ``classes_``)."""
        return self._model_outputs(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of ``predict_proba`` (−inf for a probability of exactly 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        probabilities = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[np.argmax(probabilities, axis=1)]


class NeuralNetworkRegressor(RegressorMixin, _NeuralNetworkEstimator):
    """A neural-network regressor: hidden layers, then a linear layer of one unit per
    target, trained on squared error by mini-batches.

    Parameters are those of ``NeuralNetworkClassifier``; ``early_stopping`` watches the
    R² score of the held-out fraction (not stratified).

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    model_, loss_, loss_curve_, n_iter_, t_, best_loss_, validation_scores_,
    best_validation_score_, n_features_in_, feature_names_in_
        As for ``NeuralNetworkClassifier`` (validation scores are R²).
    """

    _loss = "l2"
    _output_activation = "linear"

    def _target_validation(self) -> dict:
        return {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y, first_pass: bool, incremental: bool):
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        if first_pass:
            self.n_outputs_ = targets.shape[1]
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {targets.shape[1]} targets, but {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        return targets, self.n_outputs_

    @staticmethod
    def _validation_score(model, X_val, y_val) -> float:
        return float(r2_score(y_val, model.predict(X_val)))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on X (n_samples, n_features) and targets y ((n_samples,) or
        (n_samples, n_targets)); returns self."""
        return self._fit(X, y, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One more epoch on (X, y); returns self."""
        return self._fit(X, y, incremental=True)

    def predict(self, X) -> np.ndarray:
        """Predicted targets: (n_samples,) for one target, else (n_samples, n_targets)."""
        outputs = self._model_outputs(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
