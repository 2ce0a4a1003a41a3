"""2-D convolution over NHWC images, as matrix products over sliding windows."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..activations import initialize_activation
from ..errors import UnknownNameError
from ..weights import initialize_weights
from .base import Layer, as_pair, output_size, pad_spatial, resolve_pad


def extract_patches(X_pad: np.ndarray, kernel_shape, stride, out_shape) -> np.ndarray:
    """Every kernel window of a padded NHWC array as one row of a matrix.

    Returns ``patches`` of shape (N·out_height·out_width, kh·kw·C), the columns
    ordered (kernel row, kernel column, channel) to match a (kh, kw, C, C_out) kernel.
    """
    (kh, kw), (sh, sw), (out_height, out_width) = kernel_shape, stride, out_shape
    n_samples, channels = X_pad.shape[0], X_pad.shape[3]
    windows = sliding_window_view(X_pad, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    windows = windows[:, : sh * (out_height - 1) + 1 : sh, : sw * (out_width - 1) + 1 : sw]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(
        n_samples * out_height * out_width, kh * kw * channels
    )


def fold_patches(d_patches: np.ndarray, padded_shape, kernel_shape, stride) -> np.ndarray:
    """Adjoint of ``extract_patches``: add every window's gradient back onto the image.

    ``d_patches`` has shape (N, out_height, out_width, kh, kw, C); the result has
    ``padded_shape``. One strided slice-add per kernel offset: overlapping
    windows accumulate.
    """
    (kh, kw), (sh, sw) = kernel_shape, stride
    out_height, out_width = d_patches.shape[1:3]
    dX_pad = np.zeros(padded_shape, dtype=d_patches.dtype)
    for i in range(kh):
        for j in range(kw):
            dX_pad[:, i : i + sh * (out_height - 1) + 1 : sh, j : j + sw * (out_width - 1) + 1 : sw] += (
                d_patches[:, :, :, i, j, :]
            )
    return dX_pad


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    Forward, with X̃ the zero-padded input and s the stride::

        Z[n, y, x, o] = b[o] + Σ_{i, j, c} X̃[n, s·y + i, s·x + j, c] · W[i, j, c, o]
        Y = f(Z)

    computed as one matrix product ``Z = patches @ W.reshape(kh·kw·C, C_out) + b``
    where each row of ``patches`` is one input window. Backward, given dL/dY::

        dZ        = f'(Z) · dL/dY
        dW        = patchesᵀ dZ                       (reshaped to (kh, kw, C, C_out))
        db        = Σ_{n, y, x} dZ                    (shape (1, C_out))
        d_patches = dZ Wᵀ, folded back onto the padded input and cropped → dX

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
    """

    type_name = "conv2d"

    def __init__(
        self,
        n_out: int,
        kernel_shape,
        activation="linear",
        stride=1,
        pad="same",
        weight_init: str = "xavier_uniform",
    ) -> None:
        super().__init__()
        if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
            raise ValueError(f"Conv2D: n_out must be a positive int, got {n_out!r}")
        self.n_out = int(n_out)
        self.kernel_shape = as_pair(kernel_shape, "kernel_shape", "Conv2D")
        self.stride = as_pair(stride, "stride", "Conv2D")
        self.pad = resolve_pad(pad, self.kernel_shape, "Conv2D")
        try:
            self.activation = initialize_activation(activation)
            self.init_weights = initialize_weights(weight_init, activation=self.activation.name)
        except UnknownNameError as error:  # say which layer got the unknown name
            raise UnknownNameError(f"Conv2D: {error}") from None
        self.weight_init = weight_init

    def _init_parameters(self, X_shape: tuple[int, ...], dtype=None) -> None:
        """Create W, b and zero gradients for NHWC inputs of shape X_shape (N may be -1)."""
        self.n_in = int(X_shape[3])
        dtype = self._param_dtype(np.float64 if dtype is None else dtype)
        W = self.init_weights(self.kernel_shape + (self.n_in, self.n_out), rng=self.rng, dtype=dtype)
        b = np.zeros((1, self.n_out), dtype=dtype)
        self.parameters = OrderedDict(W=W, b=b)
        self.gradients = OrderedDict(W=np.zeros_like(W), b=np.zeros_like(b))
        self.cache = OrderedDict(X_shape=[], patches=[], Z=[])

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=4)
        if not self.built:
            self._init_parameters(X.shape, X.dtype)
        self._check_channels(X.shape)
        W, b = self._param("W", X.dtype), self._param("b", X.dtype)
        n_samples = X.shape[0]
        out_height, out_width = self._output_hw(X.shape)

        patches = extract_patches(
            pad_spatial(X, self.pad), self.kernel_shape, self.stride, (out_height, out_width)
        )
        Z = (patches @ W.reshape(-1, self.n_out) + b).reshape(
            n_samples, out_height, out_width, self.n_out
        )

        if retain_derived:
            self.cache["X_shape"], self.cache["patches"], self.cache["Z"] = X.shape, patches, Z
        return self.activation(Z)

    def backward(self, dLdY: np.ndarray) -> np.ndarray:
        (Z,) = self._require_cache("Z")
        dLdY = self._check_upstream(dLdY, Z.shape)
        return self.backward_pre_activation(self.activation.backward(Z, dLdY))

    def backward_pre_activation(self, dZ: np.ndarray) -> np.ndarray:
        """Backward from dL/dZ, the gradient before the activation."""
        X_shape, patches = self._require_cache("X_shape", "patches")
        W = self._param("W", patches.dtype)
        (ph, pw), (kh, kw) = self.pad, self.kernel_shape
        n_samples, height, width, channels = X_shape
        dZ_rows = dZ.reshape(-1, self.n_out)

        self.gradients["W"] = (patches.T @ dZ_rows).reshape(W.shape)
        self.gradients["b"] = dZ_rows.sum(axis=0, keepdims=True)
        d_patches = (dZ_rows @ W.reshape(-1, self.n_out).T).reshape(
            dZ.shape[:3] + (kh, kw, channels)
        )
        padded_shape = (n_samples, height + 2 * ph, width + 2 * pw, channels)
        dX_pad = fold_patches(d_patches, padded_shape, self.kernel_shape, self.stride)
        return dX_pad[:, ph : ph + height, pw : pw + width, :]

    def _check_channels(self, X_shape) -> None:
        if X_shape[3] != self.n_in:
            raise ValueError(
                f"{self.name}: expected {self.n_in} input channels (NHWC, built from the "
                f"first input), got input of shape {X_shape}"
            )

    def _output_hw(self, X_shape) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_shape, self.stride, self.pad
        return (
            output_size(X_shape[1], kh, ph, sh, self.name, "height"),
            output_size(X_shape[2], kw, pw, sw, self.name, "width"),
        )

    def output_shape(self, input_shape):
        return self._output_hw((None,) + tuple(input_shape)) + (self.n_out,)

    def get_config(self) -> dict:
        return {
            "type": self.type_name,
            "n_out": self.n_out,
            "kernel_shape": list(self.kernel_shape),
            "activation": self.activation.name,
            "stride": list(self.stride),
            "pad": list(self.pad),
            "weight_init": self.weight_init,
        }

    def _expected_input(self) -> str:
        return "(batch, height, width, channels)"
