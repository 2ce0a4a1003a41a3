"""utils: AttrDict, integers_to_one_hot, check_gradients / numerical_gradient, feature scaling,
atomic file writes."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import SETTINGS, assert_unchanged, make_values, to_torch
from neural_networks.utils import (
    AttrDict,
    center,
    check_gradients,
    integers_to_one_hot,
    normalize,
    numerical_gradient,
    standardize,
)


def test_grad_check_module_path():
    from neural_networks.utils.grad_check import check_gradients as from_module

    assert from_module is check_gradients


# -- AttrDict ------------------------------------------------------------------------------------
def test_attrdict():
    d = AttrDict(a=1)
    assert d.a == 1 and d["a"] == 1
    d.b = 2
    assert d["b"] == 2 and isinstance(d, dict)
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        d.missing
    with pytest.raises(AttributeError):
        del d.missing
    assert not hasattr(d, "missing")


# -- one-hot -------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.integers(0, 6), min_size=1, max_size=20), st.integers(0, 3))
def test_one_hot_matches_torch(ids, extra):
    max_val = max(ids) + extra
    vec = np.array(ids)
    vec_before = vec.copy()
    one_hot = integers_to_one_hot(vec, max_val)
    expected = torch.nn.functional.one_hot(torch.tensor(ids), num_classes=max_val + 1).numpy()
    assert one_hot.dtype == np.float64
    np.testing.assert_array_equal(one_hot, expected)
    assert_unchanged(vec_before, vec, "vec")
    np.testing.assert_array_equal(integers_to_one_hot(vec), torch.nn.functional.one_hot(torch.tensor(ids)).numpy())


def test_one_hot_accepts_integral_floats_and_rejects_bad_ids():
    np.testing.assert_array_equal(integers_to_one_hot(np.array([2.0, 0.0])), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="0..2"):
        integers_to_one_hot(np.array([0, 3]), max_val=2)
    with pytest.raises(ValueError):
        integers_to_one_hot(np.array([-1, 0]))
    with pytest.raises(ValueError):
        integers_to_one_hot(np.array([0.5, 1.0]))


# -- gradient checks -------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_numerical_gradient_matches_torch(seed, shape):
    x = make_values(seed, tuple(shape), "normal", np.float64)
    dLdf = make_values(seed + 1, tuple(shape), "normal", np.float64)
    x_before = x.copy()
    x_t = to_torch(x, requires_grad=True)
    (torch.tanh(x_t) * x_t * to_torch(dLdf)).sum().backward()
    fn = lambda v: np.tanh(v) * v
    numerical = numerical_gradient(fn, x, dLdf)
    np.testing.assert_allclose(numerical, x_t.grad.numpy(), rtol=1e-6, atol=1e-8)
    assert check_gradients(fn, x_t.grad.numpy(), x, dLdf) < 1e-7
    assert_unchanged(x_before, x, "x")


def test_check_gradients_flags_a_wrong_gradient():
    x = make_values(0, (3, 4), "normal", np.float64)
    dLdf = np.ones_like(x)
    right = 2 * x
    assert check_gradients(lambda v: v * v, right, x, dLdf) < 1e-8
    assert check_gradients(lambda v: v * v, 3 * x, x, dLdf) > 0.1
    assert check_gradients(lambda v: v * v, -right, x, dLdf) > 1  # opposite direction


def test_check_gradients_zero_over_zero():
    x = np.zeros((2, 3))
    # a constant function and a zero analytic gradient: 0, not nan
    assert check_gradients(lambda v: np.zeros_like(v), np.zeros_like(x), x, np.ones_like(x)) == 0.0


def test_check_gradients_rejects_integer_x():
    with pytest.raises(TypeError):
        check_gradients(lambda v: v, np.zeros(3), np.zeros(3, dtype=int), np.ones(3))


# -- feature scaling -------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(2, 8), st.integers(1, 4))
def test_scaling(seed, n, d):
    X = make_values(seed, (n, d), "normal", np.float64) * 3 + 1
    X[:, 0] = 2.0  # a constant column
    X_before = X.copy()
    np.testing.assert_allclose(center(X).mean(axis=0), 0, atol=1e-12)
    N = normalize(X)
    np.testing.assert_array_equal(N[:, 0], 0.0)
    if d > 1:
        np.testing.assert_allclose(N[:, 1:].min(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(N[:, 1:].max(axis=0), 1, rtol=1e-12)
    S = standardize(X)
    assert np.all(np.isfinite(S))
    np.testing.assert_allclose(S.mean(axis=0), 0, atol=1e-9)
    if d > 1:
        np.testing.assert_allclose(S[:, 1:].std(axis=0), 1, rtol=1e-6)
    assert_unchanged(X_before, X, "X")


# -- declared parameter checks (utils.validation) ------------------------------------------------
def test_path_constraint_takes_non_empty_strings_and_path_likes():
    from pathlib import Path

    from neural_networks.errors import InvalidParameterError
    from neural_networks.utils.validation import PATH, validate_params

    for good in ("log.csv", Path("runs") / "log.csv"):
        validate_params("CSVLogger", {"path": [PATH]}, path=good)
    for bad in ("", None, 3, b"log.csv"):
        with pytest.raises(InvalidParameterError, match=r"^CSVLogger: path must be a file path \(a non-empty str or os.PathLike\), got"):
            validate_params("CSVLogger", {"path": [PATH]}, path=bad)


def test_a_mapping_constraint_reads_as_a_dict():
    from collections.abc import Mapping

    from neural_networks.errors import InvalidParameterError
    from neural_networks.utils.validation import validate_parameter

    assert validate_parameter("SGD", "lr_scheduler", {"type": "cosine"}, [None, Mapping]) == {"type": "cosine"}
    with pytest.raises(InvalidParameterError, match=r"^SGD: lr_scheduler must be None or a dict, got 3 \(int\)$"):
        validate_parameter("SGD", "lr_scheduler", 3, [None, Mapping])


# -- atomic file writes -------------------------------------------------------------------------------
@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    import os

    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000, 0o027])
@pytest.mark.parametrize("writer", ["atomic_file", "write_json_atomic"])
def test_atomic_writes_give_a_new_file_the_mode_open_would(tmp_path, umask, mask, writer):
    import os
    import stat

    from neural_networks.utils.files import atomic_file, current_umask, write_json_atomic

    umask(mask)
    assert current_umask() == mask
    with open(tmp_path / "plain.txt", "w") as handle:  # the oracle: what open() does
        handle.write("x")
    if writer == "atomic_file":
        with atomic_file(tmp_path / "atomic.bin") as handle:
            handle.write(b"x")
    else:
        write_json_atomic(tmp_path / "atomic.bin", {"x": 1})
    mode = lambda name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)  # noqa: E731
    assert mode("atomic.bin") == mode("plain.txt") == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_over_a_file_keeps_its_mode_as_open_does(tmp_path, umask):
    import os
    import stat

    from neural_networks.utils.files import atomic_file

    umask(0o022)
    for name in ("plain.txt", "atomic.bin"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, 0o640)
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("new")
    with atomic_file(tmp_path / "atomic.bin") as handle:
        handle.write(b"new")
    mode = lambda name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)  # noqa: E731
    assert mode("atomic.bin") == mode("plain.txt") == 0o640
    assert (tmp_path / "atomic.bin").read_bytes() == b"new"


def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from neural_networks.utils.files import atomic_file

    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_file(target) as handle:
            handle.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
