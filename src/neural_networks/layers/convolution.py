"""2-D convolution over NHWC images, as matrix products (GEMMs).

Two equivalent ways to compute it, chosen per layer by ``Conv2D.algorithm``:

* ``"shifted"`` (stride 1, output as large as the input, e.g. 3×3 with pad 1): one
  GEMM per kernel offset on a shifted block of rows of the padded image, accumulated.
  No window matrix is built, so it needs little memory; best when C_in is large.
* ``"patches"`` (any stride and padding): the classic im2col, one GEMM on a matrix of
  every window (kh·kw·C_in columns); best when C_in is small (a first layer).

Neither keeps a window matrix for backward: what it needs is rebuilt from the padded input,
which costs less than the memory it would hold.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError
from ..utils.windows import as_pair, extract_patches, fold_patches, output_hw, resolve_pad
from .base import KernelLayer
from .kernels import has_accumulating_gemm, matmul_accumulate

#: with ``algorithm="auto"``, layers with at least this many input channels use
#: "shifted" when it applies (measured on the benchmark, see benchmarks/README.md)
SHIFTED_MIN_CHANNELS = 8


def pad_image(X: np.ndarray, pad) -> np.ndarray:
    """A C-contiguous copy of an NHWC array with ``pad = (ph, pw)`` zeros around each image."""
    (ph, pw), (n_samples, height, width, channels) = pad, X.shape
    X_pad = padded_empty((n_samples, height, width, channels), pad, X.dtype)
    X_pad[:, ph : ph + height, pw : pw + width, :] = X
    return X_pad


def padded_empty(shape, pad, dtype) -> np.ndarray:
    """An NHWC array ``pad = (ph, pw)`` larger than ``shape`` on each side, whose border is
    zero and whose interior is left for the caller to fill: zeroing only the border
    saves a write pass over the whole array."""
    (ph, pw), (n_samples, height, width, channels) = pad, shape
    padded = np.empty((n_samples, height + 2 * ph, width + 2 * pw, channels), dtype=dtype)
    padded[:, :ph] = 0
    padded[:, ph + height :] = 0
    padded[:, ph : ph + height, :pw] = 0
    padded[:, ph : ph + height, pw + width :] = 0
    return padded


def row_windows(A_pad: np.ndarray, width: int) -> np.ndarray:
    """Rows r, r+1, …, r+width−1 of ``A_pad.reshape(-1, C)`` side by side, for every r:
    shape (rows − width + 1, width·C). One copy of an overlapping strided view (none
    for width 1)."""
    channels = A_pad.shape[-1]
    if width == 1:
        return A_pad.reshape(-1, channels)
    flat = A_pad.reshape(-1)
    n_rows = flat.size // channels - (width - 1)
    overlapping = as_strided(flat, shape=(n_rows, width * channels),
                             strides=(channels * flat.itemsize, flat.itemsize), writeable=False)
    return np.ascontiguousarray(overlapping)


def sum_rows(A: np.ndarray) -> np.ndarray:
    """Σ_r A[r] of a 2-D array, as a matrix-vector product: numpy's axis-0 sum of a tall
    array with few columns is about 10× slower."""
    return np.ones(A.shape[0], dtype=A.dtype) @ A


def shifted_correlation(A_pad: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Stride-1 cross-correlation of a padded NHWC array, one GEMM per kernel offset.

    With ``A_pad`` (N, Hp, Wp, C) C-contiguous and ``kernel`` (kh, kw, C, C_out), returns
    ``out`` (N, Hp, Wp, C_out) whose block ``out[:, :Hp−kh+1, :Wp−kw+1]`` is

        out[n, y, x] = bias + Σ_{i, j} A_pad[n, y + i, x + j] @ kernel[i, j]

    (``bias`` (1, C_out) or None for 0; the rest is finite scratch). Seen as a matrix of
    rows r = (n·Hp + y)·Wp + x, offset (i, j) reads row r + i·Wp + j: every term is one
    GEMM on a contiguous block of rows, added into ``out`` by ``matmul_accumulate``
    (NumPy: through one reused temporary; SciPy's BLAS with β = 1 when switched on: no
    temporary, no second pass). No window matrix is built.
    """
    n_samples, height, width, channels = A_pad.shape
    kh, kw, _, n_out = kernel.shape
    kernel = np.ascontiguousarray(kernel)  # every kernel[i, j] a contiguous GEMM operand
    rows = A_pad.reshape(-1, channels)
    n_rows = rows.shape[0] - (kh - 1) * width - (kw - 1)  # the last valid output row + 1
    out = np.empty((n_samples, height, width, n_out), dtype=A_pad.dtype)
    grid = out.reshape(-1, n_out)
    total = grid[:n_rows]
    if has_accumulating_gemm(out.dtype):
        # Start from the bias (or 0) and add all kh·kw products onto it with the GEMM's
        # β = 1: every product goes through one BLAS (one thread pool), and the fill costs
        # about the one write a first, non-accumulating product would make.
        grid[...] = 0 if bias is None else bias
        matmul_accumulate(rows[:n_rows], kernel[0, 0], out=total)
    else:  # NumPy: the first product written straight into the output, the bias added last
        grid[n_rows:] = 0  # the few rows no offset reaches
        np.matmul(rows[:n_rows], kernel[0, 0], out=total)
    reuse = kh * kw > 1 and not has_accumulating_gemm(out.dtype)
    scratch = np.empty_like(total) if reuse else None  # one temporary for every product
    for i, j in np.ndindex(kh, kw):
        if i or j:
            shift = i * width + j
            matmul_accumulate(rows[shift : shift + n_rows], kernel[i, j], out=total, scratch=scratch)
    if bias is not None and not has_accumulating_gemm(out.dtype):
        out += bias  # over the whole contiguous grid (finite scratch included): faster than the view
    return out


class Conv2D(KernelLayer):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    Forward, with X̃ the zero-padded input and s the stride::

        Z[n, y, x, o] = b[o] + Σ_{i, j, c} X̃[n, s·y + i, s·x + j, c] · W[i, j, c, o]
        Y = f(Z)

    Backward, given dL/dY::

        dZ       = f'(Z) · dL/dY
        db       = Σ_{n, y, x} dZ                                       (shape (1, C_out))
        dW[i, j] = Σ_{n, y, x} X̃[n, s·y + i, s·x + j]ᵀ dZ[n, y, x]      (C × C_out per offset)
        dX̃[n, s·y + i, s·x + j] += dZ[n, y, x] W[i, j]ᵀ  for every (y, x, i, j); dX = dX̃ cropped

    Both are matrix products, computed by one of two algorithms (``algorithm``):

    * "patches" (im2col), any stride and padding: ``patches`` (N·H'·W', kh·kw·C) holds
      every window, ``Z = patches W₂ + b`` with W₂ = W.reshape(kh·kw·C, C_out),
      ``dW₂ = patchesᵀ dZ`` and ``dZ W₂ᵀ`` folded back onto X̃ gives dX̃.
    * "shifted", stride 1 with an output as large as the input (2·p = k − 1, e.g. 3×3
      with pad 1): one GEMM per kernel offset on shifted rows of X̃ (see
      ``shifted_correlation``), ``Z = Σ_{i, j} X̃[:, i:i+H, j:j+W] W[i, j] + b``; dW one
      GEMM per kernel row (see ``_backward_shifted``); and dX is itself such a
      convolution of dZ̃ (dZ zero-padded by p) with the flipped, transposed kernel:
      ``dX[n, y, x] = Σ_{i, j} dZ̃[n, y + i, x + j] W[kh−1−i, kw−1−j]ᵀ``.
      No kh·kw-wide window matrix is built: far less memory than "patches".

    "auto" (the default) uses "shifted" where it applies and C_in >= 8, else "patches".

    Parameters
    ----------
    n_out : int
        Number of output channels C_out.
    kernel_shape : int or (int, int)
        (kh, kw).
    activation : str
        Name of the activation f.
    stride : int or (int, int)
        Step between windows, >= 1.
    pad : "same", "valid", int or (int, int)
        Zero padding on each side: "same" is ((kh-1)//2, (kw-1)//2), "valid" is 0.
    weight_init : str
        Initialiser of W; b starts at 0.

    Shapes: X (N, H, W, C), Y (N, H', W', C_out) with H' = ⌊(H + 2p_h − kh)/s_h⌋ + 1,
    W (kh, kw, C, C_out), b (1, C_out).

    >>> import numpy as np
    >>> layer = Conv2D(8, 3, "relu")                    # 3×3, "same" padding, stride 1
    >>> layer.forward(np.ones((2, 5, 5, 3))).shape
    (2, 5, 5, 8)
    >>> layer.parameters["W"].shape
    (3, 3, 3, 8)
    """

    type_name = "conv2d"
    #: "auto", "shifted" or "patches" (see above); a performance choice only, every one
    #: computes the same values (up to float rounding). "shifted" falls back to
    #: "patches" where it does not apply.
    algorithm = "auto"

    def __init__(
        self,
        n_out: int,
        kernel_shape,
        activation="linear",
        stride=1,
        pad="same",
        weight_init: str = "xavier_uniform",
    ) -> None:
        super().__init__(n_out, activation, weight_init)
        self.kernel_shape = as_pair(kernel_shape, "kernel_shape", "Conv2D")
        self.stride = as_pair(stride, "stride", "Conv2D")
        self.pad = resolve_pad(pad, self.kernel_shape, "Conv2D")

    def parameter_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expected NHWC samples of shape (height, width, channels), "
                             f"got {tuple(input_shape)}")
        return {"W": self.kernel_shape + (int(input_shape[2]), self.n_out), "b": (1, self.n_out)}

    def build(self, input_shape: tuple[int, ...]) -> None:
        """W (kh, kw, C_in, C_out) from the initialiser, b (1, C_out) zeros, zero gradients."""
        super().build(input_shape)
        self.n_in = self.parameters["W"].shape[2]

    def _uses_shifted(self, channels: int) -> bool:
        (kh, kw), (ph, pw) = self.kernel_shape, self.pad
        applies = self.stride == (1, 1) and 2 * ph == kh - 1 and 2 * pw == kw - 1
        if not applies or self.algorithm == "patches":
            return False
        return self.algorithm == "shifted" or channels >= SHIFTED_MIN_CHANNELS

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=4)
        self._check_channels(X.shape)
        W, b = np.ascontiguousarray(self._param("W", X.dtype)), self._param("b", X.dtype)
        out_height, out_width = self._output_hw(X.shape)
        X_pad = pad_image(X, self.pad)

        if self._uses_shifted(X.shape[3]):
            algorithm = "shifted"
            Z_grid = shifted_correlation(X_pad, W, bias=b)
            Z = Z_grid[:, :out_height, :out_width]  # a view: no copy
        else:
            algorithm = "patches"
            patches = extract_patches(X_pad, self.kernel_shape, self.stride, (out_height, out_width))
            Z = (patches @ W.reshape(-1, self.n_out)).reshape(X.shape[0], out_height, out_width, self.n_out)
            Z += b

        if retain_derived:  # X̃ is kept, not the window matrix: rebuilding that costs less
            self.cache.update(X_shape=X.shape, X_pad=X_pad, algorithm=algorithm, Z=Z)
        return self.activation(Z)

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Store dW, db and return dX; with ``input_gradient=False`` skip dX (return None)."""
        X_shape, Z, algorithm = self._require_cache("X_shape", "Z", "algorithm")
        dLdY = self._check_upstream(dLdY, Z.shape)
        if algorithm == "patches":
            return self._backward_patches(self.activation.backward(Z, dLdY), input_gradient)
        # "shifted": dZ = f'(Z)·dL/dY goes straight into the zero-padded grid it is used in
        (ph, pw), (height, width) = self.pad, X_shape[1:3]
        dZ_pad = padded_empty(Z.shape, self.pad, np.result_type(Z, dLdY))
        self.activation.backward_into(Z, dLdY, out=dZ_pad[:, ph : ph + height, pw : pw + width, :])
        return self._backward_shifted(dZ_pad, input_gradient)

    def backward_pre_activation(self, dZ: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Backward from dL/dZ, the gradient before the activation."""
        (algorithm,) = self._require_cache("algorithm")
        if algorithm == "patches":
            return self._backward_patches(dZ, input_gradient)
        return self._backward_shifted(pad_image(np.asarray(dZ), self.pad), input_gradient)

    def _backward_patches(self, dZ: np.ndarray, input_gradient: bool) -> np.ndarray | None:
        """dW₂ = patchesᵀ dZ, db = Σ dZ, dX̃ = fold(dZ W₂ᵀ) cropped; the patches are rebuilt."""
        X_shape, X_pad, Z = self._require_cache("X_shape", "X_pad", "Z")
        W = np.ascontiguousarray(self._param("W", Z.dtype))
        (ph, pw), (height, width) = self.pad, X_shape[1:3]
        dZ_rows = dZ.reshape(-1, self.n_out)

        patches = extract_patches(X_pad, self.kernel_shape, self.stride, dZ.shape[1:3])
        self.gradients["W"] = (patches.T @ dZ_rows).reshape(W.shape)
        self.gradients["b"] = sum_rows(dZ_rows).reshape(1, self.n_out)
        del patches
        if not input_gradient:
            return None
        d_patches = (dZ_rows @ W.reshape(-1, self.n_out).T).reshape(dZ.shape[:3] + W.shape[:3])
        dX_pad = fold_patches(d_patches, X_pad.shape, self.kernel_shape, self.stride)
        return dX_pad[:, ph : ph + height, pw : pw + width, :]

    def _backward_shifted(self, dZ_pad: np.ndarray, input_gradient: bool) -> np.ndarray | None:
        """Backward of "shifted" from dZ̃, dL/dZ zero-padded like X̃ (the same grid).

        In rows of the grid, dZ[n, y, x] is ``centre`` rows after X̃[n, y, x], so
        dW[i, j] = Σ_r X̃rows[r + i·Wp + j]ᵀ dZ̃rows[r + centre]: the kw offsets of kernel
        row i are one GEMM on ``row_windows(X̃)`` (kw·C rows of dW at once, which BLAS
        parallelises far better than C rows). dX correlates dZ̃ with the flipped kernel.
        """
        X_shape, X_pad, Z = self._require_cache("X_shape", "X_pad", "Z")
        W = np.ascontiguousarray(self._param("W", Z.dtype))
        (ph, pw), (kh, kw) = self.pad, self.kernel_shape
        height, width, channels = X_shape[1:]
        rows_dZ, grid_width = dZ_pad.reshape(-1, self.n_out), X_pad.shape[2]
        n_rows = rows_dZ.shape[0] - (kh - 1) * grid_width - (kw - 1)
        centre = ph * grid_width + pw

        X_windows = row_windows(X_pad, kw)
        dW = np.empty(W.shape, dtype=np.result_type(X_pad, dZ_pad))
        for i in range(kh):
            np.matmul(X_windows[i * grid_width : i * grid_width + n_rows].T,
                      rows_dZ[centre : centre + n_rows], out=dW[i].reshape(kw * channels, self.n_out))
        self.gradients["W"] = dW
        self.gradients["b"] = sum_rows(rows_dZ).reshape(1, self.n_out)  # the padding adds 0
        if not input_gradient:
            return None
        del X_windows  # the largest temporary: free it before dX's buffers
        flipped = W[::-1, ::-1].transpose(0, 1, 3, 2)  # W[kh−1−i, kw−1−j]ᵀ at (i, j)
        return shifted_correlation(dZ_pad, flipped)[:, :height, :width]

    def _check_channels(self, X_shape) -> None:
        if X_shape[3] != self.n_in:
            raise ShapeError(
                f"{self.name}: expected {self.n_in} input channels (NHWC, built from the "
                f"first input), got input of shape {X_shape}"
            )

    def _output_hw(self, X_shape) -> tuple[int, int]:
        return output_hw(X_shape, self.kernel_shape, self.stride, self.pad, self.name)

    def output_shape(self, input_shape):
        return self._output_hw((None,) + tuple(input_shape)) + (self.n_out,)

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_shape": list(self.kernel_shape),
                "stride": list(self.stride), "pad": list(self.pad)}

    def _expected_input(self) -> str:
        return "(batch, height, width, channels)"
