"""Fuzzing every layer: random settings, shapes and finite values. A layer either gives
outputs and gradients of the right shapes, all finite, or refuses with a clear
ValueError; it never crashes another way or returns nan."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "arctan", "softmax"]


@st.composite
def layer_and_input(draw):
    kind = draw(st.sampled_from(["fully_connected", "conv2d", "pool2d", "flatten"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    n = draw(st.integers(1, 4))
    if kind == "fully_connected":
        layer = FullyConnected(draw(st.integers(1, 6)), draw(st.sampled_from(ACTIVATIONS)))
        shape = (n, draw(st.integers(1, 6)))
    else:
        shape = (n, draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 3)))
        kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        stride = draw(st.integers(1, 3))
        if kind == "conv2d":
            layer = Conv2D(draw(st.integers(1, 4)), kernel, draw(st.sampled_from(ACTIVATIONS)),
                           stride=stride, pad=draw(st.sampled_from(["same", "valid", 0, 1, (1, 0)])))
        elif kind == "pool2d":
            pad = draw(st.integers(0, min(kernel) // 2))
            layer = Pool2D(kernel, draw(st.sampled_from(["max", "average"])), stride, pad)
        else:
            layer = Flatten()
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).uniform(-scale, scale, shape).astype(dtype)
    values[np.random.default_rng(seed + 1).random(shape) < 0.2] = 0.0  # exact zeros
    return layer, values


@settings(max_examples=150, deadline=None)
@given(layer_and_input())
def test_layers_give_finite_outputs_and_gradients_of_the_right_shape(case):
    layer, X = case
    try:
        Y = layer.forward(X)
    except ValueError as error:  # e.g. a kernel larger than the padded input
        assert type(layer).__name__ in str(error) or "layer" in str(error)
        return
    assert Y.dtype == X.dtype and np.all(np.isfinite(Y))
    dY = np.random.default_rng(0).standard_normal(Y.shape).astype(X.dtype)
    dX = layer.backward(dY)
    assert dX.shape == X.shape and dX.dtype == X.dtype and np.all(np.isfinite(dX))
    for name, gradient in layer.gradients.items():
        assert gradient.shape == layer.parameters[name].shape
        assert np.all(np.isfinite(gradient))
