"""Activations: forward and backward(Z, dY) = dL/dZ against torch autograd."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    ACTIVATION_NAMES,
    SETTINGS,
    SMOOTH_ACTIVATIONS,
    TORCH_ACTIVATIONS,
    assert_close,
    assert_matches_finite_differences,
    assert_unchanged,
    central_differences,
    float_dtypes,
    make_values,
    to_torch,
)
from neural_networks.activations import (
    ArcTan,
    Linear,
    ReLU,
    Sigmoid,
    SoftMax,
    TanH,
    initialize_activation,
)
from neural_networks.errors import UnknownNameError

CLASSES = {"linear": Linear, "sigmoid": Sigmoid, "tanh": TanH, "relu": ReLU, "softmax": SoftMax, "arctan": ArcTan}


@st.composite
def activation_inputs(draw, dtypes=float_dtypes):
    dtype = draw(dtypes)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    kind = draw(st.sampled_from(["normal", "dyadic", "small_ints", "wide"]))
    seed = draw(st.integers(0, 2**32 - 1))
    if kind == "wide":  # saturating values: sigmoid/softmax must not overflow
        Z = (make_values(seed, shape, "normal", np.float64) * 60).astype(dtype)
    else:
        Z = make_values(seed, shape, kind, dtype)
    dY = make_values(seed + 1, shape, "normal", dtype)
    return Z, dY


def torch_reference(name, Z, dY):
    z = to_torch(Z, requires_grad=True)
    y = TORCH_ACTIVATIONS[name](z)
    (y * to_torch(dY)).sum().backward()
    return y.detach().numpy(), z.grad.numpy()


@SETTINGS
@given(st.sampled_from(ACTIVATION_NAMES), activation_inputs())
def test_activation_matches_torch(name, inputs):
    Z, dY = inputs
    Z_before, dY_before = Z.copy(), dY.copy()
    Z.flags.writeable = dY.flags.writeable = False  # any in-place write raises
    activation = initialize_activation(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings
        Y = activation(Z)
        dZ = activation.backward(Z, dY)
    assert Y.shape == Z.shape and dZ.shape == Z.shape
    assert Y.dtype == Z.dtype and dZ.dtype == Z.dtype, f"{name}: {Z.dtype} in, {Y.dtype}/{dZ.dtype} out"
    assert_unchanged(Z_before, Z, f"{name}: Z")
    assert_unchanged(dY_before, dY, f"{name}: dY")
    y_ref, dz_ref = torch_reference(name, Z, dY)
    assert_close(Y, y_ref, Z.dtype, f"{name} forward")
    assert_close(dZ, dz_ref, Z.dtype, f"{name} backward")


@SETTINGS
@given(st.sampled_from(SMOOTH_ACTIVATIONS), st.integers(0, 2**32 - 1), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_activation_finite_differences(name, seed, shape):
    Z = make_values(seed, tuple(shape), "normal", np.float64) * 2
    dY = make_values(seed + 1, tuple(shape), "normal", np.float64)
    activation = initialize_activation(name)
    numerical = central_differences(lambda z: float(np.sum(activation.forward(z) * dY)), Z)
    assert_matches_finite_differences(activation.backward(Z, dY), numerical, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_derivative_at_zero_is_zero_like_torch(dtype):
    Z = np.array([-1.0, 0.0, -0.0, 1e-30, 2.0], dtype=dtype)
    dY = np.ones_like(Z)
    dZ = ReLU().backward(Z, dY)
    np.testing.assert_array_equal(dZ, torch_reference("relu", Z, dY)[1].astype(dtype))
    assert dZ[1] == 0 and dZ[2] == 0 and dZ[3] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_is_finite(dtype):
    Z = np.array([[-1e4, 0.0, 1e4], [-800.0, 800.0, 0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Sigmoid().forward(Z)
        p = SoftMax().forward(Z)
        for activation in (Sigmoid(), SoftMax(), TanH()):
            assert np.all(np.isfinite(activation.backward(Z, np.ones_like(Z))))
    np.testing.assert_array_equal(s, [[0.0, 0.5, 1.0], [0.0, 1.0, 0.5]])
    np.testing.assert_array_equal(p, [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert s.dtype == dtype and p.dtype == dtype


def test_softmax_is_over_the_last_axis_and_shift_invariant():
    Z = make_values(0, (2, 3, 4), "normal", np.float64)
    p = SoftMax().forward(Z)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(SoftMax().forward(Z + 100.0), p, rtol=1e-12)


def test_softmax_backward_is_the_jacobian_vector_product():
    Z = make_values(1, (5,), "normal", np.float64)
    dY = make_values(2, (5,), "normal", np.float64)
    s = np.exp(Z) / np.exp(Z).sum()
    jacobian = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(SoftMax().backward(Z, dY), jacobian.T @ dY, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_initialize_activation_by_name(name):
    activation = initialize_activation(name)
    assert type(activation) is CLASSES[name]
    assert activation.name == name
    assert type(initialize_activation(name.upper())) is CLASSES[name]


def test_initialize_activation_passthrough_and_default():
    relu = ReLU()
    assert initialize_activation(relu) is relu
    assert type(initialize_activation(None)) is Linear


@pytest.mark.parametrize("bad", ["swish", "", 3, "soft max"])
def test_unknown_activation(bad):
    with pytest.raises(ValueError) as error:
        initialize_activation(bad)
    assert isinstance(error.value, UnknownNameError) and isinstance(error.value, NotImplementedError)
    assert repr(bad) in str(error.value) and "relu" in str(error.value)
