"""NeuralNetwork core: whole-network gradient check, fused softmax + cross-entropy, predict."""

import warnings

import numpy as np
import pytest
import torch

from harness import assert_same_tree, make_values, snapshot, to_torch
from neural_networks.activations import SoftMax
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.losses import CrossEntropy
from neural_networks.models import NeuralNetwork


def one_hot(ids, k):
    return np.eye(k)[ids]


def small_cnn(dtype="float64", seed=0):
    layers = [
        Conv2D(n_out=3, kernel_shape=3, activation="relu", pad="same"),
        Pool2D(2, mode="max", stride=2),
        Conv2D(n_out=4, kernel_shape=(2, 3), activation="tanh", pad=1),
        Flatten(),
        FullyConnected(n_out=3, activation="softmax"),
    ]
    return NeuralNetwork(layers=layers, loss="cross_entropy", dtype=dtype, seed=seed)


def randomize_parameters(model, rng, scale=0.5):
    for layer in model.layers:
        for key, value in layer.parameters.items():
            layer.parameters[key] = (rng.standard_normal(value.shape) * scale).astype(value.dtype)


def relative_error(numerical, analytic):
    denominator = np.linalg.norm(numerical + analytic)
    return 0.0 if denominator == 0 else float(np.linalg.norm(numerical - analytic) / denominator)


def central_difference(loss, array, index, h=1e-6):
    plus, minus = array.copy(), array.copy()
    plus[index] += h
    minus[index] -= h
    return (loss(plus) - loss(minus)) / (2 * h)


def test_whole_cnn_gradient_check_float64():
    rng = np.random.default_rng(0)
    model = small_cnn()
    X = rng.standard_normal((2, 6, 6, 2))
    Y = one_hot([0, 2], 3)
    model.forward(X)
    randomize_parameters(model, rng)

    captured = {}
    first = model.layers[0]
    original_backward = first.backward

    def capture_dX(dLdY, *, input_gradient=True):
        # the model asks the first layer for no dL/dX; ask for it anyway to check it
        captured["dX"] = original_backward(dLdY, input_gradient=True)
        return captured["dX"]

    first.backward = capture_dX
    out = model.forward(X)
    assert out.dtype == np.float64 and out.shape == (2, 3)
    loss = model.backward(Y, out)
    assert loss == pytest.approx(model.loss(Y, out), rel=1e-15)
    gradients = {(i, key): np.array(g) for i, layer in enumerate(model.layers) for key, g in layer.gradients.items()}
    assert len(gradients) == 6  # W and b of both convolutions and of the output layer

    for (i, key), analytic in gradients.items():
        layer = model.layers[i]
        value = layer.parameters[key].copy()

        def loss_of(p):
            layer.parameters[key] = p
            return model.loss(Y, model.forward(X, retain_derived=False))

        numerical = np.array([central_difference(loss_of, value, index) for index in np.ndindex(value.shape)]).reshape(value.shape)
        layer.parameters[key] = value
        error = relative_error(numerical, analytic)
        assert error < 1e-6, f"layer {i} ({type(layer).__name__}) d{key}: relative error {error:.2e}"

    loss_of_input = lambda x: model.loss(Y, model.forward(x, retain_derived=False))
    numerical = np.array([central_difference(loss_of_input, X, index) for index in np.ndindex(X.shape)]).reshape(X.shape)
    error = relative_error(numerical, captured["dX"])
    assert error < 1e-6, f"dL/dX: relative error {error:.2e}"


def test_l2_network_gradient_check_float64():
    rng = np.random.default_rng(1)
    model = NeuralNetwork(layers=[FullyConnected(4, activation="tanh"), FullyConnected(2, activation="linear")],
                          loss="l2", dtype="float64", seed=0)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    model.forward(X)
    randomize_parameters(model, rng)
    model.backward(Y, model.forward(X))
    for i, layer in enumerate(model.layers):
        for key, analytic in layer.gradients.items():
            value = layer.parameters[key].copy()

            def loss_of(p):
                layer.parameters[key] = p
                return model.loss(Y, model.forward(X, retain_derived=False))

            numerical = np.array([central_difference(loss_of, value, idx) for idx in np.ndindex(value.shape)]).reshape(value.shape)
            layer.parameters[key] = value
            assert relative_error(numerical, analytic) < 1e-6, f"layer {i} d{key}"


def collect_gradients(model):
    return {(i, k): np.array(g) for i, layer in enumerate(model.layers) for k, g in layer.gradients.items()}


def test_fused_softmax_cross_entropy_equals_the_unfused_chain():
    rng = np.random.default_rng(2)
    model = small_cnn()
    X = rng.standard_normal((3, 6, 6, 2))
    Y = one_hot([1, 0, 2], 3)
    model.forward(X)
    randomize_parameters(model, rng)
    out = model.forward(X)
    model.backward(Y, out)
    fused = collect_gradients(model)

    gradient = CrossEntropy().backward(Y, out)  # −Y/(N·Ŷ), then through SoftMax.backward
    for layer in reversed(model.layers):
        gradient = layer.backward(gradient)
    unfused = collect_gradients(model)
    for key in fused:
        assert np.all(np.isfinite(fused[key])) and np.all(np.isfinite(unfused[key]))
        np.testing.assert_allclose(fused[key], unfused[key], rtol=1e-9, atol=1e-12, err_msg=str(key))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_gradient_is_finite_and_exact_for_huge_logits(dtype):
    rng = np.random.default_rng(3)
    model = NeuralNetwork(layers=[FullyConnected(3, activation="softmax")], loss="cross_entropy", dtype=dtype, seed=0)
    X = rng.standard_normal((4, 5)).astype(dtype)
    labels = np.array([0, 1, 2, 0])
    Y = one_hot(labels, 3).astype(dtype)
    model.forward(X)
    layer = model.layers[0]
    W = rng.standard_normal((5, 3))
    W *= 1e4 / np.max(np.abs(X.astype(np.float64) @ W))  # logits of order ±1e4
    layer.parameters["W"] = W.astype(dtype)
    layer.parameters["b"] = np.zeros((1, 3), dtype=dtype)
    out = model.forward(X)
    assert np.any(out == 0.0) and np.any(out == 1.0)  # saturated softmax
    loss = model.backward(Y, out)
    assert np.isfinite(loss)
    for key, g in layer.gradients.items():
        assert g.dtype == np.dtype(dtype) and np.all(np.isfinite(g)), key

    # torch's stable cross-entropy on the same logits: d/dZ = (softmax(Z) − Y)/N
    x = to_torch(X)
    w, b = to_torch(layer.parameters["W"], True), to_torch(layer.parameters["b"], True)
    torch.nn.functional.cross_entropy(x @ w + b, torch.tensor(labels)).backward()
    rtol = 1e-10 if dtype == "float64" else 1e-4
    for key, ref in (("W", w.grad.numpy()), ("b", b.grad.numpy())):
        np.testing.assert_allclose(layer.gradients[key], ref, rtol=0, atol=rtol * np.max(np.abs(ref)) + 1e-12, err_msg=key)


def test_predict_returns_outputs_and_loss_without_touching_state():
    rng = np.random.default_rng(4)
    model = small_cnn()
    X = rng.standard_normal((3, 6, 6, 2))
    Y = one_hot([0, 1, 2], 3)
    model.backward(Y, model.forward(X))
    caches = snapshot([layer.cache for layer in model.layers])
    gradients = snapshot([layer.gradients for layer in model.layers])
    parameters = snapshot([layer.parameters for layer in model.layers])

    X2 = rng.standard_normal((5, 6, 6, 2))
    labels = np.array([2, 2, 0, 1, 0])
    X2_before = X2.copy()
    Y_hat, loss = model.predict(X2, one_hot(labels, 3), batch_size=2)
    assert_same_tree(caches, [layer.cache for layer in model.layers], "caches")
    assert_same_tree(gradients, [layer.gradients for layer in model.layers], "gradients")
    assert_same_tree(parameters, [layer.parameters for layer in model.layers], "parameters")
    np.testing.assert_array_equal(X2, X2_before)

    expected = model.forward(X2, retain_derived=False)
    np.testing.assert_allclose(Y_hat, expected, rtol=1e-12)
    assert loss == pytest.approx(CrossEntropy()(one_hot(labels, 3), expected), rel=1e-12)
    only = model.predict(X2)
    assert isinstance(only, np.ndarray)
    np.testing.assert_allclose(only, expected, rtol=1e-12)
    _, loss_from_ids = model.predict(X2, labels)  # class ids are one-hot encoded
    assert loss_from_ids == pytest.approx(loss, rel=1e-12)


def test_backward_rejects_mismatched_targets():
    model = NeuralNetwork(layers=[FullyConnected(3, activation="softmax")], dtype="float64")
    out = model.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        model.backward(np.zeros((2, 2)), out)


COURSE_ARGS = dict(
    loss="cross_entropy",
    layer_args=[
        {"name": "fully_connected", "activation": "relu", "n_out": 5},
        {"name": "fully_connected", "activation": "softmax", "n_out": 3},
    ],
    optimizer_args={"name": "SGD", "lr": 0.01, "lr_scheduler": "constant", "momentum": 0.9, "clip_norm": 1.0,
                    "lr_decay": 0.99, "stage_length": 1000, "staircase": True},
    seed=0,
)


def test_course_constructor_builds_and_runs():
    model = NeuralNetwork(**COURSE_ARGS)
    assert [type(layer) for layer in model.layers] == [FullyConnected, FullyConnected]
    assert isinstance(model.layers[1].activation, SoftMax)
    X = make_values(0, (6, 4), "normal", np.float32)
    Y = one_hot([0, 1, 2, 0, 1, 2], 3).astype(np.float32)
    out = model.forward(X)
    assert out.shape == (6, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    loss = model.backward(Y, out)
    assert isinstance(loss, float) and np.isfinite(loss) and loss > 0
    for layer in model.layers:
        for key, value in layer.parameters.items():
            g = layer.gradients[key]
            assert g.shape == value.shape and np.all(np.isfinite(g)) and np.any(g != 0), key

    twin = NeuralNetwork(**COURSE_ARGS)  # same seed: same initial weights
    np.testing.assert_array_equal(twin.forward(X), out)
    other = NeuralNetwork(**(COURSE_ARGS | {"seed": 1}))
    assert not np.array_equal(other.forward(X), out)


# -- losses and output layers (the model's side of the loss protocol) ------------------------------
@pytest.mark.parametrize("activation, units", [("sigmoid", 3), ("relu", 3), ("linear", 3), ("softmax", 1)])
def test_cross_entropy_refuses_an_output_that_is_not_a_softmax_over_classes(activation, units):
    model = NeuralNetwork([FullyConnected(units, activation)], loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match="binary_cross_entropy" if units == 1 else "softmax"):
        model.fit(np.zeros((4, 2)), np.zeros((4, units)), epochs=1, verbose=0)


def test_a_one_output_sigmoid_classifier_trains_with_binary_cross_entropy_and_reports_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    model = NeuralNetwork([FullyConnected(1, "sigmoid")], loss="binary_cross_entropy",
                          optimizer={"name": "adam", "lr": 0.05}, seed=0, dtype="float64")
    history = model.fit(X, y, epochs=30, batch_size=16, verbose=0)
    scores = model.evaluate(X, y)
    expected = np.mean((model.predict(X)[:, 0] > 0.5) == (y > 0.5))
    assert scores["accuracy"] == expected and expected > 0.9
    assert history["accuracy"][-1] is not None


def test_a_divergence_hidden_by_the_probability_clip_is_reported():
    from neural_networks.errors import TrainingStalledWarning

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    model = NeuralNetwork([FullyConnected(16, "relu"), FullyConnected(3, "softmax")],
                          optimizer={"name": "SGD", "lr": 100, "clip_norm": 1.0}, seed=0)  # finite, but lost
    with pytest.warns(TrainingStalledWarning, match="clipping ceiling"):
        model.fit(X, y, epochs=20, batch_size=10, verbose=0)
    # the same network at a sane rate trains on
    model = NeuralNetwork([FullyConnected(16, "relu"), FullyConnected(3, "softmax")],
                          optimizer={"name": "SGD", "lr": 0.1}, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingStalledWarning)
        assert len(model.fit(X, y, epochs=20, batch_size=10, verbose=0).epochs) == 20


def test_settings_of_activations_and_losses_survive_save_and_load(tmp_path):
    from neural_networks import load

    model = NeuralNetwork([FullyConnected(4, {"type": "leaky_relu", "negative_slope": 0.3}),
                           FullyConnected(2, "linear")], loss={"type": "huber", "delta": 0.25}, seed=0)
    model.build((3,))
    again = load(model.save(tmp_path / "m.npz"))
    assert again.layers[0].activation.negative_slope == 0.3 and again.loss.delta == 0.25
    X = np.random.default_rng(0).standard_normal((5, 3)) * 3
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
