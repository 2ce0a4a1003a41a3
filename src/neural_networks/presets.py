"""Preset architectures sized from a dataset's input shape and its outputs.

A preset ends in a FullyConnected output layer of ``n_outputs`` units with
``output_activation``: "softmax" over ``n_outputs`` classes for classification (the
default), "linear" over ``n_outputs`` target values for regression.

Every pooling layer here passes ``stride=2``: ``Pool2D(2)`` alone pools with stride 1 (the
course's default), where Keras and PyTorch default the stride to the kernel size.

>>> [type(layer).__name__ for layer in preset_layers("MLP", (4,), 3)]
['FullyConnected', 'FullyConnected', 'FullyConnected']
>>> [(type(layer).__name__, layer.n_out) for layer in preset_layers("gru", (20, 1), 1, "linear")]
[('GRU', 64), ('FullyConnected', 1)]
"""

from __future__ import annotations

import math

from .errors import ShapeError
from .layers import GRU, BatchNorm2D, Conv2D, Dropout, Flatten, FullyConnected, Layer, Pool2D
from .utils.validation import StrOptions, check_int, lookup, validate_params

#: Training settings a preset needs other than the command line's defaults (keys of
#: ``cli.TRAIN_DEFAULTS``); a flag or config value still wins. The GRU learns sinewave
#: within a few epochs at this rate (its test MSE is far below repeating the last value).
TRAINING_DEFAULTS = {"gru": {"epochs": 5, "lr": 1e-2}}

#: the preset to suggest for samples of each rank
_PRESET_FOR_RANK = {1: "mlp", 2: "gru", 3: "cnn"}


def _wrong_rank(preset: str, needs: str, input_shape) -> ShapeError:
    hint = _PRESET_FOR_RANK.get(len(input_shape), "mlp")
    return ShapeError(f"model preset {preset!r} needs {needs}; this dataset has samples of shape "
                      f"{tuple(input_shape)}: use --model {hint}")


def _image_shape(preset: str, input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise _wrong_rank(preset, "images (height, width, channels)", input_shape)
    return tuple(input_shape)


def mlp(input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """Flatten → FC 128 relu → FC 64 relu → FC n_outputs (softmax)."""
    layers = [Flatten()] if len(input_shape) > 1 else []
    return layers + [
        FullyConnected(128, "relu", weight_init="he_uniform"),
        FullyConnected(64, "relu", weight_init="he_uniform"),
        FullyConnected(n_outputs, output_activation),
    ]


def cnn(input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """A small CNN: (conv3×3 16 relu → maxpool 2) → (conv3×3 32 relu → maxpool 2) → FC 64 relu → softmax."""
    height, width, _ = _image_shape("cnn", input_shape)
    if min(height, width) < 4:
        raise ShapeError(f"model preset 'cnn' needs images of at least 4×4, got {height}×{width}")
    return [
        Conv2D(16, 3, "relu", weight_init="he_uniform"), Pool2D(2, stride=2),
        Conv2D(32, 3, "relu", weight_init="he_uniform"), Pool2D(2, stride=2),
        Flatten(),
        FullyConnected(64, "relu", weight_init="he_uniform"),
        FullyConnected(n_outputs, output_activation),
    ]


def lenet(input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """LeNet-5 as in the course: conv 6@5×5 same → maxpool 2 → conv 16@5×5 → maxpool 2 →
    FC 120 → FC 84 → softmax, relu and He init; the second convolution pads "same" when
    the image is too small for a "valid" one (e.g. 8×8 digits)."""
    height, width, _ = _image_shape("lenet", input_shape)
    if min(height, width) < 4:
        raise ShapeError(f"model preset 'lenet' needs images of at least 4×4, got {height}×{width}")
    second_pad = "valid" if min(height, width) // 2 >= 10 else "same"
    return [
        Conv2D(6, 5, "relu", pad="same", weight_init="he_uniform"), Pool2D(2, stride=2),
        Conv2D(16, 5, "relu", pad=second_pad, weight_init="he_uniform"), Pool2D(2, stride=2),
        Flatten(),
        FullyConnected(120, "relu", weight_init="he_uniform"),
        FullyConnected(84, "relu", weight_init="he_uniform"),
        FullyConnected(n_outputs, output_activation),
    ]


def vgg(input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """A small VGG-style CNN: blocks of two (conv3×3 relu → BatchNorm2D) and a maxpool 2
    (32, then 64, then 128 channels, as many blocks as the image size allows, at most 3) →
    FC 128 relu → Dropout 0.5 → softmax. (BatchNorm after the relu: the library has no
    stand-alone activation layer, and either order trains well.)"""
    height, width, _ = _image_shape("vgg", input_shape)
    n_blocks = min(3, int(math.log2(min(height, width))) - 1)
    if n_blocks < 1:
        raise ShapeError(f"model preset 'vgg' needs images of at least 4×4, got {height}×{width}")
    layers: list[Layer] = []
    for block in range(n_blocks):
        channels = 32 * 2**block
        for _ in range(2):
            layers += [Conv2D(channels, 3, "relu", weight_init="he_uniform"), BatchNorm2D()]
        layers.append(Pool2D(2, stride=2))
    return layers + [Flatten(), FullyConnected(128, "relu", weight_init="he_uniform"), Dropout(0.5),
                     FullyConnected(n_outputs, output_activation)]


def gru(input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """For sequences (time steps, features): GRU 64 (its last hidden state) → FC n_outputs."""
    if len(input_shape) != 2:
        raise _wrong_rank("gru", "sequences (time steps, features)", input_shape)
    return [GRU(64), FullyConnected(n_outputs, output_activation)]


PRESETS = {"mlp": mlp, "cnn": cnn, "lenet": lenet, "vgg": vgg, "gru": gru}

_OUTPUT_ACTIVATIONS = {"output_activation": [StrOptions({"softmax", "linear"})]}


def preset_layers(name: str, input_shape, n_outputs: int, output_activation: str = "softmax") -> list[Layer]:
    """The layers of preset ``name`` (any case) for samples of ``input_shape``, ending in
    ``n_outputs`` units with ``output_activation`` ("softmax": that many classes, the
    default; "linear": that many regression targets). An unknown name is an
    ``UnknownNameError`` listing the presets, a preset that cannot take that input shape
    a ``ShapeError``."""
    build = lookup(PRESETS, name, "model preset")
    validate_params("preset_layers", _OUTPUT_ACTIVATIONS, output_activation=output_activation)
    return build(tuple(input_shape), check_int("n_outputs", n_outputs, low=1), output_activation)


def training_defaults(name: str) -> dict:
    """The training settings preset ``name`` overrides (see ``TRAINING_DEFAULTS``)."""
    lookup(PRESETS, name, "model preset")
    return dict(TRAINING_DEFAULTS.get(name.strip().lower().replace("-", "_"), {}))
