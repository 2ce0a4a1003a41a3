"""The course's im2col/col2im/pad2d helpers agree with Conv2D (and hence with PyTorch)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks.layers import Conv2D
from neural_networks.utils.convolution import col2im, im2col, pad2d

cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "h": st.integers(3, 7), "w": st.integers(3, 7), "c": st.integers(1, 3),
    "out": st.integers(1, 3), "k": st.sampled_from([(1, 1), (2, 3), (3, 3)]),
    "stride": st.integers(1, 3), "pad": st.sampled_from(["same", "valid", 1, (0, 1)]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=30, deadline=None)
@given(cases)
def test_course_formulas_with_im2col_reproduce_conv2d(case):
    rng = np.random.default_rng(case["seed"])
    X = rng.standard_normal((case["n"], case["h"], case["w"], case["c"]))
    layer = Conv2D(case["out"], case["k"], stride=case["stride"], pad=case["pad"])
    Z = layer.forward(X)
    W, b = layer.parameters["W"], layer.parameters["b"]
    n_out, rows, cols = W.shape[3], Z.shape[1], Z.shape[2]

    # forward exactly as the seed wrote it
    X_col, _ = im2col(X, case["k"], case["stride"], case["pad"])
    W_rows = W.transpose(3, 2, 0, 1).reshape(n_out, -1)
    Z_course = (W_rows @ X_col).reshape(n_out, rows, cols, -1).transpose(3, 1, 2, 0) + b
    np.testing.assert_allclose(Z_course, Z, rtol=1e-12, atol=1e-12)

    # backward dX as the seed wrote it
    dZ = rng.standard_normal(Z.shape)
    dX = layer.backward(dZ)
    dZ_rows = dZ.transpose(3, 1, 2, 0).reshape(n_out, -1)
    dX_course = col2im(W_rows.T @ dZ_rows, X, W.shape, case["stride"], case["pad"]).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(dX_course, dX, rtol=1e-12, atol=1e-12)


def test_pad2d_returns_the_four_pads_and_does_not_touch_x():
    X = np.arange(2 * 3 * 4 * 1, dtype=float).reshape(2, 3, 4, 1)
    before = X.copy()
    X_pad, pads = pad2d(X, "same", (3, 5))
    assert pads == (1, 1, 2, 2)
    assert X_pad.shape == (2, 5, 8, 1)
    np.testing.assert_array_equal(X_pad[:, 1:4, 2:6], X)
    np.testing.assert_array_equal(X, before)


def test_asymmetric_pads_are_refused():
    with pytest.raises(ValueError, match="symmetric"):
        im2col(np.zeros((1, 4, 4, 1)), (3, 3), 1, (0, 1, 1, 1))
