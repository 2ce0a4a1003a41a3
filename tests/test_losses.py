"""Losses against torch autograd (finite at probabilities 0 and 1), their configs, and the
output layers each loss accepts."""

import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, assert_close, assert_unchanged, float_dtypes, make_values, to_torch
from neural_networks.activations import ELU, GELU, Linear, ReLU, Sigmoid, SoftMax, TanH
from neural_networks.errors import InvalidParameterError, ShapeError, UnknownNameError
from neural_networks.losses import (
    L2,
    LOSSES,
    MAE,
    BinaryCrossEntropy,
    CrossEntropy,
    Huber,
    initialize_loss,
    loss_config,
    probability_floor,
)

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


@pytest.mark.parametrize("loss", [CrossEntropy(), L2(), BinaryCrossEntropy(), MAE(), Huber()])
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


# -- binary cross-entropy --------------------------------------------------------------------------
def floor_in(dtype) -> float:
    """The clip ε as the loss applies it to an array of ``dtype`` (float32(1e-7) is not 1e-7)."""
    return float(np.asarray(probability_floor(dtype), dtype=dtype))


@st.composite
def binary_pairs(draw, dtypes=float_dtypes):
    """(Y, Ŷ): hard or soft targets in [0, 1] (exact 0s and 1s included), sigmoid outputs
    with some exactly 0 or 1, some at the clip ε and 1 − ε, and some inside."""
    dtype = draw(dtypes)
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.standard_normal((n, k)) * draw(st.sampled_from([1.0, 4.0, 20.0]))
    Y_hat = (1 / (1 + np.exp(-logits))).astype(dtype)
    if draw(st.booleans()):
        eps = floor_in(dtype)
        edges = np.array([0.0, 1.0, eps, 1 - eps, 0.5], dtype=dtype)
        chosen = rng.random((n, k)) < 0.4
        Y_hat = np.where(chosen, rng.choice(edges, size=(n, k)), Y_hat).astype(dtype)
    kind = draw(st.sampled_from(["hard", "soft", "mixed"]))
    Y = rng.integers(0, 2, size=(n, k)).astype(np.float64)
    if kind != "hard":
        soft = rng.random((n, k))
        Y = soft if kind == "soft" else np.where(rng.random((n, k)) < 0.5, Y, soft)
    return Y.astype(dtype), Y_hat


def torch_bce(Y, Y_hat, eps):
    """The documented clipped loss in torch (float64), and torch's own BCELoss(sum)/N."""
    y_hat = to_torch(Y_hat, requires_grad=True)
    y = to_torch(Y)
    clipped = -(y * torch.log(y_hat.clamp_min(eps)) + (1 - y) * torch.log((1 - y_hat).clamp_min(eps))).sum()
    clipped = clipped / Y.shape[0]
    y_hat_torch = to_torch(Y_hat, requires_grad=True)
    reference = torch.nn.BCELoss(reduction="sum")(y_hat_torch, y) / Y.shape[0]
    reference.backward()
    return clipped.item(), reference.item(), y_hat_torch.grad.numpy()


@SETTINGS
@given(binary_pairs())
def test_binary_cross_entropy_matches_torch(pair):
    Y, Y_hat = pair
    dtype, eps = Y_hat.dtype, floor_in(Y_hat.dtype)
    Y_before, Y_hat_before = Y.copy(), Y_hat.copy()
    Y.flags.writeable = Y_hat.flags.writeable = False  # any in-place write raises
    loss = BinaryCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss.forward(Y, Y_hat)
        grad = loss.backward(Y, Y_hat)
    assert isinstance(value, float) and np.isfinite(value)
    assert grad.dtype == dtype and grad.shape == Y_hat.shape and np.all(np.isfinite(grad))
    assert_unchanged(Y_before, Y, "Y")
    assert_unchanged(Y_hat_before, Y_hat, "Y_hat")

    clipped_value, torch_value, torch_grad = torch_bce(Y, Y_hat, eps)
    assert_close(value, clipped_value, dtype, "binary cross-entropy forward (clipped formula)")
    Y64, Y_hat64 = Y.astype(np.float64), Y_hat.astype(np.float64)
    inside = (Y_hat64 >= eps) & (1 - Y_hat64 >= eps)
    if inside.all():  # no clipping anywhere: exactly PyTorch's BCELoss
        assert_close(value, torch_value, dtype, "binary cross-entropy forward (BCELoss)")
    # Inside [ε, 1 − ε] the gradient is BCELoss's; where Ŷ is clipped, the documented
    # [(1 − Y)/max(1 − Ŷ, ε) − Y/max(Ŷ, ε)]/N: finite, and 0 where its target weight is 0.
    documented = ((1 - Y64) / np.maximum(1 - Y_hat64, eps) - Y64 / np.maximum(Y_hat64, eps)) / Y.shape[0]
    assert_close(grad, np.where(inside, torch_grad, documented), dtype, "binary cross-entropy backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_certain_predictions(dtype):
    # Ŷ exactly 0 and 1: right costs 0, wrong costs −log ε per output, never inf or nan.
    Y = np.array([[1.0], [0.0]], dtype=dtype)
    eps = floor_in(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BinaryCrossEntropy()(Y, Y.copy()) == 0.0
        wrong = 1 - Y
        assert BinaryCrossEntropy()(Y, wrong) == pytest.approx(-np.log(eps), rel=1e-6)
        grad = BinaryCrossEntropy().backward(Y, wrong)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, [[-1 / (2 * eps)], [1 / (2 * eps)]], rtol=1e-6)
    np.testing.assert_array_equal(BinaryCrossEntropy().backward(Y, Y.copy()), [[-0.5], [0.5]])


def test_binary_cross_entropy_hand_computed():
    Y, Y_hat = np.array([[1.0, 0.0], [0.25, 1.0]]), np.array([[0.5, 0.25], [0.5, 0.75]])
    expected = -(np.log(0.5) + np.log(0.75) + 0.25 * np.log(0.5) + 0.75 * np.log(0.5) + np.log(0.75)) / 2
    assert BinaryCrossEntropy()(Y, Y_hat) == pytest.approx(expected, rel=1e-15)


@SETTINGS
@given(float_dtypes, st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1),
       st.sampled_from([1.0, 10.0, 60.0]))
def test_binary_cross_entropy_fuses_with_sigmoid_like_bce_with_logits(dtype, n, k, seed, scale):
    # d(BCE ∘ σ)/dZ = (σ(Z) − Y)/N, torch's BCEWithLogitsLoss(sum)/N gradient, also where σ(Z)
    # rounds to exactly 0 or 1 (scale 60) and the unfused chain would be clipped.
    rng = np.random.default_rng(seed)
    Z = (rng.standard_normal((n, k)) * scale).astype(dtype)
    Y = rng.integers(0, 2, size=(n, k)).astype(dtype)
    sigmoid = Sigmoid()
    Y_hat = sigmoid(Z)
    fused = BinaryCrossEntropy().pre_activation_gradient(sigmoid, Y, Y_hat)
    assert fused.dtype == dtype and fused.shape == Z.shape
    z = to_torch(Z, requires_grad=True)
    (torch.nn.BCEWithLogitsLoss(reduction="sum")(z, to_torch(Y)) / n).backward()
    assert_close(fused, z.grad.numpy(), dtype, "fused sigmoid + BCE gradient")
    if scale == 1.0:  # far from 0 and 1 the chain through σ' agrees with the fused gradient
        chained = sigmoid.backward(Z, BinaryCrossEntropy().backward(Y, Y_hat))
        assert_close(chained, fused, dtype, "sigmoid chain vs fused")


@pytest.mark.parametrize("activation", [SoftMax(), Linear(), ReLU(), TanH(), None])
def test_binary_cross_entropy_fuses_only_with_sigmoid(activation):
    Y, Y_hat = np.array([[1.0], [0.0]]), np.array([[0.7], [0.2]])
    assert BinaryCrossEntropy().pre_activation_gradient(activation, Y, Y_hat) is None


@pytest.mark.parametrize("bad", [1.5, -0.25, np.nan, np.inf])
def test_binary_cross_entropy_refuses_targets_outside_0_1(bad):
    Y = np.array([[1.0], [bad]])
    Y_hat = np.array([[0.7], [0.2]])
    calls = [lambda: BinaryCrossEntropy()(Y, Y_hat), lambda: BinaryCrossEntropy().backward(Y, Y_hat),
             lambda: BinaryCrossEntropy().pre_activation_gradient(Sigmoid(), Y, Y_hat)]
    for call in calls:
        with pytest.raises(InvalidParameterError, match=r"targets Y must lie in \[0, 1\].*1 value"):
            call()


# -- MAE and Huber ------------------------------------------------------------------------------
@st.composite
def regression_pairs(draw, dtypes=float_dtypes):
    """(Y, Ŷ) of one value kind for both: continuous, dyadic (residuals exactly ±δ happen)
    or small integers (exact ties Ŷ = Y)."""
    dtype = draw(dtypes)
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 4)))
    kind = draw(st.sampled_from(["normal", "dyadic", "small_ints"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_values(seed, shape, kind, dtype), make_values(seed + 1, shape, kind, dtype)


def torch_regression(module, Y, Y_hat):
    y_hat = to_torch(Y_hat, requires_grad=True)
    value = module(y_hat, to_torch(Y)) / Y.shape[0]
    value.backward()
    return value.item(), y_hat.grad.numpy()


def check_regression_loss(loss, torch_module, Y, Y_hat):
    Y_before, Y_hat_before = Y.copy(), Y_hat.copy()
    Y.flags.writeable = Y_hat.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.forward(Y, Y_hat), loss.backward(Y, Y_hat)
    assert isinstance(value, float) and grad.dtype == Y_hat.dtype and grad.shape == Y_hat.shape
    assert_unchanged(Y_before, Y, "Y")
    assert_unchanged(Y_hat_before, Y_hat, "Y_hat")
    ref_value, ref_grad = torch_regression(torch_module, Y, Y_hat)
    assert_close(value, ref_value, Y_hat.dtype, f"{loss} forward")
    assert_close(grad, ref_grad, Y_hat.dtype, f"{loss} backward")


@SETTINGS
@given(regression_pairs())
def test_mae_matches_torch(pair):
    check_regression_loss(MAE(), torch.nn.L1Loss(reduction="sum"), *pair)


@SETTINGS
@given(regression_pairs(), st.sampled_from([1.0, 0.5, 0.25, 2.0, 0.1]))
def test_huber_matches_torch(pair, delta):
    check_regression_loss(Huber(delta=delta), torch.nn.HuberLoss(reduction="sum", delta=delta), *pair)


def test_mae_gradient_is_zero_at_a_tie():
    Y = np.array([[1.0, -2.0, 0.0]])
    np.testing.assert_array_equal(MAE().backward(Y, Y.copy()), [[0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(MAE().backward(Y, Y + [[1.0, -1.0, 0.0]]), [[1.0, -1.0, 0.0]])


@pytest.mark.parametrize("delta", [1.0, 0.5, 3.0])
def test_huber_at_and_around_delta(delta):
    # Residuals −δ, δ (the switch, value ½δ², slope ±δ), inside and beyond, each against torch.
    residuals = np.array([[-2 * delta, -delta, -0.5 * delta, 0.0, 0.5 * delta, delta, 3 * delta]]).T
    Y = np.full_like(residuals, 0.25)
    Y_hat = Y + residuals
    for row in range(len(Y)):
        check_regression_loss(Huber(delta=delta), torch.nn.HuberLoss(reduction="sum", delta=delta),
                              Y[row : row + 1].copy(), Y_hat[row : row + 1].copy())
    np.testing.assert_array_equal(Huber(delta=delta).backward(Y, Y_hat)[:, 0] * len(Y),
                                  np.clip(residuals[:, 0], -delta, delta))


def test_huber_and_mae_hand_computed():
    Y, Y_hat = np.zeros((2, 2)), np.array([[0.5, -3.0], [2.0, 0.0]])
    assert MAE()(Y, Y_hat) == (0.5 + 3.0 + 2.0) / 2
    # δ = 1: ½·0.25 + (3 − ½) + (2 − ½) + 0, over N = 2
    assert Huber()(Y, Y_hat) == (0.125 + 2.5 + 1.5) / 2


# -- configs and the factory ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_initialize_loss_by_every_name(name):
    loss = initialize_loss(name)
    assert type(loss) is LOSSES[name] and loss.name == name
    assert type(initialize_loss(name.upper())) is LOSSES[name]
    assert type(initialize_loss(json.loads(json.dumps(loss.get_config())))) is LOSSES[name]


def test_huber_config_round_trip_keeps_delta():
    huber = Huber(delta=0.3)
    stored = json.loads(json.dumps(loss_config(huber)))
    assert stored == {"type": "huber", "delta": 0.3}
    rebuilt = initialize_loss(stored)
    assert type(rebuilt) is Huber and rebuilt.delta == 0.3
    Y, Y_hat = np.zeros((1, 1)), np.array([[1.0]])
    assert rebuilt(Y, Y_hat) == huber(Y, Y_hat) != Huber()(Y, Y_hat)


@pytest.mark.parametrize("name", ["cross_entropy", "l2", "binary_cross_entropy", "mae"])
def test_loss_without_settings_is_stored_by_name(name):
    assert loss_config(initialize_loss(name)) == name
    assert initialize_loss(name).get_config() == {"type": name}


def test_course_constructor_with_a_name_still_works():
    assert CrossEntropy("cross_entropy").name == "cross_entropy" and L2("l2").name == "l2"


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan"), float("inf"), "1", True, None])
def test_bad_huber_delta(delta):
    with pytest.raises(InvalidParameterError, match="Huber: delta must be"):
        Huber(delta=delta)


def test_bad_loss_configs():
    with pytest.raises(InvalidParameterError, match="'type'"):
        initialize_loss({"delta": 1.0})
    with pytest.raises(InvalidParameterError, match="accepted arguments are \\['delta', 'name'\\]"):
        initialize_loss({"type": "huber", "delt": 1.0})
    with pytest.raises(UnknownNameError, match="'hubr'"):
        initialize_loss({"type": "hubr"})


# -- which output layer each loss accepts (check_output_layer) ---------------------------------------
@pytest.mark.parametrize("n_outputs", [2, 10])
def test_cross_entropy_accepts_a_softmax_over_two_or_more_units(n_outputs):
    CrossEntropy().check_output_layer(SoftMax(), n_outputs)


@pytest.mark.parametrize("activation", [Sigmoid(), ReLU(), Linear(), TanH(), GELU(), None])
def test_cross_entropy_refuses_outputs_that_are_not_a_softmax(activation):
    with pytest.raises(InvalidParameterError) as error:
        CrossEntropy().check_output_layer(activation, 3)
    message = str(error.value)
    assert "'cross_entropy'" in message and "'softmax'" in message
    assert ("no activation (linear)" if activation is None else repr(activation.name)) in message
    assert "binary_cross_entropy" in message  # the way out for a one-output classifier
    assert isinstance(error.value, ValueError)


def test_cross_entropy_refuses_a_one_unit_softmax_and_points_to_binary_cross_entropy():
    with pytest.raises(InvalidParameterError) as error:
        CrossEntropy().check_output_layer(SoftMax(), 1)
    message = str(error.value)
    assert "at least 2" in message and "got 1" in message
    assert "binary_cross_entropy" in message and "sigmoid" in message


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_binary_cross_entropy_accepts_sigmoid_outputs(n_outputs):
    BinaryCrossEntropy().check_output_layer(Sigmoid(), n_outputs)


@pytest.mark.parametrize("activation", [SoftMax(), Linear(), ReLU(), TanH(), None])
def test_binary_cross_entropy_refuses_outputs_that_are_not_a_sigmoid(activation):
    with pytest.raises(InvalidParameterError) as error:
        BinaryCrossEntropy().check_output_layer(activation, 1)
    message = str(error.value)
    assert "'binary_cross_entropy'" in message and "'sigmoid'" in message
    assert ("loss='cross_entropy'" in message) == isinstance(activation, SoftMax)


@pytest.mark.parametrize("loss", [L2(), MAE(), Huber()])
@pytest.mark.parametrize("activation", [Linear(), Sigmoid(), SoftMax(), ReLU(), ELU(), None])
def test_regression_losses_accept_any_output(loss, activation):
    for n_outputs in (1, 4):
        assert loss.check_output_layer(activation, n_outputs) is None
