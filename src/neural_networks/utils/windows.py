"""Sliding windows over NHWC images: argument pairs, padding, output sizes, the view of
one kernel offset, and im2col (every window as a matrix row) with its adjoint.

The image layers (Conv2D, Pool2D) and the course's ``utils.convolution`` share these.

>>> import numpy as np
>>> X = np.arange(16.0).reshape(1, 4, 4, 1)
>>> extract_patches(X, (2, 2), (2, 2), (2, 2))[0]   # the top-left window, row-major
array([0., 1., 4., 5.])
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InvalidParameterError, ShapeError

#: below this many channels ``extract_patches`` copies per kernel offset (measured)
FEW_CHANNELS = 8


def as_pair(value, argument: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as a validated (rows, cols) tuple."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        pair = tuple(pair)
        valid = len(pair) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair
        )
    except TypeError:
        valid = False
    if not valid or isinstance(value, bool):
        raise InvalidParameterError(f"{layer}: {argument} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise InvalidParameterError(f"{layer}: {argument} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def resolve_pad(pad, kernel_shape: tuple[int, int], layer: str) -> tuple[int, int]:
    """"same" → ((kh-1)//2, (kw-1)//2), "valid" → (0, 0), an int or a pair as given."""
    if isinstance(pad, str):
        if pad == "same":
            return (kernel_shape[0] - 1) // 2, (kernel_shape[1] - 1) // 2
        if pad == "valid":
            return 0, 0
        raise InvalidParameterError(f"{layer}: pad must be 'same', 'valid', an int or a pair, got {pad!r}")
    return as_pair(pad, "pad", layer, minimum=0)


def output_size(size: int, kernel: int, pad: int, stride: int, layer: str, axis: str) -> int:
    """floor((size + 2·pad − kernel) / stride) + 1, or a clear error when the kernel does not fit."""
    if size + 2 * pad < kernel:
        raise ShapeError(
            f"{layer}: kernel {axis} {kernel} is larger than the padded input {axis} "
            f"{size} + 2·{pad} = {size + 2 * pad}"
        )
    return (size + 2 * pad - kernel) // stride + 1


def output_hw(X_shape, kernel_shape, stride, pad, layer: str) -> tuple[int, int]:
    """(out_height, out_width) of a sliding-window layer on NHWC inputs of ``X_shape``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_shape, stride, pad
    return (output_size(X_shape[1], kh, ph, sh, layer, "height"),
            output_size(X_shape[2], kw, pw, sw, layer, "width"))


def window(X_pad: np.ndarray, i: int, j: int, stride, out_shape) -> np.ndarray:
    """View of the cells at kernel offset (i, j) of every window: (N, H', W', C)."""
    (sh, sw), (out_height, out_width) = stride, out_shape
    return X_pad[:, i : i + sh * (out_height - 1) + 1 : sh, j : j + sw * (out_width - 1) + 1 : sw, :]


def pad_spatial(X: np.ndarray, pad: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NHWC array (no copy when there is no padding)."""
    ph, pw = pad
    if ph == 0 and pw == 0:
        return X
    return np.pad(X, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=value)


def extract_patches(X_pad: np.ndarray, kernel_shape, stride, out_shape) -> np.ndarray:
    """im2col: every kernel window of a padded NHWC array as one row of a matrix.

    Returns ``patches`` of shape (N·H'·W', kh·kw·C), the columns ordered (kernel row,
    kernel column, channel) to match ``W.reshape(kh·kw·C, C_out)``. Built by the faster
    of two copies: with few channels, one block copy per kernel offset into the
    transposed matrix (long contiguous runs along an image row); otherwise one copy of
    a sliding-window view (contiguous runs of C values).
    """
    (kh, kw), (sh, sw), (out_height, out_width) = kernel_shape, stride, out_shape
    n_samples, channels = X_pad.shape[0], X_pad.shape[3]
    if channels < FEW_CHANNELS:
        transposed = np.empty((kh, kw, channels, n_samples, out_height, out_width), dtype=X_pad.dtype)
        for i, j in np.ndindex(kh, kw):
            transposed[i, j] = window(X_pad, i, j, stride, out_shape).transpose(3, 0, 1, 2)
        return transposed.reshape(kh * kw * channels, -1).T
    windows = sliding_window_view(X_pad, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    windows = windows[:, : sh * (out_height - 1) + 1 : sh, : sw * (out_width - 1) + 1 : sw]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n_samples * out_height * out_width, kh * kw * channels)


def fold_patches(d_patches: np.ndarray, padded_shape, kernel_shape, stride) -> np.ndarray:
    """Adjoint of ``extract_patches``: add every window's gradient back onto the padded image.

    ``d_patches`` has shape (N, H', W', kh, kw, C); the result has ``padded_shape``.
    One strided slice-add per kernel offset: overlapping windows add up.
    """
    kh, kw = kernel_shape
    out_shape = d_patches.shape[1:3]
    dX_pad = np.zeros(padded_shape, dtype=d_patches.dtype)
    for i, j in np.ndindex(kh, kw):
        window(dX_pad, i, j, stride, out_shape)[...] += d_patches[:, :, :, i, j, :]
    return dX_pad
