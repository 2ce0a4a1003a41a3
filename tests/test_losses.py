"""Losses: CrossEntropy and L2 against torch autograd; finiteness at probabilities 0 and 1."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, assert_close, assert_unchanged, float_dtypes, to_torch
from neural_networks.errors import ShapeError, UnknownNameError
from neural_networks.losses import L2, CrossEntropy, initialize_loss

EPS = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-7}


def torch_cross_entropy(Y, Y_hat, eps):
    y_hat = to_torch(Y_hat, requires_grad=True)
    loss = -(to_torch(Y) * torch.log(y_hat.clamp_min(eps))).sum() / Y.shape[0]
    loss.backward()
    return loss.item(), y_hat.grad.numpy()


def torch_l2(Y, Y_hat):
    y_hat = to_torch(Y_hat, requires_grad=True)
    loss = torch.nn.functional.mse_loss(y_hat, to_torch(Y), reduction="sum") / Y.shape[0]
    loss.backward()
    return loss.item(), y_hat.grad.numpy()


@st.composite
def probabilities(draw, dtypes=float_dtypes):
    """(Y, Ŷ): one-hot or soft targets, softmax rows with some probabilities exactly 0 or 1."""
    dtype = draw(dtypes)
    n, k = draw(st.integers(1, 6)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.standard_normal((n, k)) * draw(st.sampled_from([1.0, 5.0]))
    Y_hat = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if draw(st.booleans()):  # some rows certain: exact 0s and a 1
        certain = rng.random(n) < 0.5
        Y_hat[certain] = np.eye(k)[rng.integers(0, k, size=certain.sum())]
    if draw(st.booleans()):
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    else:
        Y = rng.dirichlet(np.ones(k), size=n)
    return Y.astype(dtype), Y_hat.astype(dtype)


@SETTINGS
@given(probabilities())
def test_cross_entropy_matches_torch(pair):
    Y, Y_hat = pair
    dtype, eps = Y_hat.dtype, EPS[Y_hat.dtype]
    Y_before, Y_hat_before = Y.copy(), Y_hat.copy()
    Y.flags.writeable = Y_hat.flags.writeable = False  # any in-place write raises
    loss = CrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.forward(Y, Y_hat)
        grad = loss.backward(Y, Y_hat)
    assert isinstance(value, float) and np.isfinite(value)
    assert grad.dtype == dtype and grad.shape == Y_hat.shape and np.all(np.isfinite(grad))
    assert_unchanged(Y_before, Y, "Y")
    assert_unchanged(Y_hat_before, Y_hat, "Y_hat")

    ref_value, ref_grad = torch_cross_entropy(Y, Y_hat, eps)
    assert_close(value, ref_value, dtype, "cross-entropy forward")
    # Where Ŷ ≥ ε the gradient is the exact one; below ε (probability 0), the
    # documented −Y/(N·ε): finite, and zero where Y is zero.
    above = Y_hat >= eps
    expected = np.where(above, ref_grad, -Y.astype(np.float64) / (Y.shape[0] * eps))
    assert_close(grad, expected, dtype, "cross-entropy backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_certain_predictions(dtype):
    Y = np.array([[1, 0, 0], [0, 1, 0]], dtype=dtype)
    right = Y.copy()
    wrong = np.array([[0, 1, 0], [1, 0, 0]], dtype=dtype)
    assert CrossEntropy()(Y, right) == 0.0
    # all the mass on a wrong class: each row costs −log ε
    np.testing.assert_allclose(CrossEntropy()(Y, wrong), -np.log(EPS[np.dtype(dtype)]), rtol=1e-6)
    assert np.all(np.isfinite(CrossEntropy().backward(Y, wrong)))
    assert CrossEntropy().backward(Y, wrong).dtype == dtype


def test_cross_entropy_is_exact_above_the_floor():
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    Y_hat = np.array([[0.5, 1e-11], [0.25, 0.75]])  # 1e-11 is above the float64 floor 1e-12
    expected = -(np.log(1e-11) + np.log(0.25)) / 2
    assert CrossEntropy()(Y, Y_hat) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(CrossEntropy().backward(Y, Y_hat), [[0, -1 / (2 * 1e-11)], [-1 / (2 * 0.25), 0]], rtol=1e-15)


@SETTINGS
@given(float_dtypes, st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_l2_matches_torch(dtype, n, d, seed):
    rng = np.random.default_rng(seed)
    Y, Y_hat = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, d)).astype(dtype)
    Y_before, Y_hat_before = Y.copy(), Y_hat.copy()
    Y.flags.writeable = Y_hat.flags.writeable = False
    value, grad = L2().forward(Y, Y_hat), L2().backward(Y, Y_hat)
    assert isinstance(value, float) and grad.dtype == dtype and grad.shape == Y_hat.shape
    assert_unchanged(Y_before, Y, "Y")
    assert_unchanged(Y_hat_before, Y_hat, "Y_hat")
    ref_value, ref_grad = torch_l2(Y, Y_hat)
    assert_close(value, ref_value, dtype, "L2 forward")
    assert_close(grad, ref_grad, dtype, "L2 backward")


def test_l2_hand_computed():
    Y = np.array([[1.0, 2.0], [0.0, 0.0]])
    Y_hat = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert L2()(Y, Y_hat) == (4.0 + 9.0) / 2


@pytest.mark.parametrize("loss", [CrossEntropy(), L2()])
def test_shape_mismatch(loss):
    with pytest.raises(ShapeError) as error:
        loss(np.zeros((2, 3)), np.zeros((2, 4)))
    assert "(2, 3)" in str(error.value) and "(2, 4)" in str(error.value)


def test_initialize_loss():
    assert isinstance(initialize_loss("cross_entropy"), CrossEntropy)
    assert isinstance(initialize_loss("L2"), L2)
    loss = L2()
    assert initialize_loss(loss) is loss
    with pytest.raises(UnknownNameError, match="hinge"):
        initialize_loss("hinge")
