"""Pool2D against torch max_pool2d / avg_pool2d(count_include_pad=True), through the harness."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, arrays, check_layer, float_dtypes, make_values, nchw_to_nhwc, nhwc_to_nchw, strides
from neural_networks.errors import ShapeError
from neural_networks.layers import Pool2D, initialize_layer


def as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def resolved_pad(pad, kernel):
    if pad == "same":
        return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    if pad == "valid":
        return (0, 0)
    return as_pair(pad)


def pool_twin(mode, kernel, stride, pad):
    def twin(x, p):
        x = nhwc_to_nchw(x)
        if mode == "max":
            y = torch.nn.functional.max_pool2d(x, kernel, stride=stride, padding=pad)
        else:
            y = torch.nn.functional.avg_pool2d(x, kernel, stride=stride, padding=pad, count_include_pad=True)
        return nchw_to_nhwc(y)

    return twin


@st.composite
def pool_cases(draw, dtypes=float_dtypes, kinds=("normal", "dyadic", "small_ints", "relu_ints"), max_hw=8):
    dtype = draw(dtypes)
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pad = draw(st.one_of(
        st.sampled_from(["same", "valid"]),
        st.integers(0, min(kernel) // 2),
        st.tuples(st.integers(0, kernel[0] // 2), st.integers(0, kernel[1] // 2)),
    ))
    ph, pw = resolved_pad(pad, kernel)
    stride = draw(strides)
    sh, sw = as_pair(stride)
    mode = draw(st.sampled_from(["max", "average"]))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kernel[0] - 2 * ph), max_hw))
    w = draw(st.integers(max(1, kernel[1] - 2 * pw), max_hw))
    out_shape = (n, (h + 2 * ph - kernel[0]) // sh + 1, (w + 2 * pw - kernel[1]) // sw + 1, c)
    X = draw(arrays((n, h, w, c), dtype, kinds=kinds))
    dY = draw(arrays(out_shape, dtype, kinds=("normal", "dyadic")))
    return dict(mode=mode, kernel=kernel, stride=stride, pad=pad, X=X, dY=dY)


def run_case(case, finite_differences=False):
    layer = Pool2D(case["kernel"], mode=case["mode"], stride=case["stride"], pad=case["pad"])
    twin = pool_twin(case["mode"], case["kernel"], as_pair(case["stride"]), resolved_pad(case["pad"], case["kernel"]))
    return check_layer(layer, twin, case["X"], case["dY"], expected_shape=case["dY"].shape,
                       finite_differences=finite_differences)


@SETTINGS
@given(pool_cases())
def test_pool2d_matches_torch(case):
    run_case(case)


@SETTINGS
@given(pool_cases(kinds=("small_ints", "relu_ints"), dtypes=st.just(np.float32)))
def test_pool2d_ties_match_torch_float32(case):
    """Many equal values (and all-zero windows): each window's gradient goes to its first maximum."""
    run_case(case)


@SETTINGS
@given(pool_cases(dtypes=st.just(np.float64), max_hw=5), st.integers(0, 2**32 - 1))
def test_pool2d_finite_differences(case, seed):
    # Distinct values 0.01 apart: no tie is within the finite-difference step.
    X = case["X"]
    case["X"] = np.random.default_rng(seed).permutation(X.size).reshape(X.shape) * 0.01 - 1.0
    run_case(case, finite_differences=True)


# -- hand-computed cases -----------------------------------------------------------------------------
def test_max_pool_border_window_of_negatives_is_padded_with_minus_infinity():
    X = np.array([[-5, -2, -7, -1],
                  [-3, 4, 1, -6],
                  [-8, 0, 2, -4],
                  [-9, -2, -3, -1]], dtype=np.float64).reshape(1, 4, 4, 1)
    # kernel 2, stride 2, pad 1: the padded windows cover input rows/cols {0}, {1, 2}, {3}.
    expected = np.array([[-5, -2, -1],
                         [-3, 4, -4],
                         [-9, -2, -1]], dtype=np.float64).reshape(1, 3, 3, 1)
    layer = Pool2D(2, mode="max", stride=2, pad=1)
    Y, dX, _ = check_layer(layer, pool_twin("max", (2, 2), (2, 2), (1, 1)), X, np.ones((1, 3, 3, 1)),
                           expected_shape=(1, 3, 3, 1))
    np.testing.assert_array_equal(Y, expected)  # not 0, as zero padding would give
    expected_dX = np.zeros((4, 4))
    for r, c in [(0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (2, 3), (3, 0), (3, 1), (3, 3)]:
        expected_dX[r, c] = 1.0  # each window's maximum, each window has exactly one
    np.testing.assert_array_equal(dX[0, :, :, 0], expected_dX)


def test_all_zero_window_gets_the_gradient_once():
    X = np.zeros((1, 2, 2, 1), dtype=np.float32)
    dY = np.full((1, 1, 1, 1), 3.0, dtype=np.float32)
    _, dX, _ = check_layer(Pool2D(2, mode="max"), pool_twin("max", (2, 2), (1, 1), (0, 0)), X, dY)
    np.testing.assert_array_equal(dX[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])  # the first maximum, once


def test_max_pool_overlapping_windows_accumulate_on_a_shared_maximum():
    X = np.array([[0, 0, 0], [0, 9, 0], [0, 0, 0]], dtype=np.float64).reshape(1, 3, 3, 1)
    dY = np.array([1.0, 2.0, 4.0, 8.0]).reshape(1, 2, 2, 1)
    _, dX, _ = check_layer(Pool2D(2, mode="max", stride=1), pool_twin("max", (2, 2), (1, 1), (0, 0)), X, dY)
    assert dX[0, 1, 1, 0] == 15.0 and np.count_nonzero(dX) == 1  # the centre is every window's maximum


def test_average_pool_stride_one_interior_cell_accumulates():
    X = make_values(0, (1, 3, 3, 1), "normal", np.float64)
    _, dX, _ = check_layer(Pool2D(2, mode="average", stride=1), pool_twin("average", (2, 2), (1, 1), (0, 0)),
                           X, np.ones((1, 2, 2, 1)))
    # A cell in m windows gets m · 1/4: corners 1, edges 2, centre 4 windows.
    np.testing.assert_allclose(dX[0, :, :, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], rtol=0, atol=1e-15)


def test_average_pool_counts_the_padding():
    X = np.ones((1, 2, 2, 1))
    Y, _, _ = check_layer(Pool2D(2, mode="average", stride=1, pad=1), pool_twin("average", (2, 2), (1, 1), (1, 1)),
                          X, np.ones((1, 3, 3, 1)))
    # Each 2×2 window divides by 4 whatever part of it is padding.
    np.testing.assert_allclose(Y[0, :, :, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], rtol=0, atol=1e-15)


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel, pad", [(2, 2), (3, 2), ((3, 4), (2, 1)), (1, 1), ((4, 2), (1, 2))])
def test_pad_larger_than_half_the_kernel(kernel, pad):
    with pytest.raises(ValueError, match="Pool2D.*pad"):
        Pool2D(kernel, pad=pad)


@pytest.mark.parametrize("stride", [0, -2, (1, 0)])
def test_nonpositive_stride(stride):
    with pytest.raises(ValueError, match="Pool2D.*stride"):
        Pool2D(2, stride=stride)


def test_unknown_mode():
    with pytest.raises(ValueError) as error:
        Pool2D(2, mode="median")
    assert "Pool2D" in str(error.value) and "median" in str(error.value)


@pytest.mark.parametrize("shape", [(4, 4), (1, 4, 4), (1, 1, 4, 4, 1)])
def test_wrong_rank(shape):
    with pytest.raises(ShapeError) as error:
        Pool2D(2).forward(np.zeros(shape))
    message = str(error.value)
    assert "Pool2D" in message and "rank-4" in message and str(shape) in message


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError) as error:
        Pool2D((3, 1)).forward(np.zeros((1, 2, 5, 1)))
    assert "Pool2D" in str(error.value) and "height" in str(error.value) and "larger than the padded input" in str(error.value)


def test_upstream_gradient_of_wrong_shape():
    layer = Pool2D(2, stride=2)
    layer.forward(np.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError) as error:
        layer.backward(np.zeros((1, 3, 3, 2)))
    message = str(error.value)
    assert "Pool2D" in message and "(1, 2, 2, 2)" in message and "(1, 3, 3, 2)" in message


def test_initialize_layer_pool2d():
    layer = initialize_layer("pool2d", kernel_shape=2, mode="average", stride=2)
    assert isinstance(layer, Pool2D) and layer.forward(np.zeros((1, 6, 6, 3))).shape == (1, 3, 3, 3)


def test_max_pool_propagates_nan_and_routes_its_gradient_like_torch():
    X = make_values(5, (1, 4, 4, 2), "small_ints", np.float64)
    X[0, 1, 1, 0] = np.nan
    X[0, 2, 3, 1] = np.nan
    X[0, 3, 3, 1] = np.nan  # two NaNs in one window
    dY = make_values(6, (1, 3, 3, 2), "dyadic", np.float64)
    layer = Pool2D(2, mode="max", stride=1)
    Y = layer.forward(X)
    dX = layer.backward(dY)
    x = torch.tensor(X, requires_grad=True)
    y = pool_twin("max", (2, 2), (1, 1), (0, 0))(x, {})
    (y * torch.tensor(dY)).sum().backward()
    np.testing.assert_array_equal(Y, y.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_array_equal(dX, x.grad.numpy())


@pytest.mark.parametrize("shape, kernel", [((2, 5, 7, 3), 2), ((1, 7, 8, 2), 3), ((1, 4, 6, 1), (2, 3))])
def test_max_pool_tiling_windows_leave_zero_gradient_on_uncovered_cells(shape, kernel):
    """stride = kernel: every covered cell is written once, the rows and columns past the
    last window get exactly zero (not whatever memory the gradient array reused)."""
    X = make_values(8, shape, "small_ints", np.float64)  # ties and zeros
    layer = Pool2D(kernel, mode="max", stride=kernel)
    Y = layer.forward(X)
    dY = make_values(9, Y.shape, "dyadic", np.float64)
    for _ in range(3):  # freed blocks full of nan, which the next allocation may reuse
        junk = np.full(shape, np.nan)
        del junk
        dX = layer.backward(dY)
        kh, kw = as_pair(kernel)
        assert np.all(dX[:, kh * Y.shape[1]:] == 0) and np.all(dX[:, :, kw * Y.shape[2]:] == 0)
    twin = pool_twin("max", as_pair(kernel), as_pair(kernel), (0, 0))
    check_layer(Pool2D(kernel, mode="max", stride=kernel), twin, X, dY)
