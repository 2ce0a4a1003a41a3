"""The course's im2col helpers, for code written against them (Conv2D itself uses
``utils.windows.extract_patches``/``fold_patches``).

Layouts follow the course: ``X`` is NHWC; ``X_col`` has one row per (channel,
kernel row, kernel column) and one column per (output row, output column, sample),
so ``W.transpose(3, 2, 0, 1).reshape(C_out, -1) @ X_col`` is the convolution,
reshaped to (C_out, out_rows, out_cols, N).
"""

from __future__ import annotations

import numpy as np

from .windows import as_pair, extract_patches, fold_patches, output_hw, pad_spatial, resolve_pad


def _pad_pair(pad, kernel_shape) -> tuple[int, int]:
    """Accept "same", "valid", an int, a (ph, pw) pair or a (top, bottom, left, right) tuple."""
    if isinstance(pad, (tuple, list)) and len(pad) == 4:
        top, bottom, left, right = pad
        if top != bottom or left != right:
            raise ValueError(f"pad: only symmetric padding is supported, got {tuple(pad)}")
        return int(top), int(left)
    return resolve_pad(pad, tuple(kernel_shape), "im2col")


def pad2d(X: np.ndarray, pad, kernel_shape, stride=None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Zero-pad the spatial axes of NHWC ``X``; returns (X_pad, (top, bottom, left, right))."""
    ph, pw = _pad_pair(pad, as_pair(tuple(kernel_shape), "kernel_shape", "pad2d"))
    return pad_spatial(np.asarray(X), (ph, pw)), (ph, ph, pw, pw)


def _geometry(X, kernel_shape, stride, pad):
    kernel = as_pair(tuple(kernel_shape), "kernel_shape", "im2col")
    stride = as_pair(stride, "stride", "im2col")
    ph, pw = _pad_pair(pad, kernel)
    return kernel, stride, (ph, pw), output_hw(X.shape, kernel, stride, (ph, pw), "im2col")


def im2col(X: np.ndarray, kernel_shape, stride=1, pad="same") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Window matrix of NHWC ``X``: shape (C·kh·kw, out_rows·out_cols·N), plus the padding."""
    X = np.asarray(X)
    kernel, stride, pad, out_shape = _geometry(X, kernel_shape, stride, pad)
    n_samples, channels = X.shape[0], X.shape[3]
    patches = extract_patches(pad_spatial(X, pad), kernel, stride, out_shape)
    # rows of `patches` are (n, y, x), columns (i, j, c): reorder to the course's layout
    patches = patches.reshape(n_samples, *out_shape, *kernel, channels)
    X_col = patches.transpose(5, 3, 4, 1, 2, 0).reshape(channels * kernel[0] * kernel[1], -1)
    return X_col, (pad[0], pad[0], pad[1], pad[1])


def col2im(X_col: np.ndarray, X: np.ndarray, W_shape, stride=1, pad="same") -> np.ndarray:
    """Adjoint of ``im2col``: add the columns back onto an image shaped like X, in NCHW
    (as the course returned it)."""
    X = np.asarray(X)
    kh, kw, channels = W_shape[0], W_shape[1], X.shape[3]
    kernel, stride, pad, out_shape = _geometry(X, (kh, kw), stride, pad)
    n_samples, height, width = X.shape[:3]
    d_patches = np.asarray(X_col).reshape(channels, kh, kw, *out_shape, n_samples)
    d_patches = d_patches.transpose(5, 3, 4, 1, 2, 0)  # (N, out_rows, out_cols, kh, kw, C)
    padded_shape = (n_samples, height + 2 * pad[0], width + 2 * pad[1], channels)
    dX_pad = fold_patches(d_patches, padded_shape, kernel, stride)
    dX = dX_pad[:, pad[0] : pad[0] + height, pad[1] : pad[1] + width, :]
    return dX.transpose(0, 3, 1, 2)
