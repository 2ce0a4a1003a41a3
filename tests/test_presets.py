"""The model presets: their output layer (softmax classes or linear regression targets),
the gru preset for sequences, wrong-rank data as a clear error, and the training settings
a preset brings."""

from __future__ import annotations

import numpy as np
import pytest

from neural_networks import NeuralNetwork
from neural_networks.activations import Linear, SoftMax
from neural_networks.errors import InvalidParameterError, ShapeError, UnknownNameError
from neural_networks.layers import GRU, FullyConnected
from neural_networks.presets import PRESETS, TRAINING_DEFAULTS, preset_layers, training_defaults

#: a sample shape every preset takes: vectors for mlp, images for the CNNs, sequences for gru
SHAPES = {"mlp": (6,), "cnn": (8, 8, 1), "lenet": (8, 8, 1), "vgg": (8, 8, 2), "gru": (7, 3)}


def test_every_preset_has_a_shape_here():
    assert set(SHAPES) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("output, activation_type", [("softmax", SoftMax), ("linear", Linear)])
def test_every_preset_ends_in_the_asked_output(name, output, activation_type):
    layers = preset_layers(name, SHAPES[name], 4, output)
    last = layers[-1]
    assert isinstance(last, FullyConnected) and last.n_out == 4
    assert isinstance(last.activation, activation_type)
    model = NeuralNetwork(layers, loss="cross_entropy" if output == "softmax" else "l2", seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, *SHAPES[name])).astype(np.float32)
    Y = np.arange(3) if output == "softmax" else rng.standard_normal((3, 4))
    model.fit(X, Y, epochs=1, verbose=0)  # the loss accepts the output layer and trains it
    Y_hat = model.predict(X)
    assert Y_hat.shape == (3, 4)
    if output == "softmax":
        np.testing.assert_allclose(Y_hat.sum(axis=1), 1.0, rtol=1e-6)


def test_the_default_output_is_softmax():
    assert isinstance(preset_layers("gru", (5, 2), 3)[-1].activation, SoftMax)


def test_gru_preset_is_a_gru_of_64_units_and_an_output_layer():
    layers = preset_layers("GRU", (20, 1), 1, "linear")
    assert [type(layer) for layer in layers] == [GRU, FullyConnected]
    assert layers[0].n_out == 64 and layers[0].return_sequences is False
    model = NeuralNetwork(layers, loss="l2", seed=0).build((20, 1))
    # PyTorch's GRU has 3·64·(d + 64 + 2) parameters; the output layer 64 + 1
    assert model.count_parameters() == 3 * 64 * (1 + 64 + 2) + 65


@pytest.mark.parametrize("shape, hint", [((4,), "mlp"), ((8, 8, 1), "cnn"), ((2, 3, 4, 5), "mlp")])
def test_gru_on_data_that_is_not_a_sequence_is_a_clear_error(shape, hint):
    with pytest.raises(ShapeError) as error:
        preset_layers("gru", shape, 3)
    message = str(error.value)
    assert "'gru'" in message and "sequences" in message and str(shape) in message
    assert f"--model {hint}" in message


@pytest.mark.parametrize("name", ["cnn", "lenet", "vgg"])
def test_an_image_preset_on_sequences_points_to_gru(name):
    with pytest.raises(ShapeError, match=rf"'{name}' needs images.*\(20, 1\).*--model gru"):
        preset_layers(name, (20, 1), 1, "linear")


def test_an_image_preset_on_tabular_data_still_points_to_mlp():
    with pytest.raises(ShapeError, match=r"'cnn' needs images.*\(4,\).*--model mlp"):
        preset_layers("cnn", (4,), 3)


@pytest.mark.parametrize("output", ["sigmoid", "Linear", None, 1])
def test_an_unknown_output_activation_is_named(output):
    with pytest.raises(InvalidParameterError, match="output_activation"):
        preset_layers("mlp", (4,), 3, output)


@pytest.mark.parametrize("n_outputs", [0, -1, 2.0, True])
def test_the_number_of_outputs_is_checked(n_outputs):
    with pytest.raises(InvalidParameterError, match="n_outputs"):
        preset_layers("mlp", (4,), n_outputs)


def test_an_unknown_preset_lists_the_presets():
    with pytest.raises(UnknownNameError, match="'transformer'.*gru"):
        preset_layers("transformer", (4,), 3)


def test_training_defaults():
    assert training_defaults("gru") == training_defaults("GRU") == {"epochs": 5, "lr": 0.01}
    for name in ("mlp", "cnn", "lenet", "vgg"):
        assert training_defaults(name) == {}
    settings = training_defaults("gru")
    settings["epochs"] = 99  # a copy: the table is not changed
    assert TRAINING_DEFAULTS["gru"]["epochs"] == 5
    with pytest.raises(UnknownNameError, match="'nope'"):
        training_defaults("nope")


def test_vgg_normalises_after_every_convolution_and_drops_out_before_its_output():
    layers = preset_layers("vgg", (16, 16, 3), 10)
    kinds = [type(layer).__name__ for layer in layers]
    convolutions = [i for i, kind in enumerate(kinds) if kind == "Conv2D"]
    assert len(convolutions) == 6  # 16×16 allows three blocks of two
    assert all(kinds[i + 1] == "BatchNorm2D" for i in convolutions)
    assert kinds[-2:] == ["Dropout", "FullyConnected"]
