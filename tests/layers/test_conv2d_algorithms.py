"""Conv2D's algorithms ("shifted" and "patches") against torch, through the harness.

With ``algorithm="auto"`` only layers with >= 8 input channels take the "shifted" path,
which the small hypothesis cases of test_layer_conv2d.py never reach; here every
algorithm is forced on shapes where it applies (and where "shifted" must fall back).
"shifted" accumulates its per-offset products with the BLAS GEMM (β = 1, SciPy) when it
can and with NumPy otherwise: both ways are forced here (``GEMM_PATHS``).
"""


import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    GEMM_PATHS,
    SETTINGS,
    TORCH_ACTIVATIONS,
    arrays,
    check_layer,
    conv_weight_to_torch,
    float_dtypes,
    gemm_path,
    make_values,
    nchw_to_nhwc,
    nhwc_to_nchw,
)
from neural_networks.layers import Conv2D
from neural_networks.models import NeuralNetwork

#: how matmul_accumulate adds a product: BLAS with beta = 1 (needs SciPy), or NumPy

CASES = [  # kernel, pad, stride, C_in, C_out
    ((3, 3), "same", 1, 9, 5),     # the benchmark's case
    ((3, 3), "same", 1, 1, 4),
    ((5, 5), "same", 1, 8, 3),
    ((3, 1), "same", 1, 10, 2),
    ((1, 3), (0, 1), 1, 8, 2),
    ((1, 1), "same", 1, 12, 3),
    ((5, 3), (2, 1), 1, 8, 4),
    ((3, 3), "valid", 1, 8, 3),    # "shifted" does not apply: falls back to "patches"
    ((3, 3), "same", 2, 8, 3),     # idem (stride 2)
    ((4, 4), "same", 1, 8, 3),     # idem (even kernel: the output is smaller)
]


def twin(stride, pad, activation):
    def torch_conv(x, p):
        z = torch.nn.functional.conv2d(nhwc_to_nchw(x), conv_weight_to_torch(p["W"]), p["b"].reshape(-1),
                                       stride=stride, padding=pad)
        return TORCH_ACTIVATIONS[activation](nchw_to_nhwc(z))

    return torch_conv


@pytest.mark.parametrize("algorithm", ["shifted", "patches", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, pad, stride, c_in, c_out", CASES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("with_blas", GEMM_PATHS)
def test_every_algorithm_matches_torch(algorithm, dtype, kernel, pad, stride, c_in, c_out, activation, with_blas):
    kind = "dyadic" if dtype == np.float32 else "normal"  # float32: exact pre-activations
    X = make_values(1, (2, 7, 6, c_in), kind, dtype)
    W = make_values(2, kernel + (c_in, c_out), kind, dtype)
    b = make_values(3, (1, c_out), "dyadic", dtype)
    layer = Conv2D(c_out, kernel, activation=activation, stride=stride, pad=pad)
    layer.algorithm = algorithm
    ph, pw = layer.pad
    out_shape = (2, (7 + 2 * ph - kernel[0]) // stride + 1, (6 + 2 * pw - kernel[1]) // stride + 1, c_out)
    dY = make_values(4, out_shape, "dyadic", dtype)
    with gemm_path(with_blas):
        check_layer(layer, twin(stride, (ph, pw), activation), X, dY, params={"W": W, "b": b})

    applies = stride == 1 and 2 * ph == kernel[0] - 1 and 2 * pw == kernel[1] - 1
    wants_shifted = algorithm == "shifted" or (algorithm == "auto" and c_in >= 8)
    assert layer.cache["algorithm"] == ("shifted" if applies and wants_shifted else "patches")


@st.composite
def same_size_cases(draw):
    """Shapes where "shifted" applies (odd kernels, "same" padding, stride 1), values with
    exact zeros and ties among the kinds."""
    dtype = draw(float_dtypes)
    kernel = (draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5])))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    c_in, c_out = draw(st.integers(1, 10)), draw(st.integers(1, 6))
    kinds = ("normal", "dyadic", "small_ints", "relu_ints")
    return dict(
        kernel=kernel, activation=draw(st.sampled_from(["relu", "tanh", "linear"])),
        X=draw(arrays((n, h, w, c_in), dtype, kinds=kinds)),
        W=draw(arrays(kernel + (c_in, c_out), dtype, kinds=kinds)),
        b=draw(arrays((1, c_out), dtype, kinds=("dyadic", "small_ints"))),
        dY=draw(arrays((n, h, w, c_out), dtype, kinds=("normal", "dyadic", "small_ints"))),
    )


@pytest.mark.parametrize("algorithm", ["shifted", "patches"])
@pytest.mark.parametrize("with_blas", GEMM_PATHS)
@SETTINGS
@given(case=same_size_cases())
def test_each_algorithm_matches_torch_on_drawn_shapes(algorithm, with_blas, case):
    kernel = case["kernel"]
    pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    layer = Conv2D(case["W"].shape[3], kernel, activation=case["activation"], pad="same")
    layer.algorithm = algorithm
    with gemm_path(with_blas):
        check_layer(layer, twin(1, pad, case["activation"]), case["X"], case["dY"],
                    params={"W": case["W"], "b": case["b"]})
    assert layer.cache["algorithm"] == algorithm


@pytest.mark.parametrize("algorithm", ["shifted", "patches"])
def test_input_gradient_false_gives_the_same_parameter_gradients(algorithm):
    X = make_values(5, (3, 6, 6, 8), "normal", np.float64)
    layer = Conv2D(4, 3, activation="relu")
    layer.algorithm = algorithm
    Y = layer.forward(X)
    dY = make_values(6, Y.shape, "normal", np.float64)
    dX = layer.backward(dY)
    expected = {key: value.copy() for key, value in layer.gradients.items()}
    assert dX.shape == X.shape
    assert layer.backward(dY, input_gradient=False) is None
    for key, value in expected.items():
        np.testing.assert_array_equal(layer.gradients[key], value)


def test_the_model_skips_only_the_first_layers_input_gradient():
    calls = []
    model = NeuralNetwork([Conv2D(4, 3, activation="relu"), Conv2D(3, 3, activation="relu")],
                          loss="l2", seed=0, dtype="float64")
    X = make_values(7, (2, 5, 5, 8), "normal", np.float64)
    out = model.forward(X)
    for layer in model.layers:
        original = layer.backward

        def spy(dLdY, input_gradient=True, original=original, layer=layer):
            calls.append((layer, input_gradient))
            return original(dLdY, input_gradient=input_gradient)

        layer.backward = spy
    model.backward(np.zeros_like(out), out)
    assert calls == [(model.layers[1], True), (model.layers[0], False)]
