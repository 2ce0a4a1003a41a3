"""Weight initialisers: fans and gains as torch.nn.init, empirical spread vs the formulas."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS
from neural_networks.errors import UnknownNameError
from neural_networks.weights import calculate_gain, compute_fans, initialize_weights


def torch_layout(shape):
    """Our (n_in, n_out) / (kh, kw, C_in, C_out) as torch's (n_out, n_in) / (C_out, C_in, kh, kw)."""
    shape = tuple(shape)
    if len(shape) == 2:
        return (shape[1], shape[0])
    return (shape[-1], shape[-2]) + shape[:-2]


def torch_fans(shape):
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_layout(shape)))


def torch_gain(activation):
    # torch knows no softmax/arctan (and None): the rule is "else 1", torch's linear gain
    name = activation if activation in ("relu", "tanh", "sigmoid", "linear") else "linear"
    return torch.nn.init.calculate_gain(name)


@SETTINGS
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_fans_match_torch(shape):
    assert compute_fans(tuple(shape)) == torch_fans(shape)


def test_conv_fans_are_receptive_field_times_channels():
    assert compute_fans((3, 5, 4, 7)) == (3 * 5 * 4, 3 * 5 * 7)
    assert compute_fans((6, 2)) == (6, 2)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        compute_fans((5,))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear", "softmax", "arctan", None, "ReLU"])
def test_gains_match_torch(activation):
    expected = torch_gain(activation.lower() if activation else activation)
    assert calculate_gain(activation) == pytest.approx(expected, rel=1e-15)


SHAPES = [(300, 200), (64, 500), (3, 3, 16, 32), (5, 5, 8, 16)]


def expected_std(scheme, shape, activation, mode):
    fan_in, fan_out = torch_fans(shape)
    gain = torch_gain(activation)
    if scheme.startswith("xavier"):
        return gain * math.sqrt(2.0 / (fan_in + fan_out))
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2, "sum": fan_in + fan_out}[mode]
    return gain / math.sqrt(fan)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", None])
@pytest.mark.parametrize(
    "scheme, mode",
    [("he_normal", "fan_in"), ("he_normal", "fan_out"), ("he_uniform", "fan_in"), ("he_uniform", "fan_out"),
     ("he_normal", "fan_avg"), ("he_uniform", "sum"), ("xavier_normal", "fan_in"), ("xavier_uniform", "fan_in")],
)
def test_spread_matches_the_formula(scheme, mode, activation, shape):
    W = initialize_weights(scheme, activation=activation, mode=mode)(shape, rng=np.random.default_rng(0))
    assert W.shape == shape and W.dtype == np.float64
    std = expected_std(scheme, shape, activation, mode)
    n = W.size
    assert abs(W.mean()) < 5 * std / math.sqrt(n)
    assert W.std() == pytest.approx(std, rel=0.05)
    bound = math.sqrt(3.0) * std
    if scheme.endswith("uniform"):
        # torch's bounds: kaiming gain·√(3/fan), xavier gain·√(6/(fan_in + fan_out))
        assert np.max(np.abs(W)) <= bound
        assert np.max(np.abs(W)) >= 0.98 * bound
    else:
        assert np.max(np.abs(W)) > 1.5 * bound  # a normal's tail, impossible for a uniform of this std


def test_xavier_ignores_mode_and_he_uses_it():
    shape = (100, 400)
    a = initialize_weights("xavier_normal", mode="fan_in")(shape, rng=np.random.default_rng(1))
    b = initialize_weights("xavier_normal", mode="fan_out")(shape, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    c = initialize_weights("he_normal", mode="fan_in")(shape, rng=np.random.default_rng(1))
    d = initialize_weights("he_normal", mode="fan_out")(shape, rng=np.random.default_rng(1))
    np.testing.assert_allclose(c / d, math.sqrt(400 / 100), rtol=1e-12)


@pytest.mark.parametrize("scheme", ["uniform", "normal", "he_uniform", "he_normal", "xavier_uniform", "xavier_normal", "sparse"])
def test_reproducible_with_an_rng_and_global_state(scheme):
    init = initialize_weights(scheme)
    shape = (20, 30)
    np.testing.assert_array_equal(init(shape, rng=np.random.default_rng(3)), init(shape, rng=np.random.default_rng(3)))
    assert not np.array_equal(init(shape, rng=np.random.default_rng(3)), init(shape, rng=np.random.default_rng(4)))
    np.random.seed(11)
    first = init(shape)
    np.random.seed(11)
    np.testing.assert_array_equal(first, init(shape))


@pytest.mark.parametrize("scheme", ["zeros", "ones", "constant", "identity", "uniform", "normal", "sparse", "he_uniform", "xavier_normal"])
def test_dtype(scheme):
    W = initialize_weights(scheme)((6, 4), rng=np.random.default_rng(0), dtype=np.float32)
    assert W.dtype == np.float32 and W.shape == (6, 4)


def test_constant_schemes():
    assert np.array_equal(initialize_weights("zeros")((3, 2)), np.zeros((3, 2)))
    assert np.array_equal(initialize_weights("ones")((3, 2)), np.ones((3, 2)))
    assert np.array_equal(initialize_weights("constant")((3, 2)), np.full((3, 2), 0.5))


def test_uniform_and_normal():
    U = initialize_weights("uniform")((200, 200), rng=np.random.default_rng(0))
    assert U.min() >= -1 and U.max() <= 1 and U.std() == pytest.approx(1 / math.sqrt(3), rel=0.03)
    N = initialize_weights("normal")((200, 200), rng=np.random.default_rng(0))
    assert N.std() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3)])
def test_identity_matrix_matches_torch_eye(shape):
    expected = torch.nn.init.eye_(torch.empty(torch_layout(shape))).numpy().T
    np.testing.assert_array_equal(initialize_weights("identity")(shape), expected)


@pytest.mark.parametrize("shape", [(3, 3, 4, 4), (1, 1, 2, 3), (5, 3, 3, 2), (2, 2, 1, 1)])
def test_identity_kernel_matches_torch_dirac(shape):
    expected = torch.nn.init.dirac_(torch.empty(torch_layout(shape))).numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(initialize_weights("identity")(shape), expected)


def test_identity_needs_rank_2_or_4():
    with pytest.raises(ValueError, match="identity"):
        initialize_weights("identity")((2, 3, 4))


@pytest.mark.parametrize("shape", [(10, 7), (25, 40), (3, 5), (1, 4)])
def test_sparse_zeros_per_column(shape):
    W = initialize_weights("sparse")(shape, rng=np.random.default_rng(0))
    zeros_per_column = np.sum(W == 0, axis=0)
    torch_zeros = (torch.nn.init.sparse_(torch.empty(shape), 0.1) == 0).sum(dim=0).numpy()
    np.testing.assert_array_equal(zeros_per_column, np.full(shape[1], math.ceil(0.1 * shape[0])))
    np.testing.assert_array_equal(zeros_per_column, torch_zeros)


def test_sparse_spread_and_rank():
    W = initialize_weights("sparse")((100, 300), rng=np.random.default_rng(0))
    assert W[W != 0].std() == pytest.approx(0.01, rel=0.03)
    with pytest.raises(ValueError, match="sparse"):
        initialize_weights("sparse")((3, 3, 2, 2))


@pytest.mark.parametrize("kwargs", [{"name": "glorot"}, {"name": "he"}, {"name": None}, {"name": "he_normal", "mode": "fan_max"}])
def test_bad_names(kwargs):
    with pytest.raises(ValueError) as error:
        initialize_weights(**kwargs)
    assert isinstance(error.value, UnknownNameError)
    bad = kwargs.get("mode", kwargs["name"])
    assert repr(bad) in str(error.value)


@pytest.mark.parametrize("scheme", ["zeros", "ones", "constant", "identity", "uniform", "normal", "sparse",
                                    "he_uniform", "he_normal", "xavier_uniform", "xavier_normal"])
def test_initializers_pickle_and_draw_the_same_weights(scheme):
    # a closure could not be pickled, and nor could any layer holding one (regression)
    import pickle

    init = initialize_weights(scheme, activation="relu", mode="fan_out")
    copy = pickle.loads(pickle.dumps(init))
    shape = (3, 3, 4, 4) if scheme not in ("sparse",) else (12, 5)
    np.testing.assert_array_equal(copy(shape, rng=np.random.default_rng(3)),
                                  init(shape, rng=np.random.default_rng(3)))
    assert (copy.scheme_name, copy.activation, copy.mode, copy.gain) == (scheme, "relu", "fan_out", math.sqrt(2))
