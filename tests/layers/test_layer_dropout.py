"""Dropout: the mask comes from the layer's generator; output and gradient are X·mask/(1 − p)
and dY·mask/(1 − p) for that mask (against torch with the same mask, through the harness);
the identity in evaluation mode and for p = 0; reproducible and resumable from the
generator's state."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, arrays, assert_close, check_layer, float_dtypes, make_values, to_torch
from neural_networks.errors import InvalidParameterError, NotBuiltError, ShapeError
from neural_networks.layers import Dropout, initialize_layer, layer_from_config

probabilities = st.sampled_from([0.0, 0.1, 0.5, 0.9]) | st.floats(0.0, 0.99)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def mask_from(seed, shape, p):
    """The mask a generator seeded with ``seed`` yields first (the documented draw)."""
    return np.random.default_rng(seed).random(shape) >= p


@SETTINGS
@given(st.data(), float_dtypes, probabilities, shapes, st.integers(0, 2**32 - 1))
def test_output_and_gradient_are_scaled_by_the_generators_mask(data, dtype, p, shape, seed):
    X = data.draw(arrays(shape, dtype))
    dY = data.draw(arrays(shape, dtype))
    layer = Dropout(p)
    layer.rng = np.random.default_rng(seed)
    Y = layer.forward(X)
    dX = layer.backward(dY)
    mask = mask_from(seed, shape, p) if p > 0 else np.ones(shape, bool)
    assert Y.dtype == dtype and dX.dtype == dtype and Y.shape == shape
    assert_close(Y, X.astype(np.float64) * mask / (1 - p), dtype, "Dropout forward")
    assert_close(dX, dY.astype(np.float64) * mask / (1 - p), dtype, "Dropout backward")
    assert np.all(Y[~mask] == 0) and np.all(dX[~mask] == 0)


@SETTINGS
@given(st.data(), float_dtypes, probabilities, shapes, st.integers(0, 2**32 - 1))
def test_matches_torch_with_the_same_mask(data, dtype, p, shape, seed):
    X = data.draw(arrays(shape, dtype))
    dY = data.draw(arrays(shape, dtype))
    layer = Dropout(p)
    layer.rng = np.random.default_rng(seed)
    # every forward of the harness replays the generator from here: the same mask each time
    mask = to_torch(mask_from(seed, shape, p) if p > 0 else np.ones(shape))

    def twin(x, params):
        return x * mask / (1 - p)  # what torch.nn.functional.dropout computes for this mask

    check_layer(layer, twin, X, dY, expected_shape=shape, training=True, replay_rng=True,
                finite_differences=dtype == np.float64 and X.size <= 32)


@SETTINGS
@given(st.data(), float_dtypes, probabilities, shapes)
def test_identity_in_evaluation_mode_draws_nothing(data, dtype, p, shape):
    X = data.draw(arrays(shape, dtype))
    dY = data.draw(arrays(shape, dtype))
    layer = Dropout(p)
    layer.rng = np.random.default_rng(1)
    layer.training = False
    state = layer.rng.bit_generator.state
    Y = layer.forward(X)
    dX = layer.backward(dY)
    np.testing.assert_array_equal(Y, X)
    np.testing.assert_array_equal(dX, dY)
    assert Y.dtype == dtype and dX.dtype == dtype
    assert layer.rng.bit_generator.state == state


def test_p_zero_in_training_is_the_identity_and_draws_nothing():
    X = make_values(0, (3, 4), "normal", np.float32)
    layer = Dropout(0.0)
    layer.rng = np.random.default_rng(2)
    state = layer.rng.bit_generator.state
    np.testing.assert_array_equal(layer.forward(X), X)
    np.testing.assert_array_equal(layer.backward(X), X)
    assert layer.rng.bit_generator.state == state


def test_each_forward_draws_a_new_mask_and_backward_uses_the_last():
    layer = Dropout(0.5)
    layer.rng = np.random.default_rng(3)
    X = np.ones((4, 8))
    first = layer.forward(X)
    second = layer.forward(X)
    generator = np.random.default_rng(3)
    expected_first = (generator.random(X.shape) >= 0.5) * 2.0
    expected_second = (generator.random(X.shape) >= 0.5) * 2.0
    np.testing.assert_array_equal(first, expected_first)
    np.testing.assert_array_equal(second, expected_second)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(layer.backward(X), expected_second)


def test_seeded_generators_give_the_same_masks():
    X = np.ones((5, 6))
    a, b = Dropout(0.3), Dropout(0.3)
    a.rng, b.rng = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(3):
        np.testing.assert_array_equal(a.forward(X), b.forward(X))


def test_a_resumed_layer_draws_what_an_uninterrupted_one_would():
    X = np.ones((3, 7))
    uninterrupted = Dropout(0.4)
    uninterrupted.rng = np.random.default_rng(5)
    uninterrupted.forward(X)
    uninterrupted.forward(X)
    state = uninterrupted.state_dict()
    assert state["rng"] is not None and state["parameters"] == {} and state["buffers"] == {}
    resumed = Dropout(0.4)
    resumed.build((7,))
    resumed.load_state_dict(state)
    for _ in range(3):
        np.testing.assert_array_equal(resumed.forward(X), uninterrupted.forward(X))


@pytest.mark.parametrize("p", [1, 1.0, 1.5, -0.1, float("nan"), "0.5", True, None])
def test_p_outside_zero_one_is_an_error_naming_p(p):
    with pytest.raises(InvalidParameterError) as error:
        Dropout(p)
    message = str(error.value)
    assert "Dropout" in message and "p must be" in message and "[0, 1)" in message and repr(p) in message


def test_bad_input_and_upstream_gradient():
    with pytest.raises(ShapeError, match="Dropout"):
        Dropout().forward(np.float64(1.0))
    with pytest.raises(NotBuiltError, match="Dropout"):
        Dropout().backward(np.ones(3))
    layer = Dropout()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError) as error:
        layer.backward(np.ones((3, 2)))
    assert "(2, 3)" in str(error.value) and "(3, 2)" in str(error.value)


def test_input_gradient_false_returns_none():
    layer = Dropout(0.5)
    layer.forward(np.ones((2, 2)))
    assert layer.backward(np.ones((2, 2)), input_gradient=False) is None


def test_registry_and_config_round_trip():
    layer = initialize_layer("dropout", p=0.25)
    assert isinstance(layer, Dropout) and layer.p == 0.25
    assert initialize_layer("dropout").p == 0.5
    config = layer.get_config()
    assert config == {"type": "dropout", "p": 0.25}
    assert layer_from_config(config).get_config() == config
    with pytest.raises(TypeError, match="eps"):
        initialize_layer("dropout", eps=1e-5)
