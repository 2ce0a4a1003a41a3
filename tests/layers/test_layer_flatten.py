"""Flatten against torch reshape, through the harness."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, arrays, check_layer, float_dtypes
from neural_networks.layers import Flatten, initialize_layer

TWINS = {
    "first": lambda x, p: x.reshape(x.shape[0], -1),
    -1: lambda x, p: x.reshape(1, -1),
    "last": lambda x, p: x.reshape(-1, x.shape[-1]),
}


@SETTINGS
@given(st.data(), float_dtypes, st.sampled_from(list(TWINS)), st.lists(st.integers(1, 4), min_size=1, max_size=5))
def test_flatten_matches_torch(data, dtype, keep_dim, shape):
    X = data.draw(arrays(tuple(shape), dtype))
    out_shape = tuple(TWINS[keep_dim](X, None).shape)  # numpy reshape, same rule as the twin
    dY = data.draw(arrays(out_shape, dtype))
    check_layer(Flatten(keep_dim=keep_dim), TWINS[keep_dim], X, dY, expected_shape=out_shape,
                finite_differences=dtype == np.float64 and X.size <= 64)


def test_flatten_nhwc_order_is_row_major_over_height_width_channels():
    X = np.arange(2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 2, 3, 2)
    Y = Flatten().forward(X)
    assert Y.shape == (2, 12)
    np.testing.assert_array_equal(Y[1], np.arange(12, 24))
    assert Flatten().output_shape((2, 3, 2)) == (12,)


def test_flatten_errors():
    with pytest.raises(ValueError, match="Flatten"):
        Flatten().forward(np.float64(1.0))
    layer = Flatten()
    layer.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError) as error:
        layer.backward(np.zeros((2, 11)))
    assert "Flatten" in str(error.value) and "(2, 11)" in str(error.value) and "(2, 3, 4)" in str(error.value)


def test_initialize_layer_flatten():
    assert isinstance(initialize_layer("flatten"), Flatten)
