"""Validation at the model boundary: fit, evaluate and predict refuse bad arguments with a
ValueError or TypeError that names the argument, and leave the model untouched."""

from __future__ import annotations

import re

import numpy as np
import pytest

import neural_networks as nn
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.optimizers import SGD

N, D, K = 12, 4, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)).astype(np.float32), rng.integers(0, K, N)


def built_model():
    model = nn.NeuralNetwork([FullyConnected(5, "relu"), FullyConnected(K, "softmax")],
                             optimizer=SGD(lr=0.1), seed=0)
    model.build((D,))
    return model


def names(argument):
    """A regex matching the argument's name as a whole word (``X`` but not ``X_val``)."""
    return rf"(?<![A-Za-z_]){re.escape(argument)}(?![A-Za-z_])"


X0, Y0 = data()
NAN_X = X0.copy()
NAN_X[3, 1] = np.nan
INF_X = X0.copy()
INF_X[0, 0] = -np.inf

# (case, X, Y, exception, argument named in the message)
BAD_INPUTS = [
    ("too few features", X0[:, :3], Y0, ValueError, "X"),
    ("too many features", np.hstack([X0, X0]), Y0, ValueError, "X"),
    ("rank 3", X0[:, :, None], Y0, ValueError, "X"),
    ("rank 1", X0[0], Y0[:1], ValueError, "X"),
    ("scalar", np.float32(1.0), Y0[:1], ValueError, "X"),
    ("nan", NAN_X, Y0, ValueError, "X"),
    ("inf", INF_X, Y0, ValueError, "X"),
    ("too large for float32", X0.astype(np.float64) * 1e300, Y0, ValueError, "X"),
    ("empty", X0[:0], Y0[:0], ValueError, "X"),
    ("strings", X0.astype(str), Y0, TypeError, "X"),
    ("objects", X0.astype(object), Y0, TypeError, "X"),
    ("complex", X0.astype(np.complex64), Y0, TypeError, "X"),
]

BAD_TARGETS = [
    ("class id too large", Y0 + 1, ValueError),
    ("class id equal to K", np.full(N, K), ValueError),
    ("negative class id", Y0 - 1, ValueError),
    ("fractional class id", Y0 + 0.5, ValueError),
    ("nan target", np.where(Y0 == 0, np.nan, Y0.astype(float)), ValueError),
    ("one-hot too wide", np.eye(K + 1)[Y0], ValueError),
    ("one-hot too narrow", np.eye(K - 1)[Y0 % (K - 1)], ValueError),
    ("too few targets", Y0[:-1], ValueError),
    ("too many targets", np.concatenate([Y0, Y0]), ValueError),
    ("rank 3 targets", np.eye(K)[Y0][:, :, None], ValueError),
    ("scalar target", np.int64(1), ValueError),
    ("string targets", Y0.astype(str), TypeError),
    ("object targets", Y0.astype(object), TypeError),
]


def call(method, model, X, Y, **kwargs):
    if method == "fit":
        return model.fit(X, Y, epochs=1, batch_size=4, verbose=0, **kwargs)
    if method == "evaluate":
        return model.evaluate(X, Y, **kwargs)
    if Y is None:
        return model.predict(X, **kwargs)
    return model.predict(X, Y, **kwargs)


def assert_untouched(model, before):
    for name, value in model.named_parameters().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("case, X, Y, error, argument", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_refused_naming_the_argument(method, case, X, Y, error, argument):
    model = built_model()
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    with pytest.raises(error, match=names(argument)):
        call(method, model, X, Y if method != "predict" else None)
    assert_untouched(model, before)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("case, Y, error", BAD_TARGETS, ids=[c[0] for c in BAD_TARGETS])
def test_bad_targets_are_refused_naming_the_argument(method, case, Y, error):
    model = built_model()
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    with pytest.raises(error, match=names("Y")):
        call(method, model, X0, Y)
    assert_untouched(model, before)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "8", None])
def test_bad_batch_sizes_are_refused(method, batch_size):
    model = built_model()
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        if method == "fit":
            model.fit(X0, Y0, epochs=1, batch_size=batch_size, verbose=0)
        elif method == "evaluate":
            model.evaluate(X0, Y0, batch_size=batch_size)
        else:
            model.predict(X0, batch_size=batch_size)


@pytest.mark.parametrize("epochs", [-1, 1.0, "2", None, True])
def test_bad_epochs_are_refused(epochs):
    with pytest.raises((ValueError, TypeError), match="epochs"):
        built_model().fit(X0, Y0, epochs=epochs, verbose=0)


@pytest.mark.parametrize(
    "validation, argument",
    [
        ((NAN_X, Y0), "X_val"),
        ((X0[:, :3], Y0), "X_val"),
        ((X0[:0], Y0[:0]), "X_val"),
        ((X0.astype(str), Y0), "X_val"),
        ((X0, Y0 + K), "Y_val"),
        ((X0, Y0[:-2]), "Y_val"),
        ((X0, np.eye(K + 1)[Y0]), "Y_val"),
        ((X0, Y0.astype(object)), "Y_val"),
    ],
)
def test_bad_validation_data_is_refused_naming_it(validation, argument):
    model = built_model()
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    with pytest.raises((ValueError, TypeError), match=names(argument)):
        model.fit(X0, Y0, epochs=1, verbose=0, validation_data=validation)
    assert_untouched(model, before)


@pytest.mark.parametrize("validation", [(X0,), X0, (X0, Y0, Y0)])
def test_validation_data_must_be_a_pair(validation):
    with pytest.raises(TypeError, match="validation_data"):
        built_model().fit(X0, Y0, epochs=1, verbose=0, validation_data=validation)


def test_image_model_checks_the_sample_shape_it_was_built_for():
    model = nn.NeuralNetwork([Conv2D(2, 3, "relu"), Pool2D(2, stride=2), Flatten(),
                              FullyConnected(K, "softmax")], seed=0)
    model.build((6, 6, 1))
    images = np.zeros((3, 6, 6, 1), dtype=np.float32)
    assert model.predict(images).shape == (3, K)
    for bad in (np.zeros((3, 6, 6, 2)), np.zeros((3, 6, 6)), np.zeros((3, 7, 6, 1)), np.zeros((3, 36))):
        with pytest.raises(ValueError, match=names("X")):
            model.predict(bad)
        with pytest.raises(ValueError, match=names("X")):
            model.evaluate(bad, np.zeros(3, dtype=int))


def test_an_unbuilt_model_takes_its_input_shape_from_the_first_fit():
    model = nn.NeuralNetwork([FullyConnected(5, "relu"), FullyConnected(K, "softmax")], seed=0)
    model.fit(X0, Y0, epochs=1, verbose=0)
    assert model.input_shape == (D,)
    with pytest.raises(ValueError, match=names("X")):
        model.predict(X0[:, :2])


def test_valid_edge_cases_are_accepted():
    model = built_model()
    # one sample, bool targets as class ids 0/1, a batch larger than the data
    assert model.predict(X0[:1]).shape == (1, K)
    model.fit(X0, Y0 > 0, epochs=1, batch_size=100, verbose=0)
    assert model.evaluate(X0[:1], Y0[:1])["accuracy"] in (0.0, 1.0)


def test_a_corrupt_class_id_does_not_size_a_huge_output_layer():
    from neural_networks.models import NeuralNetwork

    model = NeuralNetwork(layer_args=[{"name": "fully_connected", "n_out": 4, "activation": "relu"},
                                      {"name": "fully_connected", "n_out": None, "activation": "softmax"}])
    with pytest.raises(ValueError, match="class ids"):
        model.fit(np.zeros((3, 2)), np.array([0, 1, 10**9]), epochs=1, verbose=0)


# -- what a new user hits (each of these failed on the release before the Trainer) -------------
def test_bad_validation_data_is_refused_before_the_first_step():
    X, y = data()
    model = nn.NeuralNetwork([FullyConnected(5, "relu"), FullyConnected(K, "softmax")], seed=0)
    with pytest.raises(nn.ShapeError, match=r"validation_data\[0\]"):
        model.fit(X, y, epochs=1, verbose=0, validation_data=(X[:, :2], y))
    assert model.optimizer.iterations == 0  # not one step was taken


def test_a_cnn_given_flat_input_names_the_layer_and_the_shapes():
    X = np.zeros((5, 64), dtype=np.float32)
    model = nn.NeuralNetwork([Conv2D(2, 3), Flatten(), FullyConnected(2, "softmax")], seed=0)
    with pytest.raises(nn.ShapeError, match=r"layer 0 \(Conv2D\).*\(height, width, channels\).*\(64,\)"):
        model.fit(X, np.zeros(5, int), epochs=1, verbose=0)


@pytest.mark.parametrize("shape, hint", [((3, 7, 7, 1), r"\(3, 7, 7, 1\)"), ((8, 8, 1), "batch axis")])
def test_predict_on_the_wrong_image_shape_says_what_the_model_takes(shape, hint):
    model = nn.NeuralNetwork([Conv2D(2, 3), Flatten(), FullyConnected(2, "softmax")], seed=0).build((8, 8, 1))
    with pytest.raises(nn.ShapeError, match=r"\(None, 8, 8, 1\).*" + hint):
        model.predict(np.zeros(shape))


def test_predicting_one_unbatched_sample_points_to_the_batch_axis():
    X, _ = data()
    with pytest.raises(nn.ShapeError, match=r"\(None, 4\).*batch axis"):
        built_model().predict(X[0])


def test_class_ids_as_an_integer_column_are_accepted():
    X, y = data()
    a, b = built_model(), built_model()
    a.fit(X, y, epochs=2, batch_size=4, verbose=0)
    b.fit(X, y.reshape(-1, 1), epochs=2, batch_size=4, verbose=0)
    for name, value in a.named_parameters().items():
        np.testing.assert_array_equal(b.named_parameters()[name], value)


@pytest.mark.parametrize("setting", [{"verbose": -1}, {"verbose": "yes"}, {"verbose": 3},
                                     {"shuffle": "no"}, {"shuffle": 0}, {"epochs": True}])
def test_fit_settings_are_checked(setting):
    X, y = data()
    argument = next(iter(setting))
    with pytest.raises(nn.InvalidParameterError, match=names(argument)):
        built_model().fit(X, y, **({"epochs": 1} | setting))


def test_assigning_an_unknown_optimizer_fails_at_once():
    model = built_model()
    with pytest.raises(nn.InvalidParameterError, match="lbfgs"):
        model.optimizer = "lbfgs"
    model.optimizer = "adam"
    assert type(model.optimizer).__name__ == "Adam"


def test_optimizer_and_optimizer_args_together_are_refused():
    with pytest.raises(nn.InvalidParameterError, match="optimizer_args"):
        nn.NeuralNetwork([FullyConnected(2)], optimizer=SGD(lr=0.5), optimizer_args={"name": "SGD", "lr": 0.1})


def test_predict_refuses_a_model_with_non_finite_parameters():
    X, _ = data()
    model = built_model()
    model.layers[0].parameters["W"][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="0.W"):
        model.predict(X)
