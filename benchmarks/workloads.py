"""The three benchmark networks, built identically in this library and in PyTorch.

A workload is a list of layer specs::

    ("conv", C_out)        3×3 convolution, stride 1, pad 1 ("same"), ReLU
    ("pool",)              max pooling, kernel 2, stride 2
    ("flatten",)
    ("fc", n_out, act)     fully connected with activation act ("relu" or "softmax")
    ("bn",)                BatchNorm2D over the channels (torch: BatchNorm2d, momentum 0.1)
    ("lstm", n)            LSTM of n units on (N, T, d) sequences, its last hidden state

The last layer is ``("fc", 10, "softmax")`` trained with cross-entropy (torch: a
``Linear`` and ``F.cross_entropy``, which applies log-softmax itself). Images are
NHWC here and NCHW in torch; torch gets this library's initial weights
(transposed/permuted), so both compute the same function. The two run in separate
processes: the weights travel through an ``.npz`` file (``save_weights`` /
``load_weights``).

NumPy is imported inside the functions: the parent process of ``python -m benchmarks``
imports this module for the workloads' shapes only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    name: str
    batch: int
    input_shape: tuple[int, ...]  # one sample, NHWC for images
    layers: tuple[tuple, ...]
    description: str


WORKLOADS = {
    "mlp": Workload(
        "mlp", 128, (784,),
        (("fc", 256, "relu"), ("fc", 128, "relu"), ("fc", 10, "softmax")),
        "784 → 256 relu → 128 relu → 10 softmax",
    ),
    "cnn": Workload(
        "cnn", 64, (28, 28, 1),
        (("conv", 16), ("pool",), ("conv", 32), ("pool",), ("flatten",),
         ("fc", 128, "relu"), ("fc", 10, "softmax")),
        "28×28×1 → conv16 → pool → conv32 → pool → fc128 → fc10",
    ),
    "cifar": Workload(
        "cifar", 64, (32, 32, 3),
        (("conv", 32), ("conv", 32), ("pool",), ("conv", 64), ("pool",), ("flatten",),
         ("fc", 256, "relu"), ("fc", 10, "softmax")),
        "32×32×3 → conv32 → conv32 → pool → conv64 → pool → fc256 → fc10",
    ),
    "cifar_bn": Workload(
        "cifar_bn", 64, (32, 32, 3),
        (("conv", 32), ("bn",), ("conv", 32), ("bn",), ("pool",), ("conv", 64), ("bn",), ("pool",),
         ("flatten",), ("fc", 256, "relu"), ("fc", 10, "softmax")),
        "cifar with BatchNorm2D after each convolution",
    ),
    "lstm": Workload(
        "lstm", 64, (40, 8),
        (("lstm", 128), ("fc", 10, "softmax")),
        "(T=40, d=8) → LSTM 128 → fc10",
    ),
}


def layer_shapes(workload: Workload) -> list[tuple[tuple, tuple[int, ...], tuple[int, ...]]]:
    """(spec, input shape, output shape) of every layer, for one sample."""
    shapes, shape = [], tuple(workload.input_shape)
    for spec in workload.layers:
        if spec[0] == "conv":
            out = shape[:2] + (spec[1],)
        elif spec[0] == "pool":
            out = (shape[0] // 2, shape[1] // 2, shape[2])
        elif spec[0] == "flatten":
            out = (math.prod(shape),)
        elif spec[0] == "bn":
            out = shape
        else:
            out = (spec[1],)
        shapes.append((spec, shape, out))
        shape = out
    return shapes


def matmul_flops(workload: Workload) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) of the convolutions and matrix products, per sample.

    forward: Σ 2·(outputs)·(fan-in); backward: dW costs as much as the forward and so
    does dX, except for the first layer, whose dX nobody needs. Element-wise work
    (activations, pooling, loss, update) is not counted.
    """
    forward = backward = 0
    for index, (spec, shape_in, shape_out) in enumerate(layer_shapes(workload)):
        if spec[0] == "conv":
            flops = 2 * math.prod(shape_out) * 9 * shape_in[2]
        elif spec[0] == "lstm":  # per step, the input and recurrent products of 4 gates
            steps, features = shape_in
            flops = 2 * steps * (features + spec[1]) * 4 * spec[1]
        elif spec[0] == "fc":
            flops = 2 * shape_in[0] * shape_out[0]
        else:
            continue
        forward += flops
        backward += flops if index == 0 else 2 * flops
    return {"forward": forward, "train": forward + backward}


# -- this library ------------------------------------------------------------------------
def build_ours(workload: Workload, seed: int = 0):
    from neural_networks.layers import LSTM, BatchNorm2D, Conv2D, Flatten, FullyConnected, Pool2D
    from neural_networks.models import NeuralNetwork
    from neural_networks.optimizers import SGD

    layers = []
    for spec in workload.layers:
        if spec[0] == "conv":
            layers.append(Conv2D(spec[1], 3, activation="relu", stride=1, pad="same"))
        elif spec[0] == "pool":
            layers.append(Pool2D(2, mode="max", stride=2))
        elif spec[0] == "flatten":
            layers.append(Flatten())
        elif spec[0] == "bn":
            layers.append(BatchNorm2D())
        elif spec[0] == "lstm":
            layers.append(LSTM(spec[1]))
        else:
            layers.append(FullyConnected(spec[1], activation=spec[2]))
    model = NeuralNetwork(layers, loss="cross_entropy", optimizer=SGD(lr=0.01), seed=seed,
                          dtype="float32")
    model.build(workload.input_shape)
    return model


def save_weights(model, path: str) -> None:
    """Every layer's parameters, as ``{index}.{name}`` arrays of one ``.npz`` file."""
    import numpy as np

    np.savez(path, **{f"{index}.{key}": value for index, layer in enumerate(model.layers)
                      for key, value in layer.parameters.items()})


def load_weights(path: str) -> dict[int, dict]:
    """{layer index: {parameter name: array}} from ``save_weights``' file."""
    import numpy as np

    weights: dict[int, dict] = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            index, key = name.split(".", 1)
            weights.setdefault(int(index), {})[key] = archive[name]
    return weights


def make_batch(workload: Workload, batch: int, seed: int = 0):
    """Random inputs (float32, NHWC) and class ids, and the one-hot targets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch,) + workload.input_shape, dtype=np.float32)
    labels = rng.integers(0, 10, size=batch)
    Y = np.zeros((batch, 10), dtype=np.float32)
    Y[np.arange(batch), labels] = 1
    return X, labels, Y


# -- PyTorch -----------------------------------------------------------------------------
def build_torch(workload: Workload, weights: dict[int, dict]):
    """The same network in torch (NCHW), initialised with our weights
    (``load_weights``: {layer index: {"W": ..., "b": ...}}, our layouts)."""
    import numpy as np
    import torch
    from torch import nn

    class LastHidden(nn.Module):
        """torch's LSTM returning its last hidden state (N, H), as ours does."""

        def __init__(self, lstm):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[1][0][0]

    modules, image_shape = [], None
    for index, (spec, shape_in, _) in enumerate(layer_shapes(workload)):
        parameters = weights.get(index, {})
        if spec[0] == "conv":
            conv = nn.Conv2d(shape_in[2], spec[1], 3, stride=1, padding=1)
            W = parameters["W"]  # (kh, kw, C_in, C_out) → (C_out, C_in, kh, kw)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1)))
            conv.bias.data = torch.from_numpy(parameters["b"].reshape(-1).copy())
            modules += [conv, nn.ReLU()]
        elif spec[0] == "pool":
            modules.append(nn.MaxPool2d(2, 2))
        elif spec[0] == "flatten":
            modules.append(nn.Flatten())
            image_shape = shape_in
        elif spec[0] == "bn":
            norm = nn.BatchNorm2d(shape_in[2], eps=1e-5, momentum=0.1)  # our momentum 0.9
            norm.weight.data = torch.from_numpy(parameters["gamma"].reshape(-1).copy())
            norm.bias.data = torch.from_numpy(parameters["beta"].reshape(-1).copy())
            modules.append(norm)
        elif spec[0] == "lstm":
            lstm = nn.LSTM(shape_in[1], spec[1], batch_first=True)
            for ours, theirs in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0"),
                                 ("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
                value = parameters[ours]  # ours (in, 4n) and (1, 4n); torch (4n, in) and (4n,)
                getattr(lstm, theirs).data = torch.from_numpy(
                    np.ascontiguousarray(value.T if ours.startswith("W") else value.reshape(-1)))
            modules.append(LastHidden(lstm))
        else:
            linear = nn.Linear(shape_in[0], spec[1])
            W = parameters["W"]  # (n_in, n_out) → (n_out, n_in)
            if modules and isinstance(modules[-1], nn.Flatten):
                # our flatten is (h, w, c)-ordered, torch's is (c, h, w)-ordered
                h, w, c = image_shape
                W = W.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, h * w * c)
            else:
                W = W.T
            linear.weight.data = torch.from_numpy(np.ascontiguousarray(W))
            linear.bias.data = torch.from_numpy(parameters["b"].reshape(-1).copy())
            modules.append(linear)
            if spec[2] == "relu":
                modules.append(nn.ReLU())
    model = nn.Sequential(*modules)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return model, optimizer


def torch_batch(X, labels):
    import numpy as np
    import torch

    if X.ndim == 4:
        X = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    return torch.from_numpy(X.copy()), torch.from_numpy(labels.astype(np.int64))
