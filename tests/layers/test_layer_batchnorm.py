"""BatchNorm1D / BatchNorm2D against torch.nn.functional.batch_norm and torch.nn.BatchNorm1d/2d
(through the harness, and over several training steps), the course's 2025 BatchNorm1D
interface, bad input, and central finite differences through a small CNN."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    SETTINGS,
    arrays,
    assert_close,
    assert_matches_finite_differences,
    central_differences,
    check_layer,
    float_dtypes,
    make_values,
    nchw_to_nhwc,
    normalization_atols,
    nhwc_to_nchw,
    to_torch,
)
from neural_networks.activations import initialize_activation
from neural_networks.errors import InvalidParameterError, ShapeError
from neural_networks.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dropout,
    Flatten,
    FullyConnected,
    Pool2D,
    initialize_layer,
    layer_from_config,
)
from neural_networks.layers.base import generator_from_state, generator_state

MOMENTA = (0.9, 0.95, 0.5, 0.0, 1.0)
EPSILONS = (1e-5, 1e-8, 1e-3)


def batch_norm_twin(images: bool, training: bool, momentum: float, eps: float):
    """torch's batch_norm in our layouts; torch's momentum is 1 − ours."""

    def twin(x, p, b):
        x_torch = nhwc_to_nchw(x) if images else x
        y = torch.nn.functional.batch_norm(
            x_torch, b["running_mean"].view(-1), b["running_var"].view(-1),
            p["gamma"].view(-1), p["beta"].view(-1),
            training=training, momentum=1.0 - momentum, eps=eps,
        )
        return nchw_to_nhwc(y) if images else y

    return twin


@st.composite
def batch_norm_cases(draw, images: bool, dtypes=float_dtypes, max_size=5):
    dtype = draw(dtypes)
    training = draw(st.booleans())
    if images:
        shape = tuple(draw(st.integers(1, 3)) for _ in range(4))
        if training and shape[0] * shape[1] * shape[2] < 2:
            shape = (2,) + shape[1:]
    else:
        shape = (draw(st.integers(2 if training else 1, max_size)), draw(st.integers(1, max_size)))
    channels = shape[-1]
    X = draw(arrays(shape, dtype))
    dY = draw(arrays(shape, dtype, kinds=("normal", "dyadic")))
    gamma = draw(arrays((1, channels), dtype))
    beta = draw(arrays((1, channels), dtype))
    running_mean = draw(arrays((1, channels), dtype))
    running_var = (np.abs(draw(arrays((1, channels), dtype))) + 0.5).astype(dtype)
    return dict(dtype=dtype, training=training, momentum=draw(st.sampled_from(MOMENTA)),
                eps=draw(st.sampled_from(EPSILONS)), X=X, dY=dY, gamma=gamma, beta=beta,
                running_mean=running_mean, running_var=running_var)


def batch_norm_atols(X, dY, gamma, eps, training):
    """Tolerances for the cancellations of batch normalisation (see
    ``harness.normalization_atols``): statistics over every axis but the last in
    training mode; in evaluation mode X̂ = (X − running_mean)/σ is one as well."""
    if training:
        return normalization_atols(X, dY, gamma, eps, axes=tuple(range(X.ndim - 1)))
    return {}


def run_case(case, images: bool, finite_differences=False):
    cls = BatchNorm2D if images else BatchNorm1D
    layer = cls(momentum=case["momentum"], eps=case["eps"])
    twin = batch_norm_twin(images, case["training"], case["momentum"], case["eps"])
    atols = batch_norm_atols(case["X"], case["dY"], case["gamma"], case["eps"], case["training"])
    return check_layer(
        layer, twin, case["X"], case["dY"],
        params={"gamma": case["gamma"], "beta": case["beta"]},
        buffers={"running_mean": case["running_mean"], "running_var": case["running_var"]},
        training=case["training"], expected_shape=case["X"].shape, finite_differences=finite_differences,
        atols=atols,
    )


@SETTINGS
@given(batch_norm_cases(images=False))
def test_batchnorm1d_matches_torch(case):
    run_case(case, images=False)


@SETTINGS
@given(batch_norm_cases(images=True))
def test_batchnorm2d_matches_torch(case):
    run_case(case, images=True)


# The normalisation divides by √(σ² + eps); with eps = 1e-8 and a constant feature a step
# h = 1e-6 changes σ² by about h², so central differences need eps >> h² there.
@SETTINGS
@given(st.data(), st.booleans())
def test_batchnorm_finite_differences(data, images):
    case = data.draw(batch_norm_cases(images=images, dtypes=st.just(np.float64), max_size=4))
    case["eps"] = 1e-3 if case["eps"] < 1e-3 else case["eps"]
    run_case(case, images=images, finite_differences=True)


# -- several training steps, then evaluation, against the torch modules ------------------------
@st.composite
def training_runs(draw, images: bool):
    dtype = draw(float_dtypes)
    channels = draw(st.integers(1, 4))
    n_steps = draw(st.integers(2, 4))
    if images:
        batches = [draw(arrays((draw(st.integers(1, 3)), draw(st.integers(2, 3)), draw(st.integers(1, 3)), channels), dtype))
                   for _ in range(n_steps + 1)]
    else:
        batches = [draw(arrays((draw(st.integers(2, 6)), channels), dtype)) for _ in range(n_steps + 1)]
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, channels, batches, draw(st.sampled_from(MOMENTA[:3])), draw(st.sampled_from(EPSILONS)), seed


def torch_module(images, channels, momentum, eps, gamma, beta):
    cls = torch.nn.BatchNorm2d if images else torch.nn.BatchNorm1d
    module = cls(channels, momentum=1.0 - momentum, eps=eps).double()
    with torch.no_grad():
        module.weight.copy_(to_torch(gamma).view(-1))
        module.bias.copy_(to_torch(beta).view(-1))
    return module


def step_both(layer, module, X, dY, images, dtype, what):
    """One forward + backward of ours and of the torch module; compare everything."""
    Y = layer.forward(X)
    dX = layer.backward(dY)
    x = to_torch(X, requires_grad=True)
    y = module(nhwc_to_nchw(x)) if images else module(x)
    y = nchw_to_nhwc(y) if images else y
    module.zero_grad()
    (y * to_torch(dY)).sum().backward()
    assert Y.dtype == dtype and dX.dtype == dtype
    atols = batch_norm_atols(X, dY, layer.parameters["gamma"], layer.eps, layer.training)
    assert_close(Y, y.detach().numpy(), dtype, f"{what}: forward", atol=atols.get("forward"))
    assert_close(dX, x.grad.numpy(), dtype, f"{what}: dX", atol=atols.get("dX"))
    assert_close(layer.gradients["gamma"], module.weight.grad.numpy().reshape(1, -1), dtype, f"{what}: dgamma",
                 atol=atols.get("gamma"))
    assert_close(layer.gradients["beta"], module.bias.grad.numpy().reshape(1, -1), dtype, f"{what}: dbeta")
    for ours, theirs in (("running_mean", module.running_mean), ("running_var", module.running_var)):
        assert layer.buffers[ours].dtype == dtype, f"{what}: {ours} dtype {layer.buffers[ours].dtype}"
        assert_close(layer.buffers[ours], theirs.numpy().reshape(1, -1), dtype, f"{what}: {ours}")


@SETTINGS
@given(training_runs(images=False) | training_runs(images=True))
def test_several_training_steps_then_evaluation_match_torch_modules(run):
    dtype, channels, batches, momentum, eps, seed = run
    images = batches[0].ndim == 4
    gamma = make_values(seed, (1, channels), "normal", dtype)
    beta = make_values(seed + 1, (1, channels), "normal", dtype)
    layer = (BatchNorm2D if images else BatchNorm1D)(momentum=momentum, eps=eps)
    layer.forward(batches[0])  # build, then the same gamma and beta as torch
    layer.parameters["gamma"], layer.parameters["beta"] = gamma.copy(), beta.copy()
    layer.buffers["running_mean"][...] = 0.0
    layer.buffers["running_var"][...] = 1.0
    module = torch_module(images, channels, momentum, eps, gamma, beta)

    for step, X in enumerate(batches[:-1]):
        dY = make_values(seed + 2 + step, X.shape, "dyadic", dtype)
        step_both(layer, module, X, dY, images, dtype, f"training step {step}")

    layer.training = False
    module.eval()
    running = {key: value.copy() for key, value in layer.buffers.items()}
    X = batches[-1]
    step_both(layer, module, X, make_values(seed, X.shape, "dyadic", dtype), images, dtype, "evaluation")
    for key, value in running.items():
        np.testing.assert_array_equal(layer.buffers[key], value, err_msg=f"evaluation changed {key}")


def test_evaluation_mode_is_the_affine_map_of_the_running_statistics():
    X = make_values(0, (4, 3), "normal", np.float64)
    layer = BatchNorm1D(eps=1e-5)
    layer.forward(X)
    layer.buffers["running_mean"] = np.array([[1.0, -2.0, 0.5]])
    layer.buffers["running_var"] = np.array([[4.0, 0.25, 1.0]])
    layer.parameters["gamma"] = np.array([[2.0, 1.0, -1.0]])
    layer.parameters["beta"] = np.array([[0.0, 3.0, 1.0]])
    layer.training = False
    scale = layer.parameters["gamma"] / np.sqrt(layer.buffers["running_var"] + 1e-5)
    expected = (X - layer.buffers["running_mean"]) * scale + layer.parameters["beta"]
    assert_close(layer.forward(X), expected, np.float64, "evaluation forward")
    dY = make_values(1, (4, 3), "normal", np.float64)
    assert_close(layer.backward(dY), dY * scale, np.float64, "evaluation dX")


# -- dtype ------------------------------------------------------------------------------------------
def test_float32_stays_float32_and_float64_buffers_stay_float64():
    X32 = make_values(0, (5, 3), "dyadic", np.float32)
    layer = BatchNorm1D()
    assert layer.forward(X32).dtype == np.float32
    assert all(value.dtype == np.float32 for value in layer.buffers.values())
    wide = BatchNorm1D()
    wide.forward(np.zeros((2, 3)))  # built in float64
    assert wide.forward(X32).dtype == np.float32
    assert wide.backward(np.ones((5, 3), np.float32)).dtype == np.float32
    assert all(value.dtype == np.float64 for value in wide.buffers.values())


# -- the course's 2025 BatchNorm1D interface ------------------------------------------------------
def test_course_forward_running_statistics_and_test_mode_match_torch():
    # What the course's unit test does: build with _init_parameters, set gamma and beta,
    # ten forwards in "train" mode reading cache["running_mu"/"running_var"], then "test".
    rng = np.random.default_rng(12)
    n, d = 7, 5
    gamma, beta = rng.standard_normal((1, d)), rng.standard_normal((1, d))
    layer = BatchNorm1D(momentum=0.95, eps=1e-8, n_in=None)
    layer._init_parameters((n, d))
    assert layer.parameters["gamma"].shape == (1, d) and layer.parameters["beta"].shape == (1, d)
    layer.parameters["gamma"], layer.parameters["beta"] = gamma, beta
    module = torch_module(False, d, 0.95, 1e-8, gamma, beta)
    layer.training = False  # mode= overrides the layer's own mode for the call
    for i in range(10):
        X = rng.standard_normal((n, d)) * (i + 1) + i
        Y = layer.forward(X, mode="train")
        y = module(to_torch(X)).detach().numpy()
        assert_close(Y, y, np.float64, f"train forward {i}")
        assert_close(layer.cache["running_mu"], module.running_mean.numpy().reshape(1, -1), np.float64, f"running_mu {i}")
        assert_close(layer.cache["running_var"], module.running_var.numpy().reshape(1, -1), np.float64, f"running_var {i}")
    assert layer.training is False
    layer.training = True
    module.eval()
    X = rng.standard_normal((n, d))
    before = {key: value.copy() for key, value in layer.buffers.items()}
    assert_close(layer.forward(X, mode="test"), module(to_torch(X)).detach().numpy(), np.float64, "test forward")
    assert layer.training is True
    for key, value in before.items():
        np.testing.assert_array_equal(layer.buffers[key], value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_course_backward_from_a_cache_set_by_hand(dtype):
    # The course's backward test: a freshly initialised layer, the four cache entries set
    # by the test, then backward; compared with torch autograd and central differences.
    rng = np.random.default_rng(5)
    n, d, eps = 6, 4, 1e-8
    X = (rng.standard_normal((n, d)) * 3 + 1).astype(dtype)
    gamma, beta = rng.standard_normal((1, d)).astype(dtype), rng.standard_normal((1, d)).astype(dtype)
    dY = rng.standard_normal((n, d)).astype(dtype)
    mu, var = X.mean(axis=0, keepdims=True), X.var(axis=0, keepdims=True)
    X_hat = (X - mu) / np.sqrt(var + eps)

    layer = initialize_layer("batchnorm1d", eps=eps, momentum=0.95)
    assert isinstance(layer, BatchNorm1D) and (layer.eps, layer.momentum) == (eps, 0.95)
    layer._init_parameters((-1, d))
    layer.parameters["gamma"], layer.parameters["beta"] = gamma, beta
    layer.cache["X"], layer.cache["X_hat"], layer.cache["mu"], layer.cache["var"] = X, X_hat, mu, var
    dX = layer.backward(dY)

    x, g, b = to_torch(X, True), to_torch(gamma, True), to_torch(beta, True)
    y = torch.nn.functional.batch_norm(x, None, None, g.view(-1), b.view(-1), training=True, eps=eps)
    (y * to_torch(dY)).sum().backward()
    assert_close(dX, x.grad.numpy(), dtype, "course backward dX")
    assert_close(layer.gradients["gamma"], g.grad.numpy(), dtype, "course backward dgamma")
    assert_close(layer.gradients["beta"], b.grad.numpy(), dtype, "course backward dbeta")
    if dtype == np.float64:
        def loss(x_value):
            x_mu, x_var = x_value.mean(axis=0), x_value.var(axis=0)
            return float(np.sum((gamma * (x_value - x_mu) / np.sqrt(x_var + eps) + beta) * dY))

        assert_matches_finite_differences(dX, central_differences(loss, X), "course backward dX")


def test_forward_mode_must_be_train_or_test():
    layer = BatchNorm1D()
    with pytest.raises(InvalidParameterError) as error:
        layer.forward(np.zeros((2, 3)), mode="eval")
    assert "mode" in str(error.value) and "'eval'" in str(error.value) and "BatchNorm1D" in str(error.value)


# -- a batch of one ------------------------------------------------------------------------------------
def test_torch_refuses_a_training_batch_of_one_and_so_do_we():
    with pytest.raises(ValueError):
        torch.nn.BatchNorm1d(3)(torch.zeros(1, 3))
    layer = BatchNorm1D()
    layer.forward(make_values(0, (4, 3), "normal", np.float64))
    before = {key: value.copy() for key, value in layer.buffers.items()}
    with pytest.raises(ShapeError) as error:
        layer.forward(np.ones((1, 3)))
    message = str(error.value)
    assert "BatchNorm1D" in message and "(1, 3)" in message and "training" in message
    for key, value in before.items():
        np.testing.assert_array_equal(layer.buffers[key], value, err_msg=f"refused batch changed {key}")
    with pytest.raises(ShapeError, match="BatchNorm2D"):
        BatchNorm2D().forward(np.ones((1, 1, 1, 2)))


@pytest.mark.parametrize("cls, shape", [(BatchNorm1D, (1, 3)), (BatchNorm2D, (1, 1, 1, 3))])
def test_a_batch_of_one_in_evaluation_mode_matches_torch(cls, shape):
    X = make_values(2, shape, "normal", np.float64)
    dY = make_values(3, shape, "normal", np.float64)
    channels = shape[-1]
    buffers = {"running_mean": make_values(4, (1, channels), "normal", np.float64),
               "running_var": np.abs(make_values(5, (1, channels), "normal", np.float64)) + 0.5}
    params = {"gamma": make_values(6, (1, channels), "normal", np.float64),
              "beta": make_values(7, (1, channels), "normal", np.float64)}
    layer = cls()
    layer.training = False
    check_layer(layer, batch_norm_twin(cls is BatchNorm2D, False, 0.9, 1e-5), X, dY,
                params=params, buffers=buffers, finite_differences=True)


def test_a_single_image_with_several_pixels_trains_as_in_torch():
    X = make_values(8, (1, 2, 3, 2), "normal", np.float64)
    dY = make_values(9, X.shape, "normal", np.float64)
    ones, zeros = np.ones((1, 2)), np.zeros((1, 2))
    check_layer(BatchNorm2D(), batch_norm_twin(True, True, 0.9, 1e-5), X, dY,
                params={"gamma": ones * 1.5, "beta": zeros + 0.25},
                buffers={"running_mean": zeros, "running_var": ones}, training=True)


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [BatchNorm1D, BatchNorm2D])
@pytest.mark.parametrize("argument, value", [("momentum", 1.5), ("momentum", -0.1), ("momentum", "0.9"),
                                             ("eps", 0.0), ("eps", -1e-5), ("eps", float("nan"))])
def test_bad_settings_name_the_argument(cls, argument, value):
    with pytest.raises(InvalidParameterError) as error:
        cls(**{argument: value})
    assert cls.__name__ in str(error.value) and argument in str(error.value) and repr(value) in str(error.value)


@pytest.mark.parametrize("n_in", [0, 2.5, True])
def test_bad_n_in(n_in):
    with pytest.raises(InvalidParameterError, match="n_in"):
        BatchNorm1D(n_in=n_in)


def test_n_in_is_checked_against_the_first_input():
    with pytest.raises(ShapeError) as error:
        BatchNorm1D(n_in=4).forward(np.zeros((2, 3)))
    assert "n_in=4" in str(error.value) and "3" in str(error.value)
    layer = BatchNorm1D(n_in=3)
    layer.forward(np.zeros((2, 3)))
    assert layer.n_in == 3


@pytest.mark.parametrize("cls, shape, rank", [(BatchNorm1D, (2, 3, 4), 2), (BatchNorm1D, (3,), 2),
                                              (BatchNorm2D, (2, 3), 4), (BatchNorm2D, (2, 3, 4), 4)])
def test_wrong_rank(cls, shape, rank):
    with pytest.raises(ShapeError) as error:
        cls().forward(np.zeros(shape))
    assert cls.__name__ in str(error.value) and str(shape) in str(error.value) and f"rank-{rank}" in str(error.value)


@pytest.mark.parametrize("cls, built, other", [(BatchNorm1D, (2, 3), (2, 4)), (BatchNorm2D, (2, 2, 2, 3), (2, 2, 2, 4))])
def test_feature_mismatch_after_build_and_upstream_shape(cls, built, other):
    layer = cls()
    layer.forward(np.ones(built))
    with pytest.raises(ShapeError) as error:
        layer.forward(np.ones(other))
    assert cls.__name__ in str(error.value) and str(other) in str(error.value)
    layer.forward(np.ones(built))
    with pytest.raises(ShapeError) as error:
        layer.backward(np.ones(other))
    assert str(other) in str(error.value) and str(built) in str(error.value)


# -- registry, config and state ------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [BatchNorm1D(), BatchNorm1D(0.95, 1e-8, n_in=5), BatchNorm2D(momentum=0.5, eps=1e-3)])
def test_config_round_trips_through_the_registry(layer):
    config = layer.get_config()
    rebuilt = layer_from_config(config)
    assert type(rebuilt) is type(layer) and rebuilt.get_config() == config
    assert config["type"] in ("batchnorm1d", "batchnorm2d")


def test_initialize_layer_names_and_defaults():
    assert initialize_layer("batchnorm1d").get_config() == BatchNorm1D().get_config()
    assert initialize_layer("batchnorm2d", momentum=0.8).momentum == 0.8
    with pytest.raises(TypeError, match="p"):
        initialize_layer("batchnorm2d", p=0.5)
    with pytest.raises(TypeError, match="eps"):
        initialize_layer("fully_connected", n_out=3, eps=1e-5)


def test_state_dict_carries_the_running_statistics():
    rng = np.random.default_rng(0)
    layer = BatchNorm2D()
    for _ in range(3):
        layer.forward(rng.standard_normal((2, 3, 3, 4)) * 2 + 1)
        layer.parameters["gamma"] = layer.parameters["gamma"] * 1.5
    state = layer.state_dict()
    assert sorted(state["buffers"]) == ["running_mean", "running_var"]
    copy = BatchNorm2D()
    copy.build((3, 3, 4))
    copy.load_state_dict(state)
    X = rng.standard_normal((2, 3, 3, 4))
    layer.training = copy.training = False
    np.testing.assert_array_equal(copy.forward(X), layer.forward(X))


# -- central finite differences through conv → BatchNorm2D → relu → pool → flatten → dropout → FC ---------
def small_network(seed):
    rng = np.random.default_rng(seed)
    conv, bn, pool = Conv2D(3, (3, 3), pad="same"), BatchNorm2D(), Pool2D(2, stride=2)
    flatten, dropout, fc = Flatten(), Dropout(0.5), FullyConnected(4)
    X = rng.standard_normal((3, 5, 5, 2))
    for layer in (conv, bn, pool, flatten, dropout, fc):
        layer.rng = np.random.default_rng(rng.integers(2**32))
    conv.forward(X)
    bn.parameters["gamma"] = rng.standard_normal((1, 3))
    bn.parameters["beta"] = rng.standard_normal((1, 3))
    conv.parameters["b"] = rng.standard_normal((1, 3))
    return X, [conv, bn, pool, flatten, dropout, fc]


def network_forward(layers, relu, X, dropout_state):
    conv, bn, pool, flatten, dropout, fc = layers
    Z = bn.forward(conv.forward(X))
    out = flatten.forward(pool.forward(relu.forward(Z)))
    if dropout_state is not None:  # the same mask on every call
        dropout.rng = generator_from_state(dropout_state)
    return fc.forward(dropout.forward(out)), Z


def network_backward(layers, relu, Z, dY):
    conv, bn, pool, flatten, dropout, fc = layers
    gradient = dropout.backward(fc.backward(dY))
    gradient = relu.backward(Z, pool.backward(flatten.backward(gradient)))
    return conv.backward(bn.backward(gradient))


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_network_gradients_match_central_differences(p):
    X, layers = small_network(seed=21)
    dropout = layers[4]
    dropout.p = p
    relu = initialize_activation("relu")
    dropout_state = generator_state(dropout.rng)
    Y, Z = network_forward(layers, relu, X, dropout_state)
    assert np.min(np.abs(Z)) > 1e-3  # no pre-activation at the ReLU kink for this seed
    if p > 0:
        mask = dropout.cache["scaled_mask"]
        assert 0 < np.count_nonzero(mask) < mask.size  # a real mask: some kept, some dropped
    R = np.random.default_rng(22).standard_normal(Y.shape)
    dX = network_backward(layers, relu, Z, R)

    def loss(x):
        return float(np.sum(network_forward(layers, relu, x, dropout_state)[0] * R))

    assert_matches_finite_differences(dX, central_differences(loss, X), "network dX")
    for layer in layers:
        for key in list(layer.parameters):
            analytic, value = layer.gradients[key].copy(), layer.parameters[key].copy()

            def loss_of_param(v, layer=layer, key=key):
                layer.parameters[key] = v
                return loss(X)

            numerical = central_differences(loss_of_param, value)
            layer.parameters[key] = value
            assert_matches_finite_differences(analytic, numerical, f"network {layer.name} d{key}")
