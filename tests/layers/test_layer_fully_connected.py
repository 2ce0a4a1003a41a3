"""FullyConnected against torch.nn.functional.linear (+ activation), through the harness."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    ACTIVATION_NAMES,
    SETTINGS,
    SMOOTH_ACTIVATIONS,
    TORCH_ACTIVATIONS,
    arrays,
    check_layer,
    fc_weight_to_torch,
    float_dtypes,
    make_values,
)
from neural_networks.errors import ShapeError
from neural_networks.layers import FullyConnected, initialize_layer


def fc_twin(activation):
    def twin(x, p):
        z = torch.nn.functional.linear(x, fc_weight_to_torch(p["W"]), p["b"].reshape(-1))
        return TORCH_ACTIVATIONS[activation](z)

    return twin


@st.composite
def fc_cases(draw, activations=ACTIVATION_NAMES, dtypes=float_dtypes, max_size=6):
    dtype = draw(dtypes)
    n, n_in, n_out = (draw(st.integers(1, max_size)) for _ in range(3))
    activation = draw(st.sampled_from(activations))
    X = draw(arrays((n, n_in), dtype))
    W = draw(arrays((n_in, n_out), dtype, kinds=("normal", "dyadic", "small_ints")))
    b = draw(arrays((1, n_out), dtype))
    dY = draw(arrays((n, n_out), dtype, kinds=("normal", "dyadic")))
    return activation, X, W, b, dY


@SETTINGS
@given(fc_cases())
def test_fully_connected_matches_torch(case):
    activation, X, W, b, dY = case
    layer = FullyConnected(n_out=W.shape[1], activation=activation)
    check_layer(layer, fc_twin(activation), X, dY, params={"W": W, "b": b}, expected_shape=dY.shape)


@SETTINGS
@given(fc_cases(activations=SMOOTH_ACTIVATIONS, dtypes=st.just(np.float64), max_size=4))
def test_fully_connected_finite_differences(case):
    activation, X, W, b, dY = case
    layer = FullyConnected(n_out=W.shape[1], activation=activation)
    check_layer(layer, fc_twin(activation), X, dY, params={"W": W, "b": b}, finite_differences=True)


def test_fully_connected_relu_finite_differences_away_from_the_kink():
    rng = np.random.default_rng(3)
    X, W, b, dY = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal((1, 3)), rng.standard_normal((4, 3))
    assert np.min(np.abs(X @ W + b)) > 1e-3  # no pre-activation near 0
    layer = FullyConnected(n_out=3, activation="relu")
    check_layer(layer, fc_twin("relu"), X, dY, params={"W": W, "b": b}, finite_differences=True)


def test_relu_at_exact_zero_has_zero_derivative():
    # Z = X W + b is exactly 0 in the first column: torch (and we) give dZ = 0 there.
    X = np.array([[1.0, -1.0], [2.0, 0.0]])
    W = np.array([[1.0, 1.0], [1.0, -1.0]])
    b = np.array([[0.0, 0.0]])
    dY = np.ones((2, 2))
    layer = FullyConnected(n_out=2, activation="relu")
    _, _, grads = check_layer(layer, fc_twin("relu"), X, dY, params={"W": W, "b": b})
    # Column 0 of Z is [0, 2]: only the second sample contributes to db[0].
    assert grads["b"][0, 0] == 1.0


def test_lazy_build_and_replaced_parameters():
    layer = FullyConnected(n_out=3)
    assert len(layer.parameters) == 0 and not layer.built
    X = make_values(0, (2, 4), "normal", np.float32)
    Y = layer.forward(X)
    assert layer.parameters["W"].shape == (4, 3) and layer.parameters["b"].shape == (1, 3)
    assert layer.parameters["W"].dtype == np.float32 and Y.dtype == np.float32
    new_W = np.ones((4, 3), dtype=np.float32)
    layer.parameters["W"] = new_W
    np.testing.assert_allclose(layer.forward(X), X @ new_W + layer.parameters["b"], rtol=1e-6)


def test_float64_parameters_with_float32_input_give_float32():
    layer = FullyConnected(n_out=2)
    layer.forward(np.zeros((1, 3)))  # built in float64
    X32 = make_values(1, (2, 3), "dyadic", np.float32)
    Y = layer.forward(X32)
    assert Y.dtype == np.float32
    assert layer.backward(np.ones((2, 2), dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), (1, 2, 3, 4)])
def test_wrong_rank_names_layer_and_shapes(shape):
    layer = FullyConnected(n_out=2)
    with pytest.raises(ShapeError) as error:
        layer.forward(np.zeros(shape))
    message = str(error.value)
    assert "FullyConnected" in message and str(shape) in message and "rank-2" in message


def test_feature_mismatch_after_build():
    layer = FullyConnected(n_out=2)
    layer.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError) as error:
        layer.forward(np.zeros((1, 4)))
    message = str(error.value)
    assert "FullyConnected" in message and "3" in message and "(1, 4)" in message


def test_upstream_gradient_of_wrong_shape():
    layer = FullyConnected(n_out=2)
    layer.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError) as error:
        layer.backward(np.zeros((5, 3)))
    message = str(error.value)
    assert "FullyConnected" in message and "(5, 2)" in message and "(5, 3)" in message


@pytest.mark.parametrize("kwargs", [{"activation": "mish"}, {"weight_init": "glorot"}])
def test_unknown_names(kwargs):
    with pytest.raises(ValueError) as error:
        FullyConnected(n_out=2, **kwargs)
    assert "FullyConnected" in str(error.value)
    assert next(iter(kwargs.values())) in str(error.value)


@pytest.mark.parametrize("n_out", [0, -1, 2.5, True])
def test_bad_n_out(n_out):
    with pytest.raises(ValueError, match="FullyConnected"):
        FullyConnected(n_out=n_out)


def test_initialize_layer_builds_fully_connected_and_rejects_unknown():
    layer = initialize_layer("fully_connected", n_out=4, activation="tanh")
    assert isinstance(layer, FullyConnected) and layer.n_out == 4
    with pytest.raises(ValueError, match="no_such_layer"):
        initialize_layer("no_such_layer", n_out=4)
