"""LayerNorm against torch.nn.functional.layer_norm (torch.nn.LayerNorm(d)), through the harness."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import (SETTINGS, arrays, assert_close, check_layer, float_dtypes, make_values,
                     normalization_atols, to_torch)
from neural_networks.errors import InvalidParameterError, ShapeError
from neural_networks.layers import LayerNorm, initialize_layer, layer_from_config

EPSILONS = (1e-5, 1e-8, 1e-3)


def layer_norm_twin(eps):
    def twin(x, p):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), p["gamma"].view(-1), p["beta"].view(-1), eps=eps)

    return twin


@st.composite
def layer_norm_cases(draw, dtypes=float_dtypes, max_size=4):
    dtype = draw(dtypes)
    shape = tuple(draw(st.lists(st.integers(1, max_size), min_size=2, max_size=4)))
    d = shape[-1]
    return dict(dtype=dtype, eps=draw(st.sampled_from(EPSILONS)), training=draw(st.booleans()),
                X=draw(arrays(shape, dtype)), dY=draw(arrays(shape, dtype, kinds=("normal", "dyadic"))),
                gamma=draw(arrays((1, d), dtype)), beta=draw(arrays((1, d), dtype)))


def run_case(case, finite_differences=False):
    atols = normalization_atols(case["X"], case["dY"], case["gamma"], case["eps"], axes=-1)
    return check_layer(
        LayerNorm(eps=case["eps"]), layer_norm_twin(case["eps"]), case["X"], case["dY"],
        params={"gamma": case["gamma"], "beta": case["beta"]}, training=case["training"],
        expected_shape=case["X"].shape, finite_differences=finite_differences, atols=atols,
    )


@SETTINGS
@given(layer_norm_cases())
def test_layer_norm_matches_torch(case):
    run_case(case)


@SETTINGS
@given(layer_norm_cases(dtypes=st.just(np.float64), max_size=3))
def test_layer_norm_finite_differences(case):
    case["eps"] = max(case["eps"], 1e-3)  # a constant row: σ² + eps must dwarf h² = 1e-12
    run_case(case, finite_differences=True)


def test_layer_norm_module_in_both_modes_and_other_leading_axes():
    rng = np.random.default_rng(0)
    d = 5
    module = torch.nn.LayerNorm(d).double()
    gamma, beta = rng.standard_normal((1, d)), rng.standard_normal((1, d))
    with torch.no_grad():
        module.weight.copy_(to_torch(gamma).view(-1))
        module.bias.copy_(to_torch(beta).view(-1))
    layer = LayerNorm()
    layer.forward(np.zeros((2, 3, d)))  # built from (3, d) samples
    layer.parameters["gamma"], layer.parameters["beta"] = gamma, beta
    for training, shape in ((True, (4, 7, d)), (False, (2, d)), (True, (1, 2, 2, d))):
        layer.training = training
        X = rng.standard_normal(shape) * 3 + 2
        assert_close(layer.forward(X), module(to_torch(X)).detach().numpy(), np.float64, f"forward {shape}")
    assert layer.buffers == {}


def test_dtype_kept_and_constant_rows_give_beta():
    X32 = np.full((3, 4), 2.5, dtype=np.float32)
    layer = LayerNorm()
    Y = layer.forward(X32)
    assert Y.dtype == np.float32 and layer.parameters["gamma"].dtype == np.float32
    np.testing.assert_array_equal(Y, np.zeros((3, 4), np.float32))  # beta starts at 0
    dX = layer.backward(np.ones((3, 4), np.float32))
    assert dX.dtype == np.float32 and np.all(np.isfinite(dX))


@pytest.mark.parametrize("shape", [(4,), ()])
def test_wrong_rank(shape):
    with pytest.raises(ShapeError) as error:
        LayerNorm().forward(np.zeros(shape))
    assert "LayerNorm" in str(error.value) and str(shape) in str(error.value)


def test_feature_mismatch_and_upstream_shape():
    layer = LayerNorm()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError) as error:
        layer.forward(np.ones((2, 4)))
    assert "LayerNorm" in str(error.value) and "(2, 4)" in str(error.value) and "3" in str(error.value)
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        layer.backward(np.ones((3, 3)))


@pytest.mark.parametrize("eps", [0.0, -1.0, "1e-5", float("inf")])
def test_bad_eps(eps):
    with pytest.raises(InvalidParameterError) as error:
        LayerNorm(eps=eps)
    assert "LayerNorm" in str(error.value) and "eps" in str(error.value)


def test_registry_and_config_round_trip():
    layer = initialize_layer("layernorm", eps=1e-3)
    assert isinstance(layer, LayerNorm) and layer.eps == 1e-3
    config = layer.get_config()
    assert config == {"type": "layernorm", "eps": 1e-3}
    assert layer_from_config(config).get_config() == config
    assert initialize_layer("layernorm").eps == 1e-5
    with pytest.raises(TypeError, match="momentum"):
        initialize_layer("layernorm", momentum=0.9)


def test_state_dict_round_trip():
    layer = LayerNorm()
    layer.forward(np.zeros((1, 3)))
    layer.parameters["gamma"] = make_values(0, (1, 3), "normal", np.float64)
    copy = LayerNorm()
    copy.build((3,))
    copy.load_state_dict(layer.state_dict())
    X = make_values(1, (4, 3), "normal", np.float64)
    np.testing.assert_array_equal(copy.forward(X), layer.forward(X))
