"""The one generic layer-test harness, and the helpers every core test shares.

``check_layer(layer, twin, X, dY, params=...)`` runs a layer forward and backward
and checks, against PyTorch autograd and (optionally) float64 central finite
differences:

* output shape and dtype (float32 in → float32 out, float64 in → float64 out);
* forward output, dL/dX and every parameter gradient against the torch twin, to
  ``|ours − torch| ≤ rtol·max|torch| + atol`` (rtol 1e-10 in float64, 1e-4 in float32);
* the parameter shapes the layer built lazily, and that parameters replaced by the
  caller after the build are the ones used;
* that neither the input, the upstream gradient nor the parameters are modified;
* that ``backward`` overwrites (does not accumulate) ``gradients``;
* with ``finite_differences=True`` (float64 only): dX, dW, db against central
  differences of L = Σ forward(X)·dY.

Layers with state or randomness take three more keywords:

* ``training=True | False`` sets ``layer.training`` first (the layer's own mode otherwise);
* ``buffers={name: array}`` (e.g. BatchNorm's running statistics): the built buffers
  must have these names, shapes and dtype, they are replaced by copies of these values,
  the twin is called as ``twin(x, params, buffers)`` with float64 torch copies it may
  update in place (as ``torch.nn.functional.batch_norm`` does in training mode), and
  the layer's buffers after its forward must match the twin's; in evaluation mode the
  forward must leave them unchanged. Without ``buffers`` the layer must have none;
* ``replay_rng=True`` (e.g. dropout): every forward the harness runs starts from the
  generator state the layer had when ``check_layer`` was called, so each draws the
  same random numbers, which the twin reproduces from that state.

The torch twin is a function ``twin(x, params) -> y`` taking torch float64 tensors
in *our* layouts (NHWC images, conv W (kh, kw, C_in, C_out), FC W (n_in, n_out),
b (1, n_out)) and returning the output in our layout; it converts to torch's
layouts with the helpers below, so autograd hands back gradients in our layouts.
The torch reference is always computed in float64 from the very same (possibly
float32) values the layer sees, so it measures our error against the exact result.
"""

from __future__ import annotations

import contextlib
import copy
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from neural_networks.layers.base import generator_from_state, generator_state

torch.set_num_threads(1)

#: hypothesis settings shared by the suite (the whole suite must run in about a minute);
#: NN_TEST_MAX_EXAMPLES=1000 runs a deeper search
SETTINGS = settings(
    max_examples=int(os.environ.get("NN_TEST_MAX_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FLOAT_DTYPES = (np.float32, np.float64)

#: (rtol, atol) for comparisons with torch, by dtype
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-12), np.dtype(np.float32): (1e-4, 1e-6)}

ACTIVATION_NAMES = ("linear", "sigmoid", "tanh", "relu", "softmax", "arctan",
                    "leaky_relu", "elu", "gelu", "silu", "softplus")
#: differentiable everywhere, so central differences apply (ELU with α = 1 is C¹)
SMOOTH_ACTIVATIONS = ("linear", "sigmoid", "tanh", "softmax", "arctan", "elu", "gelu", "silu", "softplus")

TORCH_ACTIVATIONS = {
    "linear": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "arctan": torch.atan,
    "leaky_relu": torch.nn.functional.leaky_relu,
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "silu": torch.nn.functional.silu,
    "softplus": torch.nn.functional.softplus,
}


# -- layouts -----------------------------------------------------------------------------
def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()


def nchw_to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def conv_weight_to_torch(W: torch.Tensor) -> torch.Tensor:
    """Our (kh, kw, C_in, C_out) kernel as torch's (C_out, C_in, kh, kw)."""
    return W.permute(3, 2, 0, 1).contiguous()


def fc_weight_to_torch(W: torch.Tensor) -> torch.Tensor:
    """Our (n_in, n_out) matrix as ``torch.nn.functional.linear``'s (n_out, n_in)."""
    return W.T


def to_torch(array, requires_grad: bool = False) -> torch.Tensor:
    """A float64 torch copy of a NumPy array."""
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


# -- values -----------------------------------------------------------------------------------
#: kinds of values: "normal" (continuous), "dyadic" (multiples of 1/32 in [-3, 3]: exact
#: in float32, so float32 pre-activations are exact and ReLU masks cannot flip),
#: "small_ints" (-2..2: exact zeros and many ties), "relu_ints" (max(0, -2..2): all-zero
#: windows, as after a ReLU)
VALUE_KINDS = ("normal", "dyadic", "small_ints", "relu_ints")


def make_values(seed: int, shape, kind: str, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        values = rng.standard_normal(shape)
    elif kind == "dyadic":
        values = rng.integers(-96, 97, size=shape) / 32.0
    elif kind == "small_ints":
        values = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif kind == "relu_ints":
        values = np.maximum(rng.integers(-2, 3, size=shape), 0).astype(np.float64)
    else:
        raise ValueError(kind)
    return values.astype(dtype)


def value_kinds_for(dtype, kinds=("normal", "dyadic", "small_ints")):
    """Value kinds safe to compare with a float64 reference in ``dtype``.

    Continuous float32 values could put a pre-activation within round-off of a ReLU
    kink (or of a max-pool tie), where float32 and float64 legitimately disagree;
    dyadic and small integer values are exact in float32.
    """
    if np.dtype(dtype) == np.float32:
        return tuple(kind for kind in kinds if kind != "normal")
    return tuple(kinds)


@st.composite
def arrays(draw, shape, dtype, kinds=("normal", "dyadic", "small_ints")):
    """A NumPy array of ``shape``/``dtype`` with values of a drawn kind."""
    kind = draw(st.sampled_from(value_kinds_for(dtype, kinds)))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_values(seed, shape, kind, dtype)


float_dtypes = st.sampled_from(FLOAT_DTYPES)
strides = st.one_of(st.sampled_from([1, 2, 3]), st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 3])))


# -- comparisons ------------------------------------------------------------------------------
def assert_close(ours, reference, dtype, what: str, rtol=None, atol=None) -> None:
    """|ours − reference| ≤ rtol·max|reference| + atol, element-wise."""
    default_rtol, default_atol = TOLERANCES[np.dtype(dtype)]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != reference {reference.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: non-finite values {ours}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    error = float(np.max(np.abs(ours - reference))) if reference.size else 0.0
    bound = rtol * scale + atol
    assert error <= bound, (
        f"{what}: max |ours − reference| = {error:.3e} > {bound:.3e} "
        f"(rtol {rtol:g} · max|reference| {scale:.3e} + atol {atol:g})"
    )


def normalization_atols(X, dY, gamma, eps: float, axes) -> dict:
    """``check_layer`` atols for a normalisation over ``axes`` (BatchNorm, LayerNorm).

    X̂ = (X − μ)/σ, γ·X̂ and dX = γ/σ·(dY − mean(dY) − X̂·mean(dY·X̂)) are cancellations:
    their exact values can be far smaller than their terms (a constant feature with a
    tiny eps; or dY in the span of 1 and X̂, as always with 2 values per feature, where
    dX is an eps/σ² fraction of its terms). Any evaluation, torch's float64 reference
    included, is then off by a unit of round-off of the terms (torch's own float32
    batch_norm misses max|dX| by as much), so the error is measured against the terms'
    size, rtol·max|terms| + atol (the dtype's tolerances), as a norm-wise backward error
    would be: |X|/σ for X̂, |γ|·|X|/σ forward, Σ|dY|·|X|/σ for dγ, |γ·dY|/σ·(1 + |X|/σ)
    for dX. Where σ is not small against |X| these are the usual tolerances.
    """
    rtol, atol = TOLERANCES[np.dtype(X.dtype)]
    X64, dY64, gamma64 = (np.asarray(a, dtype=np.float64) for a in (X, dY, gamma))
    gamma64 = gamma64.reshape(-1)
    sigma = np.sqrt(X64.var(axis=axes, keepdims=True) + eps)
    x_terms = np.abs(X64) / sigma
    sum_axes = tuple(range(X64.ndim - 1))
    return {
        "forward": rtol * float(np.max(np.abs(gamma64) * x_terms)) + atol,
        "gamma": rtol * float(np.max(np.sum(np.abs(dY64) * x_terms, axis=sum_axes))) + atol,
        "dX": rtol * float(np.max(np.abs(gamma64 * dY64) / sigma * (1 + x_terms))) + atol,
    }


def assert_unchanged(before, after, what: str) -> None:
    assert np.asarray(after).dtype == np.asarray(before).dtype, f"{what}: dtype changed"
    assert np.array_equal(before, after, equal_nan=True), f"{what} was modified in place"


def central_differences(loss, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """dloss/dx by central differences; ``loss`` gets a fresh perturbed copy each time."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        grad[index] = (loss(plus) - loss(minus)) / (2 * h)
    return grad


def finite_difference_noise(loss_terms, h: float = 1e-6) -> float:
    """Bound on the round-off of ``central_differences`` for a loss that sums
    ``loss_terms``: each loss is off by about eps·Σ|terms|, divided by the step 2h."""
    return 4 * float(np.finfo(np.float64).eps) * float(np.sum(np.abs(loss_terms))) / (2 * h)


def assert_matches_finite_differences(analytic, numerical, what: str, rtol: float = 1e-6,
                                      atol: float = 1e-8) -> None:
    analytic = np.asarray(analytic, dtype=np.float64)
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numerical), initial=0.0)))
    error = float(np.max(np.abs(analytic - numerical), initial=0.0))
    assert error <= rtol * scale + atol, (
        f"{what}: analytic vs central differences differ by {error:.3e} (scale {scale:.3e})"
    )


# -- the harness ----------------------------------------------------------------------------------
def check_layer(
    layer,
    twin,
    X: np.ndarray,
    dY: np.ndarray,
    params: dict | None = None,
    expected_shape: tuple | None = None,
    finite_differences: bool = False,
    *,
    buffers: dict | None = None,
    training: bool | None = None,
    replay_rng: bool = False,
    atols: dict | None = None,
):
    """Check ``layer`` against its torch ``twin`` on input X with upstream gradient dY.

    ``params`` maps parameter names to arrays (our layouts); the layer is built by a
    first forward, the built shapes are checked against them, then they replace the
    built parameters (``buffers`` likewise, see the module docstring, as do ``training``
    and ``replay_rng``). ``atols`` raises the absolute tolerance of single comparisons
    ("forward", "dX", a parameter or buffer name) where the exact result is a
    cancellation far smaller than its terms (say why where it is used). Returns
    (Y, dX, gradients).
    """
    atols = {} if atols is None else atols
    dtype = X.dtype
    params = {} if params is None else params
    if training is not None:
        layer.training = training
    rng_state = generator_state(layer._rng()) if replay_rng else None

    def forward(x, retain_derived=True):
        if replay_rng:
            layer.rng = generator_from_state(rng_state)
        return layer.forward(x, retain_derived=retain_derived)

    # Lazy build, then the caller's parameters (and buffers) replace the built ones.
    forward(X.copy())
    assert list(layer.parameters) == list(params), (
        f"{layer.name}: parameters {list(layer.parameters)}, expected {list(params)}"
    )
    for key, value in params.items():
        built = layer.parameters[key]
        assert built.shape == value.shape, f"{layer.name}: built {key} has shape {built.shape}, expected {value.shape}"
        assert built.dtype == dtype, f"{layer.name}: built {key} has dtype {built.dtype}, input {dtype}"
        layer.parameters[key] = value.copy()
    expected_buffers = {} if buffers is None else buffers
    assert list(layer.buffers) == list(expected_buffers), (
        f"{layer.name}: buffers {list(layer.buffers)}, expected {list(expected_buffers)}"
    )
    for key, value in expected_buffers.items():
        built = layer.buffers[key]
        assert built.shape == value.shape, f"{layer.name}: built buffer {key} has shape {built.shape}, expected {value.shape}"
        assert built.dtype == dtype, f"{layer.name}: built buffer {key} has dtype {built.dtype}, input {dtype}"
        layer.buffers[key] = value.copy()

    X_before, dY_before = X.copy(), dY.copy()
    params_before = {key: value.copy() for key, value in params.items()}

    Y = forward(X)
    buffers_after = {key: np.array(value) for key, value in layer.buffers.items()}
    if not layer.training:
        for key, value in expected_buffers.items():
            assert_unchanged(value, buffers_after[key], f"{layer.name}: buffer {key} in evaluation mode")
    if expected_shape is not None:
        assert Y.shape == tuple(expected_shape), f"{layer.name}: output shape {Y.shape}, expected {expected_shape}"
    assert Y.dtype == dtype, f"{layer.name}: output dtype {Y.dtype} for a {dtype} input"
    assert Y.shape == dY.shape, f"test bug: dY shape {dY.shape} != output shape {Y.shape}"

    dX = layer.backward(dY)
    assert dX.shape == X.shape, f"{layer.name}: dX shape {dX.shape}, input shape {X.shape}"
    assert dX.dtype == dtype, f"{layer.name}: dX dtype {dX.dtype} for a {dtype} input"
    gradients = {key: np.array(value) for key, value in layer.gradients.items()}
    assert list(gradients) == list(params), f"{layer.name}: gradient keys {list(gradients)}"
    for key, value in params.items():
        assert gradients[key].shape == value.shape, f"{layer.name}: d{key} shape {gradients[key].shape}"
        assert gradients[key].dtype == dtype, f"{layer.name}: d{key} dtype {gradients[key].dtype}"

    # Nothing the layer was given has changed.
    assert_unchanged(X_before, X, f"{layer.name}: the input X")
    assert_unchanged(dY_before, dY, f"{layer.name}: the upstream gradient dY")
    for key in params:
        assert_unchanged(params_before[key], layer.parameters[key], f"{layer.name}: parameter {key}")

    # The torch twin, in float64, on the same values.
    x_t = to_torch(X, requires_grad=True)
    p_t = {key: to_torch(value, requires_grad=True) for key, value in params.items()}
    if buffers is None:
        y_t = twin(x_t, p_t)
    else:
        b_t = {key: to_torch(value) for key, value in buffers.items()}
        y_t = twin(x_t, p_t, b_t)
    assert tuple(y_t.shape) == Y.shape, f"{layer.name}: output shape {Y.shape}, torch {tuple(y_t.shape)}"
    (y_t * to_torch(dY)).sum().backward()

    assert_close(Y, y_t.detach().numpy(), dtype, f"{layer.name} forward", atol=atols.get("forward"))
    assert_close(dX, x_t.grad.numpy(), dtype, f"{layer.name} dL/dX", atol=atols.get("dX"))
    for key in params:
        assert_close(gradients[key], p_t[key].grad.numpy(), dtype, f"{layer.name} dL/d{key}", atol=atols.get(key))
    for key in expected_buffers:
        assert_close(buffers_after[key], b_t[key].numpy(), dtype, f"{layer.name} buffer {key} after forward",
                     atol=atols.get(key))

    # backward overwrites the gradients: a second call gives the same, not twice as much.
    dX_again = layer.backward(dY)
    np.testing.assert_array_equal(dX_again, dX, err_msg=f"{layer.name}: second backward dX differs")
    for key in params:
        np.testing.assert_array_equal(
            layer.gradients[key], gradients[key], err_msg=f"{layer.name}: gradients[{key!r}] accumulated"
        )

    # Read-only, non-contiguous (Fortran-ordered) input, upstream gradient and
    # parameters: any in-place write raises, and the layout changes nothing.
    def frozen(array):
        array = np.asfortranarray(array) if array.ndim > 1 else array.copy()
        array.flags.writeable = False
        return array

    saved = {key: layer.parameters[key] for key in params}
    for key in params:
        layer.parameters[key] = frozen(params[key])
    Y_frozen = forward(frozen(X))
    dX_frozen = layer.backward(frozen(dY))
    assert_close(Y_frozen, Y, dtype, f"{layer.name} forward on a read-only Fortran-ordered input",
                 atol=atols.get("forward"))
    assert_close(dX_frozen, dX, dtype, f"{layer.name} dX for a read-only Fortran-ordered upstream gradient",
                 atol=atols.get("dX"))
    for key in params:
        assert_close(layer.gradients[key], gradients[key], dtype, f"{layer.name} d{key} with read-only parameters",
                     atol=atols.get(key))
        layer.parameters[key] = saved[key]

    if finite_differences:
        assert dtype == np.float64, "finite differences are checked in float64 only"
        _check_finite_differences(layer, forward, X, dY, params, dX, gradients)
    return Y, dX, gradients


def _check_finite_differences(layer, forward, X, dY, params, dX, gradients) -> None:
    def loss_of_input(x):
        return float(np.sum(forward(x, retain_derived=False) * dY))

    # a loss of large terms rounds to more than the default 1e-8 / 2h allows
    atol = max(1e-8, finite_difference_noise(forward(X, retain_derived=False) * dY))
    assert_matches_finite_differences(dX, central_differences(loss_of_input, X), f"{layer.name} dX", atol=atol)
    for key, value in params.items():

        def loss_of_param(p, key=key):
            layer.parameters[key] = p  # parameters are read afresh by every forward
            return float(np.sum(forward(X, retain_derived=False) * dY))

        numerical = central_differences(loss_of_param, value)
        layer.parameters[key] = value.copy()
        assert_matches_finite_differences(gradients[key], numerical, f"{layer.name} d{key}", atol=atol)


def snapshot(obj):
    """A deep copy of a dict/list of arrays (for 'nothing was touched' checks)."""
    return copy.deepcopy(obj)


def assert_same_tree(before, after, what: str) -> None:
    """Two (nested) dicts/lists/tuples of arrays hold equal values."""
    if isinstance(before, dict):
        assert isinstance(after, dict) and list(before) == list(after), f"{what}: keys changed"
        for key in before:
            assert_same_tree(before[key], after[key], f"{what}[{key!r}]")
    elif isinstance(before, (list, tuple)) and not isinstance(before, np.ndarray):
        assert len(before) == len(after), f"{what}: length changed"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same_tree(b, a, f"{what}[{i}]")
    elif isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        assert np.array_equal(before, after, equal_nan=True), f"{what} changed"
        assert np.asarray(before).shape == np.asarray(after).shape, f"{what}: shape changed"
    else:
        assert before == after, f"{what}: {before!r} -> {after!r}"


# -- the two accumulation paths of layers.kernels ---------------------------------------------
def _gemm_paths():
    from neural_networks.layers import kernels

    return [pytest.param(True, id="blas-accumulate",
                         marks=pytest.mark.skipif(not kernels.blas_available(), reason="needs scipy")),
            pytest.param(False, id="numpy-accumulate")]


GEMM_PATHS = _gemm_paths()


@contextlib.contextmanager
def gemm_path(with_blas: bool):
    """Run a block with ``kernels.matmul_accumulate`` on SciPy's GEMM (True) or NumPy (False)."""
    from neural_networks.layers import kernels

    saved, kernels.ACCUMULATE_WITH_BLAS = kernels.ACCUMULATE_WITH_BLAS, with_blas
    try:
        yield
    finally:
        kernels.ACCUMULATE_WITH_BLAS = saved


# -- state trees --------------------------------------------------------------------------------
def state_leaves(value, path="state"):
    """(path, leaf) of every leaf of a nested dict/list state; keys must be strings."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path}: key {key!r}"
            yield from state_leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from state_leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def assert_json_values_and_arrays(state) -> None:
    """Every leaf of ``state`` is None, a bool, int, float or str, or a NumPy array."""
    for path, value in state_leaves(state):
        assert value is None or type(value) in (bool, int, float, str) or isinstance(value, np.ndarray), (
            f"{path} is {type(value).__name__}")
