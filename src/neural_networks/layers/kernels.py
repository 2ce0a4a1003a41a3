"""Fast kernels the convolution and pooling layers call by name.

Each function computes one plain formula (stated in its docstring) faster than the
obvious NumPy expression, by choosing the BLAS call, the memory layout or the order of
the passes; none changes what is computed beyond float rounding. The layers stay
readable: they say *what* (``matmul_accumulate(A, B, out=total)``), this module says
*how*.

Optional accelerator: SciPy's BLAS wrappers expose GEMM's ``beta`` (C ← αAB + βC),
which NumPy's ``matmul`` does not. With it, a product adds into an existing array
without a temporary and a second pass over memory. Without SciPy the same results
come from ``np.matmul`` and an addition.
"""

from __future__ import annotations

import numpy as np

try:  # optional: the accumulating GEMM (see benchmarks/README.md for what it buys)
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - exercised when SciPy is absent
    _blas = None

#: the BLAS GEMM of each dtype SciPy wraps (float32 and float64 only)
_GEMM = {} if _blas is None else {np.dtype(np.float32): _blas.sgemm, np.dtype(np.float64): _blas.dgemm}


#: whether ``matmul_accumulate`` uses the BLAS GEMM with β = 1 (needs SciPy); set it to
#: False to force the plain-NumPy path (the tests run both)
ACCUMULATE_WITH_BLAS = _blas is not None


def has_accumulating_gemm(dtype) -> bool:
    """True when ``matmul_accumulate`` runs as one BLAS call for this dtype."""
    return ACCUMULATE_WITH_BLAS and np.dtype(dtype) in _GEMM


def matmul_accumulate(A: np.ndarray, B: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out += A @ B`` for 2-D arrays, in place, without a temporary for ``A @ B``.

    With SciPy and a C-contiguous ``out`` and ``A`` (the common case: blocks of rows
    of a contiguous array), this is one GEMM with β = 1 on the Fortran-ordered
    (transposed) views, ``outᵀ ← Bᵀ Aᵀ + outᵀ``, none of which is copied (``B``, a
    small kernel, is copied if its transpose is not Fortran-ordered). Otherwise:
    ``out += np.matmul(A, B)``.
    """
    gemm = _GEMM.get(out.dtype) if ACCUMULATE_WITH_BLAS else None
    if (gemm is None or A.dtype != out.dtype or B.dtype != out.dtype
            or not (out.flags.c_contiguous and A.flags.c_contiguous) or out.size == 0 or A.shape[1] == 0):
        out += np.matmul(A, B)
        return out
    result = gemm(1.0, B.T, A.T, beta=1.0, c=out.T, overwrite_c=True)
    if not np.shares_memory(result, out):  # the wrapper had to copy: write the result back
        out[...] = result.T
    return out
