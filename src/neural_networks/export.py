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
  (H, W, C): a Flatten of an "nchw" tensor.

A layer that needs the native layout gets it from ``GraphBuilder.native`` (a Transpose
for "nchw", a Gather of the features for "chw_flat"); the graph's output always is.

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

    def node(self, op_type: str, inputs: list[str], hint: str, **attributes) -> str:
        """Append one node with one output; returns the output's name."""
        output = self._unique(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output,
                                                     **attributes))
        return output

    # -- layouts ----------------------------------------------------------------------------
    def native(self, tensor: Tensor, hint: str = "native") -> Tensor:
        """The tensor in the library's own layout (a no-op when it already is)."""
        if tensor.layout == "nchw":
            name = self.node("Transpose", [tensor.name], f"{hint}_nhwc", perm=list(TO_CHANNELS_LAST))
        elif tensor.layout == "chw_flat":
            # feature (h, w, c) of the native vector sits at (c·H + h)·W + w: one Gather
            height, width, channels = tensor.image_shape
            order = np.arange(channels * height * width).reshape(channels, height, width)
            indices = self.constant(f"{hint}_hwc_order", order.transpose(1, 2, 0).reshape(-1))
            name = self.node("Gather", [tensor.name, indices], f"{hint}_hwc", axis=1)
        else:
            return tensor
        return Tensor(name)

    def channels_first(self, tensor: Tensor, image_shape, hint: str) -> Tensor:
        """An image tensor as NCHW (the one Transpose of a CNN, at its first image layer)."""
        if tensor.layout == "nchw":
            return tensor
        tensor = self.native(tensor, hint)
        name = self.node("Transpose", [tensor.name], f"{hint}_nchw", perm=list(TO_CHANNELS_FIRST))
        return Tensor(name, "nchw", tuple(int(n) for n in image_shape))


# -- activations ---------------------------------------------------------------------------------
ActivationExporter = Callable[[GraphBuilder, Tensor, str], Tensor]
#: activation name → function(builder, tensor, hint) → tensor
ACTIVATION_EXPORTERS: dict[str, ActivationExporter] = {}


def register_activation(name: str):
    """Decorator: ``fn(builder, tensor, hint) -> Tensor`` exports activation ``name``."""
    def register(function: ActivationExporter) -> ActivationExporter:
        ACTIVATION_EXPORTERS[name] = function
        return function
    return register


def _elementwise(op_type: str) -> ActivationExporter:
    """An activation applied to every element: indifferent to the layout."""
    def export(builder: GraphBuilder, tensor: Tensor, hint: str) -> Tensor:
        return replace(tensor, name=builder.node(op_type, [tensor.name], f"{hint}_{op_type.lower()}"))
    return export


for _name, _op in {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "arctan": "Atan"}.items():
    register_activation(_name)(_elementwise(_op))


@register_activation("linear")
def _linear(builder: GraphBuilder, tensor: Tensor, hint: str) -> Tensor:
    return tensor


@register_activation("softmax")
def _softmax(builder: GraphBuilder, tensor: Tensor, hint: str) -> Tensor:
    """Softmax over the native last axis: the channels, axis 1 of an NCHW image; over a
    flat vector the order of its features does not matter."""
    axis = 1 if tensor.layout == "nchw" else -1
    return replace(tensor, name=builder.node("Softmax", [tensor.name], f"{hint}_softmax", axis=axis))


def export_activation(builder: GraphBuilder, layer, tensor: Tensor, hint: str) -> Tensor:
    activation = layer.activation
    name = getattr(activation, "name", None)
    if name not in ACTIVATION_EXPORTERS:
        raise ExportError(f"{layer.name}: activation {name!r} ({type(activation).__name__}) has no "
                          f"ONNX mapping; exportable: {sorted(ACTIVATION_EXPORTERS)}")
    return ACTIVATION_EXPORTERS[name](builder, tensor, hint)


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
        Y = builder.node("Flatten", [x.name], f"{hint}_flatten", axis=1)
        if x.layout == "nchw":
            return Tensor(Y, "chw_flat", x.image_shape)
        return Tensor(Y)
    x = builder.native(x, hint)
    shape = [1, -1] if layer.keep_dim == -1 else [-1, int(layer.input_shape[-1])]
    return Tensor(builder.node("Reshape", [x.name, builder.constant(f"{hint}_shape", shape)],
                               f"{hint}_reshape"))


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
    if builder.nodes and builder.nodes[-1].output[0] == tensor.name:
        builder.nodes[-1].output[0] = "output"  # the last node writes the graph's output
        builder.nodes[-1].name = "output"
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
    "ExportError",
    "OnnxUnavailableError",
    "GraphBuilder",
    "Tensor",
]
