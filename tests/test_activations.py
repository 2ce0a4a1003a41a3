"""Activations: forward and backward(Z, dY) = dL/dZ against torch autograd."""

import json
import warnings

import numpy as np
import pytest
import torch.nn.functional as F
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
    ACTIVATIONS,
    ELU,
    GELU,
    ArcTan,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    SiLU,
    SoftMax,
    Softplus,
    TanH,
    activation_config,
    initialize_activation,
)
from neural_networks.errors import InvalidParameterError, UnknownNameError

CLASSES = {"linear": Linear, "sigmoid": Sigmoid, "tanh": TanH, "relu": ReLU, "softmax": SoftMax, "arctan": ArcTan,
           "leaky_relu": LeakyReLU, "elu": ELU, "gelu": GELU, "silu": SiLU, "swish": SiLU, "softplus": Softplus}


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


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_initialize_activation_by_name(name):
    activation = initialize_activation(name)
    assert type(activation) is CLASSES[name]
    assert activation.name == ("silu" if name == "swish" else name)
    assert type(initialize_activation(name.upper())) is CLASSES[name]


def test_initialize_activation_passthrough_and_default():
    relu = ReLU()
    assert initialize_activation(relu) is relu
    assert type(initialize_activation(None)) is Linear


@pytest.mark.parametrize("bad", ["swiss", "", 3, "soft max"])
def test_unknown_activation(bad):
    with pytest.raises(ValueError) as error:
        initialize_activation(bad)
    assert isinstance(error.value, UnknownNameError) and isinstance(error.value, NotImplementedError)
    assert repr(bad) in str(error.value) and "relu" in str(error.value)


# -- the activations with settings: LeakyReLU, ELU, GELU, SiLU, Softplus ------------------------------
#: (config, torch function) pairs: every new activation, with default and other settings
SET_ACTIVATIONS = [
    ({"type": "leaky_relu"}, lambda z: F.leaky_relu(z)),
    ({"type": "leaky_relu", "negative_slope": 0.2}, lambda z: F.leaky_relu(z, 0.2)),
    ({"type": "leaky_relu", "negative_slope": 0.0}, lambda z: F.leaky_relu(z, 0.0)),
    ({"type": "leaky_relu", "negative_slope": 1.5}, lambda z: F.leaky_relu(z, 1.5)),
    ({"type": "elu"}, lambda z: F.elu(z)),
    ({"type": "elu", "alpha": 0.5}, lambda z: F.elu(z, 0.5)),
    ({"type": "elu", "alpha": 2.0}, lambda z: F.elu(z, 2.0)),
    ({"type": "gelu"}, lambda z: F.gelu(z)),
    ({"type": "gelu", "approximate": "tanh"}, lambda z: F.gelu(z, approximate="tanh")),
    ({"type": "silu"}, F.silu),
    ({"type": "softplus"}, lambda z: F.softplus(z)),
    ({"type": "softplus", "beta": 2.0, "threshold": 10.0}, lambda z: F.softplus(z, 2.0, 10.0)),
    ({"type": "softplus", "beta": 0.5, "threshold": 5.0}, lambda z: F.softplus(z, 0.5, 5.0)),
]
SET_IDS = [json.dumps(config) for config, _ in SET_ACTIVATIONS]


def special_points(config, dtype):
    """Where an activation switches formula, in ``dtype``: 0 (±), the softplus threshold
    z = threshold/β and its two neighbours, GELU's internal clips at 40 and 100."""
    points = [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 40.0, -40.0, 100.0, -100.0]
    if config["type"] == "softplus":
        edge = dtype(config.get("threshold", 20.0) / config.get("beta", 1.0))
        points += [edge, np.nextafter(edge, dtype(np.inf)), np.nextafter(edge, dtype(-np.inf))]
    return np.array(points, dtype=dtype)


@st.composite
def inputs_with_special_points(draw, config):
    """(Z, dY) of random values (continuous, dyadic, small integers with exact zeros, or
    saturating), with some entries replaced by the activation's special points."""
    Z, dY = draw(activation_inputs())
    specials = special_points(config, Z.dtype.type)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    chosen = rng.random(Z.shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    Z = np.where(chosen, rng.choice(specials, size=Z.shape), Z).astype(Z.dtype)
    return Z, dY


def torch_reference_of(torch_function, Z, dY):
    """f(Z) and dL/dZ by torch autograd, in float64 from the very same values."""
    z = to_torch(Z, requires_grad=True)
    y = torch_function(z)
    (y * to_torch(dY)).sum().backward()
    return y.detach().numpy(), z.grad.numpy()


@SETTINGS
@given(st.data())
@pytest.mark.parametrize(("config", "torch_function"), SET_ACTIVATIONS, ids=SET_IDS)
def test_new_activation_matches_torch(config, torch_function, data):
    Z, dY = data.draw(inputs_with_special_points(config))
    Z_before, dY_before = Z.copy(), dY.copy()
    Z.flags.writeable = dY.flags.writeable = False  # any in-place write raises
    activation = initialize_activation(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings
        Y = activation(Z)
        dZ = activation.backward(Z, dY)
    assert Y.shape == Z.shape and dZ.shape == Z.shape
    assert Y.dtype == Z.dtype and dZ.dtype == Z.dtype, f"{config}: {Z.dtype} in, {Y.dtype}/{dZ.dtype} out"
    assert_unchanged(Z_before, Z, "Z")
    assert_unchanged(dY_before, dY, "dY")
    y_ref, dz_ref = torch_reference_of(torch_function, Z, dY)
    assert_close(Y, y_ref, Z.dtype, f"{config} forward")
    assert_close(dZ, dz_ref, Z.dtype, f"{config} backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("config", "torch_function"), SET_ACTIVATIONS, ids=SET_IDS)
def test_new_activation_at_its_special_points(config, torch_function, dtype):
    # Every switch point alone (so max|torch| cannot hide an error there), one value at a time.
    activation = initialize_activation(config)
    for z in special_points(config, dtype):
        Z, dY = np.array([z], dtype=dtype), np.array([1.0], dtype=dtype)
        y_ref, dz_ref = torch_reference_of(torch_function, Z, dY)
        assert_close(activation(Z), y_ref, dtype, f"{config} forward at {z!r}")
        assert_close(activation.backward(Z, dY), dz_ref, dtype, f"{config} backward at {z!r}")


@pytest.mark.parametrize(("config", "value_at_zero", "slope_at_zero"), [
    ({"type": "leaky_relu", "negative_slope": 0.2}, 0.0, 0.2),  # torch: z > 0 ? 1 : slope
    ({"type": "elu", "alpha": 2.0}, 0.0, 2.0),  # torch: z > 0 ? 1 : α e^z
    ({"type": "gelu"}, 0.0, 0.5), ({"type": "gelu", "approximate": "tanh"}, 0.0, 0.5),
    ({"type": "silu"}, 0.0, 0.5), ({"type": "softplus", "beta": 3.0}, np.log(2) / 3, 0.5),
])
def test_derivative_at_exactly_zero(config, value_at_zero, slope_at_zero):
    activation = initialize_activation(config)
    for zero in (0.0, -0.0):
        assert activation.backward(np.array([zero]), np.array([1.0]))[0] == slope_at_zero
        assert activation(np.array([zero]))[0] == pytest.approx(value_at_zero, rel=1e-15, abs=0)


def test_softplus_switches_branch_exactly_where_torch_does():
    # β·z = threshold takes the log branch (gradient σ(threshold)); one ulp above is linear.
    softplus = Softplus(beta=2.0, threshold=10.0)
    at = np.array([5.0])
    above = np.nextafter(at, np.inf)
    sigma = 1 / (1 + np.exp(-10.0))
    assert softplus.backward(at, np.ones(1))[0] == pytest.approx(sigma, rel=1e-15) and sigma != 1.0
    assert softplus.backward(above, np.ones(1))[0] == 1.0
    assert softplus(above)[0] == above[0]
    assert softplus(at)[0] == pytest.approx(np.log1p(np.exp(10.0)) / 2, rel=1e-15)


def test_gelu_lower_tail_keeps_its_relative_precision():
    # Φ(z) from erfc: z·Φ(z) is right to a few ulps where torch's 1 + erf(z/√2) is 0 (z < −8.3)
    # or mostly round-off. Reference: 40-digit arithmetic (mpmath ships with torch's sympy).
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    z = np.array([-0.3, -1.7, -3.0, -6.5, -10.0, -20.0, -37.5, 0.7, 5.0])
    exact = [(mp.mpf(float(x)), mp.ncdf(mp.mpf(float(x)))) for x in z]
    expected = np.array([float(x * cdf) for x, cdf in exact])
    expected_slope = np.array([float(cdf + x * mp.npdf(x)) for x, cdf in exact])
    np.testing.assert_allclose(GELU()(z), expected, rtol=2e-15, atol=0)
    np.testing.assert_allclose(GELU().backward(z, np.ones_like(z)), expected_slope, rtol=2e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("config", "lower_value", "lower_slope"), [
    ({"type": "leaky_relu", "negative_slope": 0.2}, "0.2z", 0.2),
    ({"type": "elu", "alpha": 2.0}, -2.0, 0.0),
    ({"type": "gelu"}, 0.0, 0.0), ({"type": "gelu", "approximate": "tanh"}, 0.0, 0.0),
    ({"type": "silu"}, 0.0, 0.0), ({"type": "softplus"}, 0.0, 0.0),
    ({"type": "softplus", "beta": 0.5, "threshold": 1e6}, 0.0, 0.0),  # no e^{βz} overflow either
])
def test_saturated_inputs_give_the_exact_limits(config, lower_value, lower_slope, dtype):
    # Far from 0 every one of them is z (slope 1) above, and its lower limit below: exactly, and
    # without an overflow warning even at the largest finite inputs (torch's tanh GELU gives nan there).
    biggest = float(np.finfo(dtype).max)
    Z = np.array([2000.0, 1e4, 1e30, biggest, -2000.0, -1e4, -1e30, -biggest], dtype=dtype)
    activation = initialize_activation(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y, dZ = activation(Z), activation.backward(Z, np.ones_like(Z))
    upper, lower = slice(0, 4), slice(4, 8)
    np.testing.assert_array_equal(Y[upper], Z[upper])
    np.testing.assert_array_equal(dZ[upper], 1.0)
    expected_lower = 0.2 * Z[lower] if lower_value == "0.2z" else np.full(4, lower_value, dtype)
    np.testing.assert_array_equal(Y[lower], expected_lower)
    np.testing.assert_array_equal(dZ[lower], np.full(4, lower_slope, dtype))
    assert Y.dtype == dtype and dZ.dtype == dtype


SMOOTH_CONFIGS = [{"type": "elu"}, {"type": "gelu"}, {"type": "gelu", "approximate": "tanh"}, {"type": "silu"},
                  {"type": "softplus"}, {"type": "softplus", "beta": 2.0, "threshold": 10.0}]


@SETTINGS
@given(st.sampled_from(SMOOTH_CONFIGS), st.integers(0, 2**32 - 1), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_new_activation_finite_differences(config, seed, shape):
    Z = make_values(seed, tuple(shape), "normal", np.float64) * 2
    dY = make_values(seed + 1, tuple(shape), "normal", np.float64)
    activation = initialize_activation(config)
    numerical = central_differences(lambda z: float(np.sum(activation.forward(z) * dY)), Z)
    assert_matches_finite_differences(activation.backward(Z, dY), numerical, str(config))


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "gelu", "silu", "softplus"])
def test_integer_input_gives_float64(name):
    activation = initialize_activation(name)
    Z = np.array([-2, 0, 3])
    assert activation(Z).dtype == np.float64
    np.testing.assert_array_equal(activation(Z), activation(Z.astype(np.float64)))
    np.testing.assert_array_equal(activation.backward(Z, np.ones(3)), activation.backward(Z.astype(float), np.ones(3)))


# -- configs: what layers store, and rebuilding from it -------------------------------------------------
@pytest.mark.parametrize(("config", "torch_function"), SET_ACTIVATIONS, ids=SET_IDS)
def test_config_round_trip_keeps_the_settings(config, torch_function):
    activation = initialize_activation(config)
    stored = json.loads(json.dumps(activation_config(activation)))  # what a layer's JSON config holds
    rebuilt = initialize_activation(stored)
    assert type(rebuilt) is type(activation) and rebuilt.get_config() == activation.get_config()
    assert {key: value for key, value in activation.get_config().items() if key in config} == config
    if activation.settings():  # a dict with every setting, defaults included
        assert stored == activation.get_config() and set(stored) == {"type", *type(activation)._parameter_constraints}
    else:
        assert stored == config["type"]
    Z = np.linspace(-6, 6, 49)
    np.testing.assert_array_equal(rebuilt(Z), activation(Z))
    np.testing.assert_array_equal(rebuilt.backward(Z, np.ones_like(Z)), activation.backward(Z, np.ones_like(Z)))


def test_non_default_settings_change_the_function():
    # so a round trip that dropped them would be caught
    Z = np.array([-1.0])
    assert LeakyReLU(0.2)(Z)[0] != LeakyReLU()(Z)[0]
    assert ELU(2.0)(Z)[0] != ELU()(Z)[0]
    assert GELU("tanh")(Z)[0] != GELU()(Z)[0]
    assert Softplus(beta=2.0)(Z)[0] != Softplus()(Z)[0]
    assert Softplus(threshold=-2.0)(np.array([-1.0]))[0] == -1.0 != Softplus()(np.array([-1.0]))[0]


@pytest.mark.parametrize("name", ["linear", "sigmoid", "tanh", "arctan", "relu", "softmax", "silu"])
def test_activation_without_settings_is_stored_by_name(name):
    activation = initialize_activation(name)
    assert activation.get_config() == {"type": name}
    assert activation_config(activation) == name
    assert type(initialize_activation({"type": name})) is type(activation)


def test_swish_is_silu():
    swish = initialize_activation("swish")
    assert type(swish) is SiLU and swish.name == "silu" and activation_config(swish) == "silu"
    assert type(initialize_activation({"type": "swish"})) is SiLU


def test_repr_shows_settings():
    assert repr(LeakyReLU(0.3)) == "LeakyReLU(negative_slope=0.3)"
    assert repr(Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(ReLU()) == "ReLU()"


def test_settings_are_python_floats():
    # a NumPy float64 setting would silently upcast float32 inputs
    slope = LeakyReLU(np.float64(0.25)).negative_slope
    assert type(slope) is float
    assert LeakyReLU(np.float64(0.25))(np.ones(2, np.float32)).dtype == np.float32


@pytest.mark.parametrize(("build", "argument"), [
    (lambda: LeakyReLU(-0.1), "negative_slope"),
    (lambda: LeakyReLU("0.1"), "negative_slope"),
    (lambda: LeakyReLU(True), "negative_slope"),
    (lambda: ELU(0.0), "alpha"),
    (lambda: ELU(float("inf")), "alpha"),
    (lambda: GELU("erf"), "approximate"),
    (lambda: GELU(None), "approximate"),
    (lambda: Softplus(beta=0.0), "beta"),
    (lambda: Softplus(beta=-1.0), "beta"),
    (lambda: Softplus(threshold=float("nan")), "threshold"),
    (lambda: initialize_activation({"type": "elu", "alpha": -1.0}), "alpha"),
])
def test_bad_settings_name_the_argument(build, argument):
    with pytest.raises(InvalidParameterError) as error:
        build()
    assert argument in str(error.value) and "got" in str(error.value)


def test_bad_configs_are_clear_errors():
    with pytest.raises(InvalidParameterError, match="'type'"):
        initialize_activation({"negative_slope": 0.2})
    with pytest.raises(InvalidParameterError, match="negative_slop.*accepted arguments are \\['negative_slope'\\]"):
        initialize_activation({"type": "leaky_relu", "negative_slop": 0.2})
    with pytest.raises(InvalidParameterError, match="accepted arguments are \\[\\]"):
        initialize_activation({"type": "relu", "alpha": 1.0})
    with pytest.raises(UnknownNameError, match="'leaky'"):
        initialize_activation({"type": "leaky"})
