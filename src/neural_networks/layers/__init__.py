"""Layers: fully connected, 2-D convolution, 2-D pooling and flatten.

Every layer takes and returns NumPy arrays, keeps the floating dtype it is given,
builds its parameters lazily from its first input and never modifies an input.
"""

from __future__ import annotations

from ..errors import unknown_name
from .base import Layer
from .convolution import Conv2D
from .flatten import Flatten
from .fully_connected import FullyConnected
from .pooling import Pool2D

LAYERS: dict[str, type[Layer]] = {
    "fully_connected": FullyConnected,
    "conv2d": Conv2D,
    "pool2d": Pool2D,
    "flatten": Flatten,
}


def initialize_layer(name: str, **kwargs) -> Layer:
    """Build a layer by name ("fully_connected", "conv2d", "pool2d", "flatten").

    Keyword arguments that are None or left out keep the class defaults (the
    course factory passed None for every argument it was not given).
    """
    if name not in LAYERS:
        raise unknown_name("layer", name, LAYERS)
    settings = {key: value for key, value in kwargs.items() if value is not None}
    try:
        return LAYERS[name](**settings)
    except TypeError as error:
        if "argument" in str(error):  # an unexpected or missing keyword, not a bad value
            raise TypeError(f"initialize_layer({name!r}): {error}") from None
        raise


def layer_from_config(config: dict) -> Layer:
    """Rebuild a layer from ``layer.get_config()``."""
    settings = dict(config)
    return initialize_layer(settings.pop("type"), **settings)


__all__ = [
    "Layer",
    "FullyConnected",
    "Conv2D",
    "Pool2D",
    "Flatten",
    "initialize_layer",
    "layer_from_config",
    "LAYERS",
]
