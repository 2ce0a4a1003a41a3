"""The fast kernels (layers/kernels.py) compute their plain formulas."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import GEMM_PATHS, SETTINGS, arrays, assert_close, float_dtypes, gemm_path
from neural_networks.layers import kernels


#: how matmul_accumulate adds a product: BLAS with beta = 1 (needs SciPy), or NumPy


@st.composite
def accumulate_cases(draw):
    dtype = draw(float_dtypes)
    m, k, n = draw(st.integers(1, 40)), draw(st.integers(1, 12)), draw(st.integers(1, 9))
    extra_before, extra_after = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    kinds = ("normal", "dyadic", "small_ints")
    return dict(
        A=draw(arrays((m, k), dtype, kinds=kinds)),
        B=draw(arrays((k, n), dtype, kinds=kinds)),
        C=draw(arrays((extra_before + m + extra_after, n), dtype, kinds=kinds)),
        rows=slice(extra_before, extra_before + m),
        transposed_B=draw(st.booleans()),
        scratch=draw(st.booleans()),  # a reused temporary, full of nan before
    )


@pytest.mark.parametrize("with_blas", GEMM_PATHS)
@SETTINGS
@given(case=accumulate_cases())
def test_matmul_accumulate_adds_the_product_into_a_block_of_rows(with_blas, case):
    A, C, rows = case["A"], case["C"], case["rows"]
    B = np.asfortranarray(case["B"]) if case["transposed_B"] else case["B"]  # a kernel view
    A.flags.writeable = B.flags.writeable = False  # the operands are not written to
    expected = C.astype(np.float64)
    expected[rows] += A.astype(np.float64) @ B.astype(np.float64)
    before = C.copy()
    scratch = np.full((A.shape[0], B.shape[1]), np.nan, dtype=A.dtype) if case["scratch"] else None
    with gemm_path(with_blas):
        result = kernels.matmul_accumulate(A, B, out=C[rows], scratch=scratch)
    assert result.dtype == A.dtype and np.shares_memory(result, C)
    assert_close(C, expected, A.dtype, "out += A @ B")
    untouched = np.ones(len(C), dtype=bool)
    untouched[rows] = False
    np.testing.assert_array_equal(C[untouched], before[untouched])  # only the block changes


@pytest.mark.parametrize("with_blas", GEMM_PATHS)
def test_matmul_accumulate_on_strided_operands_falls_back_exactly(with_blas):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 10))[:, ::2]  # not contiguous
    B = rng.standard_normal((5, 3))
    C = rng.standard_normal((7, 6))[:, ::2]
    expected = C + A @ B
    with gemm_path(with_blas):
        kernels.matmul_accumulate(A, B, out=C)
    np.testing.assert_allclose(C, expected, rtol=1e-14, atol=1e-14)


def test_blas_path_is_taken_only_when_switched_on():
    if not kernels.blas_available():
        pytest.skip("needs scipy")
    assert not kernels.has_accumulating_gemm(np.float32)  # off by default (see the module)
    with gemm_path(True):
        assert kernels.has_accumulating_gemm(np.float32) and kernels.has_accumulating_gemm(np.float64)
        assert not kernels.has_accumulating_gemm(np.float16)
