"""Conv2D against torch.nn.functional.conv2d (NHWC ↔ NCHW), through the harness."""

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
    conv_weight_to_torch,
    float_dtypes,
    make_values,
    nchw_to_nhwc,
    nhwc_to_nchw,
    strides,
)
from neural_networks.errors import ShapeError
from neural_networks.layers import Conv2D, initialize_layer
from neural_networks.weights import initialize_weights

pads = st.one_of(
    st.sampled_from(["same", "valid"]),
    st.integers(0, 2),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
)


def resolved_pad(pad, kernel):
    """The padding the issue specifies, derived independently of the library."""
    if pad == "same":
        return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    if pad == "valid":
        return (0, 0)
    return (pad, pad) if isinstance(pad, int) else tuple(pad)


def as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_twin(stride, pad, activation):
    def twin(x, p):
        z = torch.nn.functional.conv2d(
            nhwc_to_nchw(x), conv_weight_to_torch(p["W"]), p["b"].reshape(-1),
            stride=stride, padding=pad,
        )
        return TORCH_ACTIVATIONS[activation](nchw_to_nhwc(z))

    return twin


@st.composite
def conv_cases(draw, activations=ACTIVATION_NAMES, dtypes=float_dtypes, max_hw=8, max_channels=3, max_batch=3):
    dtype = draw(dtypes)
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pad = draw(pads)
    ph, pw = resolved_pad(pad, kernel)
    stride = draw(strides)
    sh, sw = as_pair(stride)
    n = draw(st.integers(1, max_batch))
    h = draw(st.integers(max(1, kernel[0] - 2 * ph), max_hw))
    w = draw(st.integers(max(1, kernel[1] - 2 * pw), max_hw))
    c_in, c_out = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    activation = draw(st.sampled_from(activations))
    out_shape = (n, (h + 2 * ph - kernel[0]) // sh + 1, (w + 2 * pw - kernel[1]) // sw + 1, c_out)
    X = draw(arrays((n, h, w, c_in), dtype))
    W = draw(arrays(kernel + (c_in, c_out), dtype))
    b = draw(arrays((1, c_out), dtype))
    dY = draw(arrays(out_shape, dtype, kinds=("normal", "dyadic")))
    return dict(kernel=kernel, pad=pad, stride=stride, activation=activation, X=X, W=W, b=b, dY=dY)


def run_case(case, finite_differences=False):
    kernel, pad, stride = case["kernel"], case["pad"], case["stride"]
    layer = Conv2D(n_out=case["W"].shape[3], kernel_shape=kernel, activation=case["activation"], stride=stride, pad=pad)
    twin = conv_twin(as_pair(stride), resolved_pad(pad, kernel), case["activation"])
    return check_layer(
        layer, twin, case["X"], case["dY"], params={"W": case["W"], "b": case["b"]},
        expected_shape=case["dY"].shape, finite_differences=finite_differences,
    )


@SETTINGS
@given(conv_cases())
def test_conv2d_matches_torch(case):
    run_case(case)


@SETTINGS
@given(conv_cases(activations=SMOOTH_ACTIVATIONS, dtypes=st.just(np.float64), max_hw=4, max_channels=2, max_batch=2))
def test_conv2d_finite_differences(case):
    run_case(case, finite_differences=True)


def test_conv2d_relu_finite_differences_away_from_the_kink():
    rng = np.random.default_rng(7)
    case = dict(kernel=(3, 2), pad=(1, 1), stride=(2, 1), activation="relu",
                X=rng.standard_normal((2, 5, 4, 2)), W=rng.standard_normal((3, 2, 2, 3)),
                b=rng.standard_normal((1, 3)))
    out = torch.nn.functional.conv2d(nhwc_to_nchw(torch.tensor(case["X"])), conv_weight_to_torch(torch.tensor(case["W"])),
                                     torch.tensor(case["b"]).reshape(-1), stride=(2, 1), padding=(1, 1))
    assert out.abs().min() > 1e-3  # no pre-activation near the kink
    case["dY"] = rng.standard_normal(tuple(nchw_to_nhwc(out).shape))
    run_case(case, finite_differences=True)


def test_one_by_one_kernel_is_a_per_pixel_matrix_product():
    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((1, 1, 5, 2)), rng.standard_normal((1, 2))
    layer = Conv2D(n_out=2, kernel_shape=1, pad="valid")
    layer.forward(X)
    layer.parameters["W"], layer.parameters["b"] = W, b
    np.testing.assert_allclose(layer.forward(X), X @ W[0, 0] + b, rtol=1e-12)


def test_identity_kernel_reproduces_the_input():
    X = make_values(1, (2, 5, 6, 3), "normal", np.float64)
    layer = Conv2D(n_out=3, kernel_shape=3, pad="same", weight_init="identity")
    np.testing.assert_array_equal(layer.forward(X), X)


def test_same_padding_for_even_kernel_follows_the_issue_formula():
    # kernel 4: pad (4-1)//2 = 1 each side, so H' = H + 2 - 4 + 1 = H - 1
    layer = Conv2D(n_out=1, kernel_shape=(4, 3), pad="same")
    assert layer.forward(np.zeros((1, 6, 6, 1))).shape == (1, 5, 6, 1)


def test_float64_parameters_with_float32_input_give_float32():
    layer = Conv2D(n_out=2, kernel_shape=2)
    layer.forward(np.zeros((1, 3, 3, 1)))
    X32 = make_values(0, (1, 3, 3, 1), "dyadic", np.float32)
    Y = layer.forward(X32)
    assert Y.dtype == np.float32
    dX = layer.backward(np.ones(Y.shape, dtype=np.float32))
    assert dX.dtype == np.float32 and layer.gradients["W"].dtype == np.float32


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3), (1, 3, 3), (1, 1, 3, 3, 1)])
def test_wrong_rank(shape):
    with pytest.raises(ShapeError) as error:
        Conv2D(n_out=2, kernel_shape=3).forward(np.zeros(shape))
    message = str(error.value)
    assert "Conv2D" in message and "rank-4" in message and str(shape) in message


def test_channel_mismatch_after_build():
    layer = Conv2D(n_out=2, kernel_shape=3)
    layer.forward(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError) as error:
        layer.forward(np.zeros((1, 5, 5, 4)))
    message = str(error.value)
    assert "Conv2D" in message and "3 input channels" in message and "(1, 5, 5, 4)" in message


@pytest.mark.parametrize(
    "kernel, pad, shape, axis",
    [((5, 1), "valid", (1, 4, 9, 1), "height"), ((1, 6), 1, (1, 9, 3, 1), "width"), ((4, 4), "same", (1, 1, 1, 1), "height")],
)
def test_kernel_larger_than_padded_input(kernel, pad, shape, axis):
    with pytest.raises(ValueError) as error:
        Conv2D(n_out=1, kernel_shape=kernel, pad=pad).forward(np.zeros(shape))
    message = str(error.value)
    assert "Conv2D" in message and axis in message and "larger than the padded input" in message


@pytest.mark.parametrize("stride", [0, -1, (1, 0), (0, 2)])
def test_nonpositive_stride(stride):
    with pytest.raises(ValueError, match="Conv2D.*stride"):
        Conv2D(n_out=1, kernel_shape=2, stride=stride)


@pytest.mark.parametrize("kwargs", [{"pad": "full"}, {"pad": -1}, {"kernel_shape": 0}, {"n_out": 0}])
def test_bad_settings(kwargs):
    settings = dict(n_out=1, kernel_shape=2) | kwargs
    with pytest.raises(ValueError, match="Conv2D"):
        Conv2D(**settings)


@pytest.mark.parametrize("kwargs", [{"stride": 1.5}, {"kernel_shape": (2, 2, 2)}, {"pad": (1, "a")}])
def test_bad_types(kwargs):
    settings = dict(n_out=1, kernel_shape=2) | kwargs
    with pytest.raises(TypeError, match="Conv2D"):
        Conv2D(**settings)


@pytest.mark.parametrize("kwargs", [{"activation": "mish"}, {"weight_init": "lecun"}])
def test_unknown_names(kwargs):
    with pytest.raises(ValueError) as error:
        Conv2D(n_out=1, kernel_shape=2, **kwargs)
    assert "Conv2D" in str(error.value) and next(iter(kwargs.values())) in str(error.value)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="Conv2D"):
        Conv2D(n_out=1, kernel_shape=2).backward(np.zeros((1, 1, 1, 1)))


def test_initialize_layer_conv2d():
    layer = initialize_layer("conv2d", n_out=4, kernel_shape=(3, 3), stride=2, pad="valid", activation="relu")
    assert isinstance(layer, Conv2D) and layer.forward(np.zeros((1, 7, 7, 2))).shape == (1, 3, 3, 4)


def test_weight_init_uses_the_kernel_fans():
    layer = Conv2D(n_out=64, kernel_shape=3, weight_init="he_normal", activation="relu")
    layer.rng = np.random.default_rng(0)
    layer.forward(np.zeros((1, 5, 5, 32)))
    expected = initialize_weights("he_normal", activation="relu")((3, 3, 32, 64), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.parameters["W"], expected)
