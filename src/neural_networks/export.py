"""Export a built NeuralNetwork to ONNX, so it runs where models run in production.

``to_onnx(model)`` builds the graph with ``onnx.helper`` (no other framework in the path)
from a registry: every layer type maps to standard ONNX operators by one small function
in ``LAYER_EXPORTERS`` (keyed by the layer's ``type_name``), every activation by one in
``ACTIVATION_EXPORTERS`` (keyed by its ``name``). The graph has

* one input ``"input"`` of the model's dtype and sample shape with a symbolic batch
  axis ``"batch"`` (images NHWC, as ``predict`` takes them), and
* one output ``"output"``: what ``predict`` returns, in the same layout.

ONNX convolutions and poolings are channels-first (NCHW). Rather than a Transpose
around every one of them, the graph transposes once, at the first convolution or
pooling, and stays channels-first; the first fully connected layer after a Flatten
takes its weight rows permuted from (H, W, C) to (C, H, W) order instead of a second
Transpose. A tensor is therefore tracked with its *layout*:

* ``"native"``: the library's own layout (what the layer's NumPy forward sees);
* ``"nchw"``: an NHWC image stored channels-first;
* ``"chw_flat"``: a flattened image whose features are in (C, H, W) order instead of
  (H, W, C): a Flatten of an "nchw" tensor;
* ``"time_major"``: a batch-first sequence (N, T, d) stored as (T, N, d), as ONNX's
  RNN, LSTM and GRU (layout 0) take and give them, so that stacked recurrent layers
  need no Transpose between them.

A layer that needs the native layout gets it from ``GraphBuilder.native`` (a Transpose
for "nchw" and "time_major", a Gather of the features for "chw_flat"); the graph's
output always is. Layouts that only permute axes compose: ``permute_native`` gives any
permutation of the native tensor with at most one Transpose.

Model metadata (class names, the standardisation fitted at training time, ...) go into
``metadata_props``, one JSON string per key.

>>> import numpy as np
>>> from neural_networks import NeuralNetwork
>>> from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
>>> model = NeuralNetwork([Conv2D(4, 3, "relu"), Pool2D(2, stride=2), Flatten(),
...                        FullyConnected(3, "softmax")], seed=0, input_shape=(6, 6, 1))
>>> graph = to_onnx(model).graph
>>> [node.op_type for node in graph.node]
['Transpose', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm', 'Softmax']
>>> [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
['batch', 6, 6, 1]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import InvalidParameterError, NeuralNetworksError
from .utils.data_structures import jsonable
from .utils.files import atomic_file

#: the oldest opset exported to: Softmax takes one axis from opset 13 on
MIN_OPSET = 13
DEFAULT_OPSET = 17
INSTALL_HINT = 'pip install "neural-networks[onnx]"'

#: NHWC → NCHW and back, as Transpose permutations
TO_CHANNELS_FIRST = (0, 3, 1, 2)
TO_CHANNELS_LAST = (0, 2, 3, 1)
#: (N, T, d) ↔ (T, N, d)
SWAP_BATCH_AND_TIME = (1, 0, 2)
#: stored = native.transpose(perm), for the layouts that only permute axes
LAYOUT_PERMUTATIONS = {"nchw": TO_CHANNELS_FIRST, "time_major": SWAP_BATCH_AND_TIME}
#: the oldest opsets with Gelu and with LayerNormalization
GELU_OPSET = 20
LAYER_NORMALIZATION_OPSET = 17


class ExportError(NeuralNetworksError, ValueError):
    """A model cannot be exported: a layer or activation with no ONNX mapping, or an
    unbuilt model."""


class OnnxUnavailableError(ExportError, ImportError):
    """The ``onnx`` package (the ``onnx`` extra) is not installed."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailableError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


# -- the tensors flowing through the graph -----------------------------------------------------
@dataclass(frozen=True)
class Tensor:
    """A value of the graph: its name and how it is laid out (see the module docstring).

    ``image_shape`` is the native (H, W, C) of the image for "nchw" and "chw_flat"."""

    name: str
    layout: str = "native"
    image_shape: tuple[int, int, int] | None = None


class GraphBuilder:
    """Collects nodes and initializers; hands out unique value names."""

    def __init__(self, dtype: np.dtype, opset: int) -> None:
        self.onnx = _onnx()
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()
        self._scalars: dict[float, str] = {}

    def _unique(self, hint: str) -> str:
        name, count = hint, 1
        while name in self._names or name in ("input", "output"):
            name, count = f"{hint}_{count}", count + 1
        self._names.add(name)
        return name

    def constant(self, hint: str, array: np.ndarray) -> str:
        """An initializer: floating arrays in the model's dtype, integer arrays as int64."""
        array = np.asarray(array)
        array = array.astype(self.dtype if array.dtype.kind == "f" else np.int64)
        name = self._unique(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        """A 0-d floating initializer in the model's dtype, shared by every node that uses
        the same value."""
        key = float(value)
        if key not in self._scalars:
            self._scalars[key] = self.constant("scalar", np.array(key))
        return self._scalars[key]

    def node(self, op_type: str, inputs: list[str], hint: str, **attributes) -> str:
        """Append one node with one output; returns the output's name."""
        return self.node_outputs(op_type, inputs, [hint], **attributes)[0]

    def node_outputs(self, op_type: str, inputs: list[str], hints: list[str | None],
                     **attributes) -> list[str]:
        """Append one node with several outputs; a hint None leaves that (optional)
        output out (its name is ""). Returns the output names."""
        outputs = ["" if hint is None else self._unique(hint) for hint in hints]
        name = next(output for output in outputs if output)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name, **attributes))
        return outputs

    # -- layouts ----------------------------------------------------------------------------
    def native(self, tensor: Tensor, hint: str = "native") -> Tensor:
        """The tensor in the library's own layout (a no-op when it already is)."""
        if tensor.layout == "chw_flat":
            # feature (h, w, c) of the native vector sits at (c·H + h)·W + w: one Gather
            height, width, channels = tensor.image_shape
            order = np.arange(channels * height * width).reshape(channels, height, width)
            indices = self.constant(f"{hint}_hwc_order", order.transpose(1, 2, 0).reshape(-1))
            return Tensor(self.node("Gather", [tensor.name, indices], f"{hint}_hwc", axis=1))
        if tensor.layout in LAYOUT_PERMUTATIONS:
            rank = len(LAYOUT_PERMUTATIONS[tensor.layout])
            return Tensor(self.permute_native(tensor, tuple(range(rank)), f"{hint}_native"))
        return tensor

    def permute_native(self, tensor: Tensor, perm: tuple[int, ...], hint: str) -> str:
        """The name of ``native(tensor).transpose(perm)``, with at most one Transpose: the
        stored tensor is native.transpose(P), so the result is stored.transpose(P⁻¹[perm])
        (none at all when that is the identity)."""
        if tensor.layout == "chw_flat":
            tensor = self.native(tensor, hint)
        stored_perm = LAYOUT_PERMUTATIONS.get(tensor.layout, tuple(range(len(perm))))
        inverse = np.argsort(stored_perm)
        composed = [int(inverse[axis]) for axis in perm]
        if composed == sorted(composed):
            return tensor.name
        return self.node("Transpose", [tensor.name], hint, perm=composed)

    def channels_first(self, tensor: Tensor, image_shape, hint: str) -> Tensor:
        """An image tensor as NCHW (the one Transpose of a CNN, at its first image layer)."""
        if tensor.layout == "nchw":
            return tensor
        name = self.permute_native(tensor, TO_CHANNELS_FIRST, f"{hint}_nchw")
        return Tensor(name, "nchw", tuple(int(n) for n in image_shape))

    def time_major(self, tensor: Tensor, hint: str) -> Tensor:
        """A batch-first sequence (N, T, d) as (T, N, d), what ONNX's recurrent operators
        take (a no-op after another recurrent layer)."""
        if tensor.layout == "time_major":
            return tensor
        return Tensor(self.permute_native(tensor, SWAP_BATCH_AND_TIME, f"{hint}_time_major"), "time_major")

    def squeeze(self, name: str, axis: int, hint: str) -> str:
        """Squeeze one axis (the axes are an input from opset 13 on)."""
        return self.node("Squeeze", [name, self.constant(f"{hint}_axes", [axis])], hint)


# -- activations ---------------------------------------------------------------------------------
ActivationExporter = Callable[[GraphBuilder, object, Tensor, str], Tensor]
#: activation name → function(builder, activation, tensor, hint) → tensor
ACTIVATION_EXPORTERS: dict[str, ActivationExporter] = {}


def register_activation(name: str):
    """Decorator: ``fn(builder, activation, tensor, hint) -> Tensor`` exports activation
    ``name`` (``activation`` is the instance, for its settings)."""
    def register(function: ActivationExporter) -> ActivationExporter:
        ACTIVATION_EXPORTERS[name] = function
        return function
    return register


def _elementwise(op_type: str, **settings: str) -> ActivationExporter:
    """An activation applied to every element (indifferent to the layout) by one operator;
    ``settings`` maps the operator's attributes to the activation's settings."""
    def export(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
        attributes = {key: float(getattr(activation, setting)) for key, setting in settings.items()}
        return replace(tensor, name=builder.node(op_type, [tensor.name], f"{hint}_{op_type.lower()}",
                                                 **attributes))
    return export


for _name, _op in {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "arctan": "Atan"}.items():
    register_activation(_name)(_elementwise(_op))
# ONNX's LeakyRelu and Elu switch at x < 0, ours at z > 0: both give 0 at 0
register_activation("leaky_relu")(_elementwise("LeakyRelu", alpha="negative_slope"))
register_activation("elu")(_elementwise("Elu", alpha="alpha"))


@register_activation("linear")
def _linear(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
    return tensor


@register_activation("softmax")
def _softmax(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
    """Softmax over the native last axis: the channels, axis 1 of an NCHW image; over a
    flat vector the order of its features does not matter."""
    axis = 1 if tensor.layout == "nchw" else -1
    return replace(tensor, name=builder.node("Softmax", [tensor.name], f"{hint}_softmax", axis=axis))


@register_activation("silu")
def _silu(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
    """x·Sigmoid(x)."""
    sigmoid = builder.node("Sigmoid", [tensor.name], f"{hint}_sigmoid")
    return replace(tensor, name=builder.node("Mul", [tensor.name, sigmoid], f"{hint}_silu"))


@register_activation("gelu")
def _gelu(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
    """Gelu(approximate) from opset 20 on; before it the formula:

    exact:  0.5·x·(1 + Erf(x/√2))
    tanh:   0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³)))     (x³ as x·x·x)
    """
    x = tensor.name
    if builder.opset >= GELU_OPSET:
        return replace(tensor, name=builder.node("Gelu", [x], f"{hint}_gelu",
                                                 approximate=activation.approximate))
    if activation.approximate == "tanh":
        cube = builder.node("Mul", [builder.node("Mul", [x, x], f"{hint}_square"), x], f"{hint}_cube")
        inner = builder.node("Add", [x, builder.node("Mul", [cube, builder.scalar(0.044715)],
                                                     f"{hint}_cubic_term")], f"{hint}_inner")
        scaled = builder.node("Mul", [inner, builder.scalar(math.sqrt(2 / math.pi))], f"{hint}_u")
        curve = builder.node("Tanh", [scaled], f"{hint}_tanh")
    else:
        scaled = builder.node("Mul", [x, builder.scalar(1 / math.sqrt(2))], f"{hint}_scaled")
        curve = builder.node("Erf", [scaled], f"{hint}_erf")
    one_plus = builder.node("Add", [curve, builder.scalar(1.0)], f"{hint}_one_plus")
    product = builder.node("Mul", [x, one_plus], f"{hint}_product")
    return replace(tensor, name=builder.node("Mul", [product, builder.scalar(0.5)], f"{hint}_gelu"))


@register_activation("softplus")
def _softplus(builder: GraphBuilder, activation, tensor: Tensor, hint: str) -> Tensor:
    """Ours: x where β·x > threshold, else Softplus(β·x)/β: Where(Greater(β·x, threshold),
    x, Softplus(β·x)/β) (the multiplication and division left out when β = 1)."""
    x = tensor.name
    beta = activation.beta
    scaled = x if beta == 1 else builder.node("Mul", [x, builder.scalar(beta)], f"{hint}_beta_x")
    smooth = builder.node("Softplus", [scaled], f"{hint}_softplus")
    if beta != 1:
        smooth = builder.node("Div", [smooth, builder.scalar(beta)], f"{hint}_over_beta")
    linear = builder.node("Greater", [scaled, builder.scalar(activation.threshold)], f"{hint}_linear")
    return replace(tensor, name=builder.node("Where", [linear, x, smooth], f"{hint}_softplus_out"))


def _activation_name(activation) -> str | None:
    return getattr(activation, "name", None)


def export_activation(builder: GraphBuilder, layer, tensor: Tensor, hint: str) -> Tensor:
    activation = layer.activation
    name = _activation_name(activation)
    if name not in ACTIVATION_EXPORTERS:
        raise ExportError(f"{layer.name}: activation {name!r} ({type(activation).__name__}) has no "
                          f"ONNX mapping; exportable: {sorted(ACTIVATION_EXPORTERS)}")
    return ACTIVATION_EXPORTERS[name](builder, activation, tensor, hint)


# -- layers ----------------------------------------------------------------------------------------
LayerExporter = Callable[[GraphBuilder, object, Tensor, str], Tensor]
#: layer type_name → function(builder, layer, tensor, hint) → tensor
LAYER_EXPORTERS: dict[str, LayerExporter] = {}


def register_layer(type_name: str):
    """Decorator: ``fn(builder, layer, tensor, hint) -> Tensor`` exports layers of ``type_name``."""
    def register(function: LayerExporter) -> LayerExporter:
        LAYER_EXPORTERS[type_name] = function
        return function
    return register


@register_layer("fully_connected")
def _fully_connected(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """Gemm: Z = X W + b (W (n_in, n_out) as stored, transB=0), then the activation.

    After a Flatten of an NCHW image the input's features are in (C, H, W) order, so
    W's rows are permuted to that order: no Transpose back to NHWC."""
    W = np.asarray(layer.parameters["W"])
    if x.layout == "chw_flat":
        height, width, channels = x.image_shape
        W = W.reshape(height, width, channels, -1).transpose(2, 0, 1, 3).reshape(W.shape)
        x = Tensor(x.name)  # Z no longer depends on how the input's features were ordered
    x = builder.native(x, hint)
    Z = builder.node("Gemm", [x.name, builder.constant(f"{hint}_W", W),
                              builder.constant(f"{hint}_b", layer.parameters["b"].reshape(-1))],
                     f"{hint}_gemm")
    return export_activation(builder, layer, Tensor(Z), hint)


@register_layer("conv2d")
def _conv2d(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """Conv (cross-correlation, as ours) on NCHW with W stored OIHW, then the activation."""
    x = builder.channels_first(x, layer.input_shape, hint)
    W = np.asarray(layer.parameters["W"]).transpose(3, 2, 0, 1)  # (kh, kw, C_in, C_out) → OIHW
    (ph, pw) = layer.pad
    Z = builder.node("Conv", [x.name, builder.constant(f"{hint}_W", W),
                              builder.constant(f"{hint}_b", layer.parameters["b"].reshape(-1))],
                     f"{hint}_conv", kernel_shape=list(layer.kernel_shape),
                     strides=list(layer.stride), pads=[ph, pw, ph, pw], dilations=[1, 1], group=1)
    out = Tensor(Z, "nchw", tuple(layer.output_shape(layer.input_shape)))
    return export_activation(builder, layer, out, hint)


@register_layer("pool2d")
def _pool2d(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """MaxPool (padding never wins a maximum: as our −inf padding) or AveragePool with
    count_include_pad=1 (the padding counts: every window divides by kh·kw, as ours)."""
    x = builder.channels_first(x, layer.input_shape, hint)
    (ph, pw) = layer.pad
    attributes = dict(kernel_shape=list(layer.kernel_shape), strides=list(layer.stride),
                      pads=[ph, pw, ph, pw], ceil_mode=0)
    if layer.mode == "max":
        Y = builder.node("MaxPool", [x.name], f"{hint}_maxpool", **attributes)
    else:
        Y = builder.node("AveragePool", [x.name], f"{hint}_avgpool", count_include_pad=1, **attributes)
    return Tensor(Y, "nchw", tuple(layer.output_shape(layer.input_shape)))


@register_layer("flatten")
def _flatten(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """keep_dim="first": Flatten(axis=1); an NCHW image becomes a "chw_flat" vector.
    keep_dim="last" and -1 reshape the native tensor to (−1, d_last) and (1, −1)."""
    if layer.keep_dim == "first":
        if len(layer.input_shape) == 1:
            return x  # (N, d) stays (N, d)
        if x.layout == "time_major":
            x = builder.native(x, hint)  # a sequence's steps stay batch-first in the vector
        Y = builder.node("Flatten", [x.name], f"{hint}_flatten", axis=1)
        if x.layout == "nchw":
            return Tensor(Y, "chw_flat", x.image_shape)
        return Tensor(Y)
    x = builder.native(x, hint)
    shape = [1, -1] if layer.keep_dim == -1 else [-1, int(layer.input_shape[-1])]
    return Tensor(builder.node("Reshape", [x.name, builder.constant(f"{hint}_shape", shape)],
                               f"{hint}_reshape"))


# -- recurrent layers ------------------------------------------------------------------------------
#: ONNX's gate order as indices into torch's (ours): LSTM i,f,g,o → i,o,f,c; GRU r,z,n → z,r,h
ONNX_GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}


def _gates_reordered(M: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """M's columns (g blocks of n, torch's gate order) with the blocks in ``order``."""
    M = np.asarray(M)
    blocks = M.reshape(M.shape[0], len(order), -1)
    return blocks[:, list(order)].reshape(M.shape)


def _recurrent_weights(builder: GraphBuilder, order, W_ih, W_hh, b_ih, b_hh, hint: str) -> list[str]:
    """ONNX's W [1, g·n, d], R [1, g·n, n] (ours transposed, gates in ONNX's order) and
    B [1, 2·g·n] = [input-side biases, hidden-side biases]."""
    W = _gates_reordered(W_ih, order).T[None]
    R = _gates_reordered(W_hh, order).T[None]
    B = np.concatenate([_gates_reordered(b_ih, order), _gates_reordered(b_hh, order)], axis=1)
    return [builder.constant(f"{hint}_W", W), builder.constant(f"{hint}_R", R),
            builder.constant(f"{hint}_B", B)]


def _recurrent_node(builder: GraphBuilder, op_type: str, x: Tensor, weights: list[str],
                    return_sequences: bool, hint: str, **attributes) -> Tensor:
    """One ONNX RNN/LSTM/GRU with layout 0 (ONNX Runtime's CPU kernels refuse layout 1) on
    the time-major sequence, zero initial state. Its outputs Y (T, 1, N, n) and
    Y_h (1, N, n) lose the directions axis: every state as a "time_major" (N, T, n)
    sequence, or the last state (N, n)."""
    x = builder.time_major(x, hint)
    inputs = [x.name, *weights]
    prefix = f"{hint}_{op_type.lower()}"
    if return_sequences:
        (Y,) = builder.node_outputs(op_type, inputs, [f"{prefix}_Y"], **attributes)
        return Tensor(builder.squeeze(Y, 1, f"{prefix}_states"), "time_major")
    _, Y_h = builder.node_outputs(op_type, inputs, [None, f"{prefix}_Y_h"], **attributes)
    return Tensor(builder.squeeze(Y_h, 0, f"{prefix}_last_state"))


#: our activation name → (ONNX recurrent activation, its alpha and beta from our settings):
#: the activations that ONNX's RNN defines and ONNX Runtime runs
RNN_ACTIVATIONS: dict[str, tuple[str, Callable | None]] = {
    "tanh": ("Tanh", None),
    "relu": ("Relu", None),
    "sigmoid": ("Sigmoid", None),
    "linear": ("Affine", lambda activation: ([1.0], [0.0])),
    "leaky_relu": ("LeakyRelu", lambda activation: ([activation.negative_slope], None)),
    "elu": ("Elu", lambda activation: ([activation.alpha], None)),
}


def _rnn_activation(layer) -> dict:
    """The RNN node's activations (and activation_alpha / _beta) for ``layer.activation``."""
    name = _activation_name(layer.activation)
    if name not in RNN_ACTIVATIONS:
        raise ExportError(f"{layer.name}: activation {name!r} has no ONNX RNN equivalent; ONNX's "
                          f"RNN operator exports {sorted(RNN_ACTIVATIONS)}")
    op_name, settings = RNN_ACTIVATIONS[name]
    attributes = {"activations": [op_name]}
    if settings is not None:
        alpha, beta = settings(layer.activation)
        attributes["activation_alpha"] = [float(a) for a in alpha]
        if beta is not None:
            attributes["activation_beta"] = [float(b) for b in beta]
    return attributes


@register_layer("rnn")
@register_layer("lstm")
@register_layer("gru")
def _recurrent(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """RNN (activations [Tanh] or [Relu]), LSTM, GRU (linear_before_reset=1: the reset gate
    multiplies h W_hn + b_hn, as torch's): ONNX's operators with our parameters
    transposed and their gate blocks reordered, biases [b_ih, b_hh]."""
    kind = layer.type_name
    weights = _recurrent_weights(builder, ONNX_GATE_ORDER[kind], *(layer.parameters[key] for key in
                                                                   ("W_ih", "W_hh", "b_ih", "b_hh")), hint)
    attributes = {"hidden_size": layer.n_out}
    if kind == "rnn":
        attributes.update(_rnn_activation(layer))
    elif kind == "gru":
        attributes["linear_before_reset"] = 1
    return _recurrent_node(builder, kind.upper(), x, weights, layer.return_sequences, hint, **attributes)


@register_layer("elman")
def _elman(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """An RNN with W_ih = W, W_hh = U, b_ih = b, b_hh = 0 on the input (N, d, T) moved to
    (T, N, d); its activation must be one ONNX's RNN defines (else an ExportError)."""
    attributes = {"hidden_size": layer.n_out, **_rnn_activation(layer)}
    b = np.asarray(layer.parameters["b"])
    weights = _recurrent_weights(builder, (0,), layer.parameters["W"], layer.parameters["U"], b,
                                 np.zeros_like(b), hint)
    steps = Tensor(builder.permute_native(x, (2, 0, 1), f"{hint}_time_major"), "time_major")
    return _recurrent_node(builder, "RNN", steps, weights, False, hint, **attributes)


# -- normalisation and dropout -----------------------------------------------------------------------
def _chw_order(vector: np.ndarray, image_shape) -> np.ndarray:
    """A per-feature vector of a flattened (H, W, C) image, in (C, H, W) order."""
    height, width, channels = image_shape
    return np.asarray(vector).reshape(height, width, channels).transpose(2, 0, 1).reshape(-1)


@register_layer("batchnorm1d")
@register_layer("batchnorm2d")
def _batch_norm(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """BatchNormalization in inference mode (what predict does):
    Y = γ·(X − running_mean)/√(running_var + ε) + β over the channels, the native last
    axis, which ONNX wants at axis 1:

    * an image (N, H, W, C): channels first (the CNN's one Transpose), stays NCHW;
    * a flattened image in (C, H, W) order: the statistics permuted to that order;
    * vectors (N, C): as they are; sequences (N, T, C): moved to (N, C, T) and back.
    """
    statistics = [np.asarray(layer.parameters["gamma"]).reshape(-1),
                  np.asarray(layer.parameters["beta"]).reshape(-1),
                  np.asarray(layer.buffers["running_mean"]).reshape(-1),
                  np.asarray(layer.buffers["running_var"]).reshape(-1)]
    rank = len(layer.input_shape) + 1
    if x.layout == "chw_flat":
        statistics = [_chw_order(vector, x.image_shape) for vector in statistics]
    elif rank == 4:
        x = builder.channels_first(x, layer.input_shape, hint)
    elif rank == 3:
        x = Tensor(builder.permute_native(x, (0, 2, 1), f"{hint}_channels_first"))
    elif rank != 2:
        raise ExportError(f"{layer.name}: BatchNormalization of rank-{rank} inputs has no mapping")
    names = [builder.constant(f"{hint}_{key}", vector)
             for key, vector in zip(("scale", "bias", "mean", "var"), statistics)]
    Y = builder.node("BatchNormalization", [x.name, *names], f"{hint}_batchnorm",
                     epsilon=float(layer.eps))
    if rank == 3:
        return Tensor(builder.node("Transpose", [Y], f"{hint}_channels_last", perm=[0, 2, 1]))
    return replace(x, name=Y)


@register_layer("layernorm")
def _layer_norm(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """LayerNormalization(axis=−1, epsilon) over the native last axis (opset 17 on), with
    the statistics stashed in the model's dtype. A time-major sequence keeps its layout
    (its last axis is the features); a flattened image in (C, H, W) order takes γ and β
    in that order; an NCHW image goes back to NHWC first."""
    if builder.opset < LAYER_NORMALIZATION_OPSET:
        raise ExportError(f"{layer.name}: LayerNormalization needs opset "
                          f"{LAYER_NORMALIZATION_OPSET} or newer, got opset {builder.opset}")
    gamma = np.asarray(layer.parameters["gamma"]).reshape(-1)
    beta = np.asarray(layer.parameters["beta"]).reshape(-1)
    if x.layout == "chw_flat":
        gamma, beta = _chw_order(gamma, x.image_shape), _chw_order(beta, x.image_shape)
    elif x.layout != "time_major":
        x = builder.native(x, hint)
    Y = builder.node("LayerNormalization", [x.name, builder.constant(f"{hint}_scale", gamma),
                                            builder.constant(f"{hint}_bias", beta)],
                     f"{hint}_layernorm", axis=-1, epsilon=float(layer.eps),
                     stash_type=builder.onnx.helper.np_dtype_to_tensor_dtype(builder.dtype))
    return replace(x, name=Y)


@register_layer("dropout")
def _dropout(builder: GraphBuilder, layer, x: Tensor, hint: str) -> Tensor:
    """Omitted: predict runs in evaluation mode, where dropout is the identity."""
    return x


# -- the model --------------------------------------------------------------------------------------
def _check_opset(opset) -> int:
    newest = _onnx().defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise InvalidParameterError(
            f"opset: expected an int from {MIN_OPSET} to {newest} (the newest this onnx knows), "
            f"got {opset!r}")
    return int(opset)


def _metadata_props(model) -> dict[str, str]:

    props = {}
    for key, value in model.metadata.items():
        try:
            props[str(key)] = json.dumps(jsonable(value))
        except (TypeError, ValueError) as error:
            raise ExportError(f"model.metadata[{key!r}] cannot be written as JSON ({error})") from None
    return props


def _output_shape(model) -> list | None:
    """("batch", *sample output shape); None (left to shape inference) after a Flatten that
    merges the batch axis into the features (keep_dim "last" or -1)."""
    if any(getattr(layer, "type_name", None) == "flatten" and layer.keep_dim != "first"
           for layer in model.layers):
        return None
    return ["batch", *model.output_shape(model.input_shape)]


def _infer_output_shape(proto) -> None:
    """Declare the output's shape as ONNX shape inference finds it (dims that depend on
    the batch size left unnamed)."""
    onnx = _onnx()
    output = proto.graph.output[0]
    if output.type.tensor_type.HasField("shape"):
        return
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True).graph.output[0]
    for dim in inferred.type.tensor_type.shape.dim:
        if dim.HasField("dim_param") and dim.dim_param != "batch":
            dim.ClearField("dim_param")
    output.CopyFrom(inferred)


def build_graph(model, opset: int = DEFAULT_OPSET):
    """The model's ``onnx.GraphProto`` (see ``to_onnx``)."""
    onnx = _onnx()
    if not model.layers or not model.built or not all(layer.built for layer in model.layers):
        raise ExportError("to_onnx: the model is not built yet; fit it or call "
                          "model.build(input_shape) first")
    builder = GraphBuilder(model.dtype, opset)
    tensor = Tensor("input")
    for index, layer in enumerate(model.layers):
        kind = getattr(layer, "type_name", None)
        if kind not in LAYER_EXPORTERS:
            raise ExportError(f"to_onnx: {layer.name} (type {kind!r}) has no ONNX mapping; "
                              f"exportable layer types: {sorted(LAYER_EXPORTERS)}")
        tensor = LAYER_EXPORTERS[kind](builder, layer, tensor, f"layer{index}")
    tensor = builder.native(tensor, "output")
    if builder.nodes and tensor.name in builder.nodes[-1].output:
        last = builder.nodes[-1]  # the last node writes the graph's output
        last.output[list(last.output).index(tensor.name)] = "output"
        last.name = "output"
    else:  # no node at all (a Flatten of vectors) or the output is an earlier value
        builder.nodes.append(onnx.helper.make_node("Identity", [tensor.name], ["output"], name="output"))
    elem_type = onnx.helper.np_dtype_to_tensor_dtype(model.dtype)
    return onnx.helper.make_graph(
        builder.nodes, "neural_networks",
        [onnx.helper.make_tensor_value_info("input", elem_type, ["batch", *model.input_shape])],
        [onnx.helper.make_tensor_value_info("output", elem_type, _output_shape(model))],
        initializer=builder.initializers,
    )


def to_onnx(model, path=None, *, opset: int = DEFAULT_OPSET):
    """The built ``model`` as an ``onnx.ModelProto``; also written to ``path`` (atomically:
    a crash leaves any previous file intact) when given.

    Input ``"input"``: (batch, *model.input_shape) in the model's dtype; output
    ``"output"``: what ``model.predict`` returns. ``opset`` is the ONNX operator set
    version (13 or newer). Layers and activations without an ONNX mapping raise
    ``ExportError`` naming them; add one with ``register_layer`` / ``register_activation``.
    """
    onnx = _onnx()
    from ._version import __version__

    opset = _check_opset(opset)
    opset_ids = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        build_graph(model, opset), opset_imports=opset_ids, producer_name="neural_networks",
        producer_version=__version__,
        # the oldest IR version that carries this opset, so older runtimes load the file
        ir_version=onnx.helper.find_min_ir_version_for(opset_ids),
        doc_string="Exported by neural_networks: input 'input' (batch, *sample shape; images "
                   "NHWC), output 'output' = NeuralNetwork.predict.",
    )
    _infer_output_shape(proto)
    onnx.helper.set_model_props(proto, _metadata_props(model))
    if path is not None:
        with atomic_file(Path(path)) as handle:
            handle.write(proto.SerializeToString())
    return proto


__all__ = [
    "to_onnx",
    "build_graph",
    "register_layer",
    "register_activation",
    "LAYER_EXPORTERS",
    "ACTIVATION_EXPORTERS",
    "RNN_ACTIVATIONS",
    "ExportError",
    "OnnxUnavailableError",
    "GraphBuilder",
    "Tensor",
]
