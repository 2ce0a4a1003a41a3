"""Preset architectures sized from a dataset's input shape and number of classes.

Every pooling layer here passes ``stride=2``: ``Pool2D(2)`` alone pools with stride 1 (the
course's default), where Keras and PyTorch default the stride to the kernel size.

>>> [type(layer).__name__ for layer in preset_layers("MLP", (4,), 3)]
['FullyConnected', 'FullyConnected', 'FullyConnected']
"""

from __future__ import annotations

import math

from .errors import ShapeError
from .layers import Conv2D, Flatten, FullyConnected, Layer, Pool2D
from .utils.validation import check_int, lookup


def _image_shape(preset: str, input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ShapeError(
            f"model preset {preset!r} needs images (height, width, channels); this dataset has "
            f"samples of shape {tuple(input_shape)}: use --model mlp"
        )
    return tuple(input_shape)


def mlp(input_shape, n_classes: int) -> list[Layer]:
    """Flatten → FC 128 relu → FC 64 relu → FC n_classes softmax."""
    layers = [Flatten()] if len(input_shape) > 1 else []
    return layers + [
        FullyConnected(128, "relu", weight_init="he_uniform"),
        FullyConnected(64, "relu", weight_init="he_uniform"),
        FullyConnected(n_classes, "softmax"),
    ]


def cnn(input_shape, n_classes: int) -> list[Layer]:
    """A small CNN: (conv3×3 16 relu → maxpool 2) → (conv3×3 32 relu → maxpool 2) → FC 64 relu → softmax."""
    height, width, _ = _image_shape("cnn", input_shape)
    if min(height, width) < 4:
        raise ShapeError(f"model preset 'cnn' needs images of at least 4×4, got {height}×{width}")
    return [
        Conv2D(16, 3, "relu", weight_init="he_uniform"), Pool2D(2, stride=2),
        Conv2D(32, 3, "relu", weight_init="he_uniform"), Pool2D(2, stride=2),
        Flatten(),
        FullyConnected(64, "relu", weight_init="he_uniform"),
        FullyConnected(n_classes, "softmax"),
    ]


def lenet(input_shape, n_classes: int) -> list[Layer]:
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
        FullyConnected(n_classes, "softmax"),
    ]


def vgg(input_shape, n_classes: int) -> list[Layer]:
    """A small VGG-style CNN: blocks of two conv3×3 relu and a maxpool 2 (32, then 64, then
    128 channels, as many blocks as the image size allows, at most 3) → FC 128 relu → softmax."""
    height, width, _ = _image_shape("vgg", input_shape)
    n_blocks = min(3, int(math.log2(min(height, width))) - 1)
    if n_blocks < 1:
        raise ShapeError(f"model preset 'vgg' needs images of at least 4×4, got {height}×{width}")
    layers: list[Layer] = []
    for block in range(n_blocks):
        channels = 32 * 2**block
        layers += [Conv2D(channels, 3, "relu", weight_init="he_uniform"),
                   Conv2D(channels, 3, "relu", weight_init="he_uniform"),
                   Pool2D(2, stride=2)]
    return layers + [Flatten(), FullyConnected(128, "relu", weight_init="he_uniform"),
                     FullyConnected(n_classes, "softmax")]


PRESETS = {"mlp": mlp, "cnn": cnn, "lenet": lenet, "vgg": vgg}


def preset_layers(name: str, input_shape, n_classes: int) -> list[Layer]:
    """The layers of preset ``name`` (any case) for samples of ``input_shape`` and
    ``n_classes`` classes; an unknown name is an ``UnknownNameError`` listing the presets,
    a preset that cannot take that input shape a ``ShapeError``."""
    build = lookup(PRESETS, name, "model preset")
    return build(tuple(input_shape), check_int("n_classes", n_classes, low=1))
