"""Max and average pooling over NHWC images."""

from __future__ import annotations

import numpy as np

from ..activations import keep_where
from ..errors import InvalidParameterError, ShapeError, unknown_name
from ..utils.windows import as_pair, output_hw, pad_spatial, resolve_pad, window
from .base import Layer

POOL_MODES = ("max", "average")


class Pool2D(Layer):
    """2-D max or average pooling, each channel separately (PyTorch semantics).

    Forward, with X̃ the padded input, s the stride and (i, j) the kernel offsets::

        max:      Y[n, y, x, c] = max_{i, j}  X̃[n, s·y + i, s·x + j, c]     (X̃ padded with −inf)
        average:  Y[n, y, x, c] = Σ_{i, j}    X̃[n, s·y + i, s·x + j, c] / (kh·kw)
                                                               (X̃ padded with 0; padding counts)

    Backward, given dL/dY::

        max:      each window's gradient goes to its first maximum (row-major order)
        average:  every cell of a window gets dL/dY / (kh·kw); overlapping windows add up

    and the padded border is cropped, so dX has the input's shape.

    Parameters
    ----------
    kernel_shape : int or (int, int)
    mode : "max" or "average"
    stride : int or (int, int), >= 1
    pad : int, (int, int), "same" or "valid"; at most half the kernel, as PyTorch requires.

    Shapes: X (N, H, W, C), Y (N, H', W', C) with H' = ⌊(H + 2p_h − kh)/s_h⌋ + 1.
    No parameters.

    Note: ``stride`` defaults to 1, the course's default; Keras and PyTorch default it
    to the kernel size, so write ``Pool2D(2, stride=2)`` for the usual halving.

    >>> import numpy as np
    >>> Pool2D(2, stride=2).forward(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    type_name = "pool2d"

    def __init__(self, kernel_shape, mode: str = "max", stride=1, pad=0) -> None:
        super().__init__()
        self.kernel_shape = as_pair(kernel_shape, "kernel_shape", "Pool2D")
        self.stride = as_pair(stride, "stride", "Pool2D")
        self.pad = resolve_pad(pad, self.kernel_shape, "Pool2D")
        if any(p > k // 2 for p, k in zip(self.pad, self.kernel_shape)):
            raise InvalidParameterError(
                f"Pool2D: pad must be at most half the kernel {self.kernel_shape}, got {pad!r}"
            )
        if mode not in POOL_MODES:
            raise unknown_name("Pool2D: mode", mode, POOL_MODES)
        self.mode = mode
        self.n_in = self.n_out = None

    def build(self, input_shape: tuple[int, ...]) -> None:
        """No parameters; records the channel count (the course's ``n_in``/``n_out``)."""
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expected NHWC samples of shape (height, width, channels), "
                             f"got {tuple(input_shape)}")
        self.n_in = self.n_out = int(input_shape[2])
        super().build(input_shape)

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=4)
        out_shape = self._output_hw(X.shape)
        if self.mode == "max":
            Y, argmax = self._max_forward(pad_spatial(X, self.pad, -np.inf), out_shape, retain_derived)
        else:
            Y, argmax = self._average_forward(pad_spatial(X, self.pad, 0.0), out_shape), None
        if retain_derived:
            self.cache["X_shape"], self.cache["argmax"], self.cache["Y_shape"] = X.shape, argmax, Y.shape
        return Y

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Route each window's gradient (see above); no parameters, so nothing to store."""
        X_shape, Y_shape = self._require_cache("X_shape", "Y_shape")
        if not input_gradient:
            return None
        dLdY = self._check_upstream(dLdY, Y_shape)
        (ph, pw), (kh, kw), (sh, sw) = self.pad, self.kernel_shape, self.stride
        n_samples, height, width, channels = X_shape
        argmax = self.cache["argmax"]
        share = dLdY / (kh * kw)
        windows_overlap = sh < kh or sw < kw
        windows_tile = self.mode == "max" and (sh, sw) == (kh, kw)  # each cell in exactly one window
        dX_pad = (np.empty if windows_tile else np.zeros)(
            (n_samples, height + 2 * ph, width + 2 * pw, channels), dtype=dLdY.dtype)
        if windows_tile:  # only the cells past the last window need zeros: every other is written
            dX_pad[:, kh * Y_shape[1] :] = 0
            dX_pad[:, : kh * Y_shape[1], kw * Y_shape[2] :] = 0
        for k, (i, j) in enumerate(np.ndindex(kh, kw)):
            window = self._window(dX_pad, i, j, Y_shape[1:3])
            if self.mode == "average":
                window += share
            elif windows_overlap:
                window += keep_where(argmax == k, dLdY)
            else:  # every cell is in at most one window: write straight into it
                keep_where(argmax == k, dLdY, out=window)
        return dX_pad[:, ph : ph + height, pw : pw + width, :]

    def _max_forward(self, X_pad: np.ndarray, out_shape, with_argmax: bool = True):
        """Running maximum over the kernel offsets, remembering the first offset attaining it.

        Branch-free: ``best = max(best, candidate)`` (nan propagates, as in PyTorch) and,
        since offsets come in increasing order k, ``argmax = max(argmax, k·better)`` is
        "k where better, else unchanged".
        """
        kh, kw = self.kernel_shape
        best = self._window(X_pad, 0, 0, out_shape).copy()
        argmax = np.zeros(best.shape, dtype=np.min_scalar_type(kh * kw - 1)) if with_argmax else None
        for k, (i, j) in enumerate(np.ndindex(kh, kw)):
            if k == 0:
                continue
            candidate = self._window(X_pad, i, j, out_shape)
            if with_argmax:
                # Strictly greater keeps the first maximum; a nan always wins (as PyTorch).
                better = np.greater(candidate, best)
                better |= np.isnan(candidate)
                np.maximum(argmax, better.view(np.uint8) * argmax.dtype.type(k), out=argmax)
            np.maximum(best, candidate, out=best)
        return best, argmax

    def _average_forward(self, X_pad: np.ndarray, out_shape) -> np.ndarray:
        kh, kw = self.kernel_shape
        total = self._window(X_pad, 0, 0, out_shape).copy()
        for k, (i, j) in enumerate(np.ndindex(kh, kw)):
            if k:
                total += self._window(X_pad, i, j, out_shape)
        return total / (kh * kw)

    def _window(self, X_pad: np.ndarray, i: int, j: int, out_shape) -> np.ndarray:
        return window(X_pad, i, j, self.stride, out_shape)

    def _output_hw(self, X_shape) -> tuple[int, int]:
        return output_hw(X_shape, self.kernel_shape, self.stride, self.pad, self.name)

    def output_shape(self, input_shape):
        return self._output_hw((None,) + tuple(input_shape)) + (input_shape[-1],)

    def get_config(self) -> dict:
        return {
            "type": self.type_name,
            "kernel_shape": list(self.kernel_shape),
            "mode": self.mode,
            "stride": list(self.stride),
            "pad": list(self.pad),
        }

    def _expected_input(self) -> str:
        return "(batch, height, width, channels)"
