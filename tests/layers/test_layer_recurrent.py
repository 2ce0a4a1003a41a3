"""RNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU (batch_first, one layer), the course's
Elman against torch and against RNN, finite differences through GRU → LSTM → FC → L2,
and the errors for bad input."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from harness import (
    SETTINGS,
    TORCH_ACTIVATIONS,
    arrays,
    assert_close,
    assert_matches_finite_differences,
    central_differences,
    check_layer,
    float_dtypes,
    make_values,
    to_torch,
)
from neural_networks.errors import InvalidParameterError, NotBuiltError, ShapeError, UnknownNameError
from neural_networks.layers import GRU, LSTM, RNN, Elman, FullyConnected, initialize_layer, layer_from_config
from neural_networks.losses import L2

TIME_STEPS = (1, 2, 7)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TORCH_MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def make_layer(kind, n_out, return_sequences, activation="tanh", **settings):
    if kind == "rnn":
        return RNN(n_out, activation=activation, return_sequences=return_sequences, **settings)
    return {"lstm": LSTM, "gru": GRU}[kind](n_out, return_sequences=return_sequences, **settings)


def torch_recurrent_twin(kind, d, n_out, return_sequences, activation="tanh"):
    """torch.nn.RNN/LSTM/GRU(batch_first=True) run on our (transposed) parameters."""
    extra = {"nonlinearity": activation} if kind == "rnn" else {}
    module = TORCH_MODULES[kind](d, n_out, batch_first=True, **extra).double()

    def twin(x, p):
        weights = {"weight_ih_l0": p["W_ih"].T, "weight_hh_l0": p["W_hh"].T,
                   "bias_ih_l0": p["b_ih"].reshape(-1), "bias_hh_l0": p["b_hh"].reshape(-1)}
        output, _ = functional_call(module, weights, (x,))
        return output if return_sequences else output[:, -1]

    return twin


def parameter_shapes(kind, d, n_out):
    width = GATES[kind] * n_out
    return {"W_ih": (d, width), "W_hh": (n_out, width), "b_ih": (1, width), "b_hh": (1, width)}


@st.composite
def recurrent_cases(draw, kinds=("rnn", "lstm", "gru"), dtypes=float_dtypes, max_size=4):
    kind = draw(st.sampled_from(kinds))
    activation = draw(st.sampled_from(("tanh", "relu"))) if kind == "rnn" else "tanh"
    dtype = np.dtype(draw(dtypes))
    N, d, n_out = draw(st.integers(1, max_size)), draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    T = draw(st.sampled_from(TIME_STEPS))
    return_sequences = draw(st.booleans())
    if kind == "rnn" and activation == "relu" and dtype == np.float32:
        # float32 sums of T products lose exactness, so a pre-activation that is exactly 0
        # in float64 could fall on either side of relu's kink: continuous values, kept
        # away from the kink below.
        seed = draw(st.integers(0, 2**32 - 1))
        X = make_values(seed, (N, T, d), "normal", dtype)
        params = {key: (0.5 * make_values(seed + 1 + i, shape, "normal", np.float64)).astype(dtype)
                  for i, (key, shape) in enumerate(parameter_shapes(kind, d, n_out).items())}
    else:
        X = draw(arrays((N, T, d), dtype))
        # weights halved (exact): keeps integer-valued relu recurrences small
        params = {key: draw(arrays(shape, dtype)) * dtype.type(0.5)
                  for key, shape in parameter_shapes(kind, d, n_out).items()}
    out_shape = (N, T, n_out) if return_sequences else (N, n_out)
    dY = draw(arrays(out_shape, dtype, kinds=("normal", "dyadic")))
    return kind, activation, return_sequences, X, params, dY


def pre_activations_float64(activation, X, params):
    """a_t of an RNN in float64, for keeping float32 relu cases away from the kink."""
    layer = RNN(params["W_hh"].shape[0], activation=activation)
    layer.forward(X.astype(np.float64))
    layer.parameters = {key: value.astype(np.float64) for key, value in params.items()}
    layer.forward(X.astype(np.float64))
    return layer.cache["A"]


# -- against torch -------------------------------------------------------------------------
@SETTINGS
@given(recurrent_cases())
def test_recurrent_layers_match_torch(case):
    kind, activation, return_sequences, X, params, dY = case
    if kind == "rnn":
        assume_away_from_relu_kink(activation, X, params["W_ih"], params["W_hh"], params["b_ih"] + params["b_hh"])
    n_out = params["W_hh"].shape[0]
    layer = make_layer(kind, n_out, return_sequences, activation)
    twin = torch_recurrent_twin(kind, X.shape[2], n_out, return_sequences, activation)
    check_layer(layer, twin, X, dY, params=params, expected_shape=dY.shape)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("T", TIME_STEPS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_every_time_step_count_and_output_mode(kind, T, return_sequences):
    # The hypothesis search above draws these too; this makes sure each one is run.
    N, d, n_out = 3, 2, 4
    X = make_values(T, (N, T, d), "normal", np.float64)
    params = {key: make_values(10 + i, shape, "normal", np.float64)
              for i, (key, shape) in enumerate(parameter_shapes(kind, d, n_out).items())}
    dY = make_values(99, (N, T, n_out) if return_sequences else (N, n_out), "normal", np.float64)
    layer = make_layer(kind, n_out, return_sequences)
    check_layer(layer, torch_recurrent_twin(kind, d, n_out, return_sequences), X, dY, params=params,
                expected_shape=dY.shape)


def test_relu_rnn_at_exact_zero_pre_activations():
    # Integer values: many pre-activations are exactly 0, where relu' = 0 (torch's rule).
    X = make_values(4, (4, 7, 3), "small_ints", np.float64)
    params = {key: make_values(5 + i, shape, "small_ints", np.float64) * 0.5
              for i, (key, shape) in enumerate(parameter_shapes("rnn", 3, 3).items())}
    dY = make_values(6, (4, 7, 3), "dyadic", np.float64)
    layer = RNN(3, activation="relu", return_sequences=True)
    check_layer(layer, torch_recurrent_twin("rnn", 3, 3, True, "relu"), X, dY, params=params)
    assert np.any(layer.cache["A"] == 0)  # the case this test is for


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturated_gates_stay_finite_and_exact(kind):
    # Pre-activations of ±1e4: e^{−a} overflows to inf on purpose, which must give σ = 0
    # and tanh = −1 exactly, silently, in both dtypes.
    for dtype in (np.float32, np.float64):
        X = (make_values(1, (3, 4, 2), "small_ints", dtype) * 5000).astype(dtype)
        params = {key: make_values(2 + i, shape, "small_ints", dtype)
                  for i, (key, shape) in enumerate(parameter_shapes(kind, 2, 3).items())}
        dY = make_values(3, (3, 4, 3), "dyadic", dtype)
        layer = make_layer(kind, 3, True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_layer(layer, torch_recurrent_twin(kind, 2, 3, True), X, dY, params=params)


# -- the course's Elman layer ----------------------------------------------------------------------
def elman_twin(activation):
    """The course's recurrence s_t = f(x_t W + s_{t-1} U + b) written out in torch."""
    def twin(x, p):
        state = torch.zeros(x.shape[0], p["U"].shape[0], dtype=x.dtype)
        for t in range(x.shape[2]):
            state = TORCH_ACTIVATIONS[activation](x[:, :, t] @ p["W"] + state @ p["U"] + p["b"])
        return state

    return twin


def elman_torch_rnn_twin(activation):
    """torch.nn.RNN with W_ih = W, W_hh = U, b_ih = b, b_hh = 0 on X transposed to (N, T, d)."""
    def twin(x, p):
        d, n_out = p["W"].shape
        module = torch.nn.RNN(d, n_out, nonlinearity=activation, batch_first=True).double()
        weights = {"weight_ih_l0": p["W"].T, "weight_hh_l0": p["U"].T, "bias_ih_l0": p["b"].reshape(-1),
                   "bias_hh_l0": torch.zeros(n_out, dtype=x.dtype)}
        output, _ = functional_call(module, weights, (x.permute(0, 2, 1),))
        return output[:, -1]

    return twin


@st.composite
def elman_cases(draw, activations=("tanh", "relu"), dtypes=float_dtypes):
    dtype = np.dtype(draw(dtypes))
    activation = draw(st.sampled_from(activations))
    N, d, n_out = (draw(st.integers(1, 4)) for _ in range(3))
    T = draw(st.sampled_from(TIME_STEPS))
    shapes = {"W": (d, n_out), "U": (n_out, n_out), "b": (1, n_out)}
    if activation == "relu" and dtype == np.float32:
        # as in recurrent_cases: continuous values, kept away from the kink by the test
        seed = draw(st.integers(0, 2**32 - 1))
        X = make_values(seed, (N, d, T), "normal", dtype)
        params = {key: (0.5 * make_values(seed + 1 + i, shape, "normal", np.float64)).astype(dtype)
                  for i, (key, shape) in enumerate(shapes.items())}
    else:
        X = draw(arrays((N, d, T), dtype))
        params = {key: draw(arrays(shape, dtype)) * dtype.type(0.5) for key, shape in shapes.items()}
    dY = draw(arrays((N, n_out), dtype, kinds=("normal", "dyadic")))
    return activation, X, params, dY


def assume_away_from_relu_kink(activation, X_batch_first, W_ih, W_hh, b):
    if activation != "relu" or X_batch_first.dtype != np.float32:
        return
    A = pre_activations_float64(activation, X_batch_first, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b,
                                                            "b_hh": np.zeros_like(b)})
    assume(np.min(np.abs(A)) > 1e-3 * max(1.0, np.max(np.abs(A))))


@SETTINGS
@given(elman_cases())
def test_elman_matches_torch_rnn_and_the_course_formula(case):
    activation, X, params, dY = case
    assume_away_from_relu_kink(activation, X.transpose(0, 2, 1), params["W"], params["U"], params["b"])
    check_layer(Elman(params["U"].shape[0], activation), elman_torch_rnn_twin(activation), X, dY,
                params=params, expected_shape=dY.shape)
    check_layer(Elman(params["U"].shape[0], activation), elman_twin(activation), X, dY, params=params)


@SETTINGS
@given(elman_cases(activations=("linear", "sigmoid", "arctan", "softmax"), dtypes=st.just(np.float64)))
def test_elman_with_other_activations_finite_differences(case):
    activation, X, params, dY = case
    check_layer(Elman(params["U"].shape[0], activation), elman_twin(activation), X, dY, params=params,
                finite_differences=True)


@SETTINGS
@given(elman_cases(activations=("tanh", "relu"), dtypes=st.just(np.float64)))
def test_elman_is_rnn_with_zero_recurrent_bias_on_the_transposed_input(case):
    activation, X, params, dY = case
    n_out = params["U"].shape[0]
    elman, rnn = Elman(n_out, activation), RNN(n_out, activation)
    X_batch_first = X.transpose(0, 2, 1)
    elman.forward(X)
    rnn.forward(X_batch_first)
    elman.parameters = dict(params)
    rnn.parameters.update(W_ih=params["W"], W_hh=params["U"], b_ih=params["b"], b_hh=np.zeros_like(params["b"]))

    np.testing.assert_array_equal(elman.forward(X), rnn.forward(X_batch_first))
    dX_elman, dX_rnn = elman.backward(dY), rnn.backward(dY)
    np.testing.assert_array_equal(dX_elman, dX_rnn.transpose(0, 2, 1))
    for ours, theirs in (("W", "W_ih"), ("U", "W_hh"), ("b", "b_ih")):
        np.testing.assert_array_equal(elman.gradients[ours], rnn.gradients[theirs])


def test_elman_course_defaults_and_initialisation():
    layer = Elman(4)
    layer.rng = np.random.default_rng(7)
    layer.forward(np.zeros((2, 3, 5)))
    assert layer.activation.name == "tanh" and layer.weight_init == "xavier_uniform"
    assert [(k, v.shape) for k, v in layer.parameters.items()] == [("W", (3, 4)), ("U", (4, 4)), ("b", (1, 4))]
    # xavier_uniform, U(±gain·√(6/(fan_in + fan_out))) with tanh's gain 5/3 (torch.nn.init),
    # W drawn before U from the layer's generator
    rng = np.random.default_rng(7)
    for key, (fan_in, fan_out) in (("W", (3, 4)), ("U", (4, 4))):
        bound = (5 / 3) * math.sqrt(6 / (fan_in + fan_out))
        expected = rng.uniform(-bound, bound, (fan_in, fan_out))
        np.testing.assert_allclose(layer.parameters[key], expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(layer.parameters["b"], np.zeros((1, 4)))


# -- finite differences through a small network ---------------------------------------------------
@settings(SETTINGS, max_examples=max(5, SETTINGS.max_examples // 3))  # ~300 forwards per example
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_gru_lstm_fc_l2_finite_differences(N, T, d, n_gru, n_lstm, seed):
    """dL/dX and every parameter gradient of GRU(seq) → LSTM → FC → L2, chained by hand,
    against central differences in float64."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, d))
    Y = rng.standard_normal((N, 2))
    layers = [GRU(n_gru, return_sequences=True), LSTM(n_lstm), FullyConnected(2, "linear")]
    for index, layer in enumerate(layers):
        layer.rng = np.random.default_rng(seed + index)
    loss = L2()

    def forward(x, retain=False):
        for layer in layers:
            x = layer.forward(x, retain_derived=retain)
        return x

    def loss_of_input(x):
        return loss.forward(Y, forward(x))

    Y_hat = forward(X, retain=True)
    upstream = loss.backward(Y, Y_hat)
    for layer in reversed(layers):
        upstream = layer.backward(upstream)
    dX = upstream
    analytic = {(i, key): value.copy() for i, layer in enumerate(layers) for key, value in layer.gradients.items()}

    assert_matches_finite_differences(dX, central_differences(loss_of_input, X), "dL/dX")
    for (i, key), gradient in analytic.items():
        layer = layers[i]
        value = layer.parameters[key]

        def loss_of_parameter(p, layer=layer, key=key):
            layer.parameters[key] = p
            return loss_of_input(X)

        numerical = central_differences(loss_of_parameter, value)
        layer.parameters[key] = value
        assert_matches_finite_differences(gradient, numerical, f"{type(layer).__name__} d{key}")


# -- the rest of the protocol -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_torch_initialisation_from_the_layer_generator(kind):
    d, n_out = 16, 32
    layer = make_layer(kind, n_out, False)
    layer.rng = np.random.default_rng(11)
    layer.forward(np.zeros((1, 2, d)))
    bound = 1 / math.sqrt(n_out)
    rng = np.random.default_rng(11)  # drawn in the order W_ih, W_hh, b_ih, b_hh
    for key, shape in parameter_shapes(kind, d, n_out).items():
        expected = rng.uniform(-bound, bound, size=shape)
        np.testing.assert_array_equal(layer.parameters[key], expected, err_msg=key)
        np.testing.assert_array_equal(layer.gradients[key], np.zeros(shape))
    W_ih = layer.parameters["W_ih"]
    assert np.max(np.abs(W_ih)) <= bound and np.max(np.abs(W_ih)) > 0.95 * bound


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_named_weight_init_draws_weights_and_zero_biases(kind):
    d, n_out = 5, 6
    layer = make_layer(kind, n_out, False, weight_init="xavier_uniform")
    layer.rng = np.random.default_rng(3)
    layer.forward(np.zeros((1, 2, d)))
    gain = 5 / 3 if kind == "rnn" else 1.0  # the RNN's tanh; LSTM/GRU gates have no single gain
    rng = np.random.default_rng(3)
    for key in ("W_ih", "W_hh"):
        fan_in, fan_out = layer.parameters[key].shape
        bound = gain * math.sqrt(6 / (fan_in + fan_out))  # torch.nn.init.xavier_uniform_
        expected = rng.uniform(-bound, bound, size=(fan_in, fan_out))
        np.testing.assert_allclose(layer.parameters[key], expected, rtol=0, atol=1e-14)
    for key in ("b_ih", "b_hh"):
        np.testing.assert_array_equal(layer.parameters[key], np.zeros((1, GATES[kind] * n_out)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_float64_parameters_with_float32_input_give_float32(kind):
    layer = make_layer(kind, 3, True)
    layer.forward(np.zeros((1, 2, 4)))  # built in float64
    X32 = make_values(0, (2, 5, 4), "dyadic", np.float32)
    Y = layer.forward(X32)
    dX = layer.backward(np.ones((2, 5, 3), dtype=np.float32))
    assert Y.dtype == dX.dtype == np.float32
    assert all(gradient.dtype == np.float32 for gradient in layer.gradients.values())


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_input_gradient_false_still_sets_the_parameter_gradients(kind):
    X = make_values(1, (2, 3, 4), "normal", np.float64)
    layer = make_layer(kind, 3, False)
    layer.forward(X)
    dX = layer.backward(np.ones((2, 3)))
    expected = {key: value.copy() for key, value in layer.gradients.items()}
    layer.forward(X)
    assert layer.backward(np.ones((2, 3)), input_gradient=False) is None
    for key, value in expected.items():
        np.testing.assert_array_equal(layer.gradients[key], value)
    assert dX.shape == X.shape


def test_sequence_length_may_change_between_calls():
    layer = LSTM(3, return_sequences=True)
    assert layer.forward(np.ones((2, 5, 4))).shape == (2, 5, 3)
    assert layer.forward(np.ones((2, 9, 4))).shape == (2, 9, 3)
    assert layer.backward(np.ones((2, 9, 3))).shape == (2, 9, 4)


@pytest.mark.parametrize("layer, shape", [(RNN(3), (2, 5, 4)), (Elman(3, "sigmoid"), (2, 4, 5))])
def test_backward_pre_activation_equals_backward_through_the_activation(layer, shape):
    # dL/da_T = f'(a_T) dY: a loss fused with the output activation hands the layer that.
    X = make_values(2, shape, "normal", np.float64)
    Y = layer.forward(X)
    dY = make_values(3, Y.shape, "normal", np.float64)
    dX = layer.backward(dY)
    expected = {key: value.copy() for key, value in layer.gradients.items()}
    a_last = layer.cache["A"][-1]
    dZ = layer.activation.backward(a_last, dY)
    dX_fused = layer.backward_pre_activation(dZ)
    assert_close(dX_fused, dX, np.float64, "dX")
    for key, value in expected.items():
        assert_close(layer.gradients[key], value, np.float64, f"d{key}")


def test_rnn_backward_pre_activation_with_sequences():
    layer = RNN(3, return_sequences=True)
    X = make_values(4, (2, 6, 2), "normal", np.float64)
    Y = layer.forward(X)
    dY = make_values(5, Y.shape, "normal", np.float64)
    dX = layer.backward(dY)
    expected = {key: value.copy() for key, value in layer.gradients.items()}
    dZ = dY * (1 - Y * Y)  # tanh'(a_t) = 1 − h_t²
    assert_close(layer.backward_pre_activation(dZ), dX, np.float64, "dX")
    for key, value in expected.items():
        assert_close(layer.gradients[key], value, np.float64, f"d{key}")


@pytest.mark.parametrize("layer", [RNN(3, "relu", return_sequences=True), LSTM(4), GRU(2, weight_init="he_normal"),
                                   Elman(3, "sigmoid", "he_uniform")])
def test_config_round_trip_and_state_dict(layer):
    X = make_values(1, (2, 4, 3), "normal", np.float64)
    Y = layer.forward(X)
    config = layer.get_config()
    assert config["type"] in ("rnn", "lstm", "gru", "elman")
    rebuilt = layer_from_config(config)
    assert type(rebuilt) is type(layer) and rebuilt.get_config() == config
    rebuilt.forward(X)
    rebuilt.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(X), Y)


def test_initialize_layer_names_and_return_sequences():
    assert isinstance(initialize_layer("rnn", n_out=3, activation="relu"), RNN)
    lstm = initialize_layer("lstm", n_out=3, return_sequences=True)
    assert isinstance(lstm, LSTM) and lstm.return_sequences is True
    assert isinstance(initialize_layer("gru", n_out=2), GRU)
    # the course's factory call: every other argument None
    elman = initialize_layer("elman", activation="tanh", weight_init="xavier_uniform", n_out=4,
                             kernel_shape=None, stride=None, pad=None, mode=None, keep_dim="first")
    assert isinstance(elman, Elman) and elman.get_config() == Elman(4).get_config()
    with pytest.raises(TypeError, match="activation"):
        initialize_layer("lstm", n_out=3, activation="relu")
    with pytest.raises(TypeError, match="return_sequences"):
        initialize_layer("elman", n_out=3, return_sequences=True)


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: RNN(2), lambda: LSTM(2), lambda: GRU(2)])
@pytest.mark.parametrize("shape", [(5,), (2, 5), (2, 5, 3, 1)])
def test_sequence_of_the_wrong_rank(make, shape):
    layer = make()
    with pytest.raises(ShapeError) as error:
        layer.forward(np.zeros(shape))
    message = str(error.value)
    assert layer.name in message and "rank-3" in message and "X of shape (batch, time, features)" in message
    assert str(shape) in message


def test_elman_sequence_of_the_wrong_rank():
    with pytest.raises(ShapeError, match=r"Elman: expected a rank-3 input X of shape \(batch, features, time\)"):
        Elman(2).forward(np.zeros((2, 5)))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_return_sequences_must_be_a_bool(cls, value):
    with pytest.raises(InvalidParameterError) as error:
        cls(3, return_sequences=value)
    message = str(error.value)
    assert f"{cls.__name__}: return_sequences must be True or False" in message and repr(value) in message


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU, Elman])
@pytest.mark.parametrize("value", [0, -2, 2.5, True, "3", None])
def test_n_out_must_be_a_positive_integer(cls, value):
    with pytest.raises(InvalidParameterError) as error:
        cls(value)
    assert f"{cls.__name__}: n_out must be an integer >= 1" in str(error.value)


def test_rnn_activation_is_tanh_or_relu():
    with pytest.raises(InvalidParameterError, match="RNN: activation must be one of"):
        RNN(3, activation="sigmoid")


@pytest.mark.parametrize("make", [lambda: LSTM(3, weight_init="glorot"), lambda: Elman(3, weight_init="glorot")])
def test_unknown_weight_init_names_the_argument(make):
    with pytest.raises(UnknownNameError, match="weight_init 'glorot'"):
        make()


@pytest.mark.parametrize("layer, good, bad", [
    (LSTM(2), (1, 3, 4), (1, 3, 5)),
    (GRU(2), (1, 3, 4), (1, 0, 4)),
    (Elman(2), (1, 4, 3), (1, 5, 3)),
    (Elman(2), (1, 4, 3), (1, 4, 0)),
])
def test_features_mismatch_and_empty_sequences(layer, good, bad):
    layer.forward(np.zeros(good))
    with pytest.raises(ShapeError) as error:
        layer.forward(np.zeros(bad))
    assert layer.name in str(error.value) and str(bad) in str(error.value)


@pytest.mark.parametrize("layer, X_shape, dY_shape", [
    (LSTM(2), (3, 4, 1), (3, 4, 2)),
    (RNN(2, return_sequences=True), (3, 4, 1), (3, 2)),
    (Elman(2), (3, 1, 4), (3, 4, 2)),
])
def test_upstream_gradient_of_the_wrong_shape(layer, X_shape, dY_shape):
    layer.forward(np.zeros(X_shape))
    with pytest.raises(ShapeError, match="dLdY must have the output's shape"):
        layer.backward(np.zeros(dY_shape))


@pytest.mark.parametrize("layer", [RNN(2), LSTM(2), GRU(2), Elman(2)])
def test_backward_before_forward(layer):
    with pytest.raises(NotBuiltError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2)))
