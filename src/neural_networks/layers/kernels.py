"""Fast kernels the layers call by name (today: the convolution's accumulated products).

Each function computes one plain formula (stated in its docstring) faster than the
obvious NumPy expression, by choosing the BLAS call, the memory layout or the reuse of
a temporary; none changes what is computed beyond float rounding. The layers stay
readable: they say *what* (``matmul_accumulate(A, B, out=total)``), this module says
*how*.

Optional accelerator: SciPy's BLAS wrappers expose GEMM's ``beta`` (C ← αAB + βC),
which NumPy's ``matmul`` does not. With it, a product adds into an existing array
without a temporary and a second pass over memory. It is off by default (see
``ACCUMULATE_WITH_BLAS``); without it the same results come from ``np.matmul`` and an
addition.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _gemms() -> dict:
    """The BLAS GEMM of each dtype SciPy wraps (float32 and float64), or {} without SciPy.
    Imported on first use only: SciPy costs a third of a second to import, and the path
    is off by default."""
    try:  # optional: the accumulating GEMM (see benchmarks/README.md for what it buys)
        from scipy.linalg import blas
    except ImportError:  # pragma: no cover - exercised when SciPy is absent
        return {}
    return {np.dtype(np.float32): blas.sgemm, np.dtype(np.float64): blas.dgemm}


#: whether ``matmul_accumulate`` calls SciPy's BLAS GEMM with β = 1. Off by default: SciPy
#: ships an OpenBLAS of its own, whose worker threads then compete with NumPy's for the
#: same cores, and the whole training step measured slower with it on 2 threads although
#: the products alone were faster (benchmarks/README.md). Set it to True (SciPy installed)
#: to use it; the tests run both paths.
ACCUMULATE_WITH_BLAS = False


def has_accumulating_gemm(dtype) -> bool:
    """True when ``matmul_accumulate`` runs as one BLAS call (β = 1) for this dtype."""
    return ACCUMULATE_WITH_BLAS and np.dtype(dtype) in _gemms()


def blas_available() -> bool:
    """True when SciPy's BLAS wrappers can be imported (``ACCUMULATE_WITH_BLAS`` can work)."""
    return bool(_gemms())


def matmul_accumulate(A: np.ndarray, B: np.ndarray, out: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """``out += A @ B`` for 2-D arrays, in place; returns ``out``.

    With SciPy switched on (``ACCUMULATE_WITH_BLAS``), ``out`` C-contiguous (e.g. a block
    of rows of a contiguous array) and ``A``, ``B`` each C- or Fortran-contiguous (e.g. a
    transposed block), this is one BLAS GEMM with β = 1 on the Fortran-ordered views,
    ``outᵀ ← Bᵀ Aᵀ + outᵀ``, with the transposition flags instead of copies and no
    temporary. Otherwise ``out += np.matmul(A, B, out=scratch)``: pass a ``scratch``
    array of ``out``'s shape and dtype to reuse across calls (a fresh temporary of an
    activation's size costs page faults).

    Only the accumulation goes through SciPy: a plain product ``np.matmul(A, B, out=)``
    is as fast with NumPy's own BLAS, and routing those through SciPy's too measured
    slower in the whole training step (benchmarks/README.md).
    """
    gemm = _gemms().get(out.dtype) if ACCUMULATE_WITH_BLAS else None
    operands = None
    if (gemm is not None and A.dtype == out.dtype and B.dtype == out.dtype and out.flags.c_contiguous
            and out.size and A.shape[1]):
        operands = _fortran_operand(B.T), _fortran_operand(A.T)
    if operands is None or None in operands:
        out += np.matmul(A, B, out=scratch)
        return out
    (a, trans_a), (b, trans_b) = operands
    result = gemm(1.0, a, b, beta=1.0, c=out.T, overwrite_c=True, trans_a=trans_a, trans_b=trans_b)
    if not np.shares_memory(result, out):  # the wrapper had to copy: write the result back
        out[...] = result.T
    return out


def _fortran_operand(M: np.ndarray):
    """(array, trans) with op(array) = M and array Fortran-ordered, as GEMM takes it;
    None when M is neither C- nor Fortran-contiguous (it would be copied)."""
    if M.flags.f_contiguous:
        return M, 0
    if M.flags.c_contiguous:
        return M.T, 1
    return None
