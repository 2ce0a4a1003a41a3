"""Layers: fully connected, convolution, pooling, flatten, normalisation, dropout and recurrent.

Every layer takes and returns NumPy arrays, keeps the floating dtype it is given,
builds its parameters lazily from its first input and never modifies an input.
"""

from __future__ import annotations

import inspect

from ..errors import unknown_name
from .base import Layer
from .convolution import Conv2D
from .dropout import Dropout
from .flatten import Flatten
from .fully_connected import FullyConnected
from .normalization import BatchNorm1D, BatchNorm2D, LayerNorm
from .pooling import Pool2D
from .recurrent import GRU, LSTM, RNN, Elman

LAYERS: dict[str, type[Layer]] = {
    "fully_connected": FullyConnected,
    "conv2d": Conv2D,
    "pool2d": Pool2D,
    "flatten": Flatten,
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    "elman": Elman,
    "batchnorm1d": BatchNorm1D,
    "batchnorm2d": BatchNorm2D,
    "layernorm": LayerNorm,
    "dropout": Dropout,
}


def initialize_layer(
    name: str,
    activation=None,
    weight_init=None,
    n_out=None,
    kernel_shape=None,
    stride=None,
    pad=None,
    mode=None,
    keep_dim="first",
    return_sequences=None,
    eps=None,
    momentum=None,
    n_in=None,
    p=None,
) -> Layer:
    """Build a layer by name ("fully_connected", "conv2d", "pool2d", "flatten", "rnn",
    "lstm", "gru", "elman", "batchnorm1d", "batchnorm2d", "layernorm", "dropout"), with
    the course factory's signature (2025's ``eps`` and ``momentum`` for "batchnorm1d"
    included), plus ``return_sequences`` for the recurrent layers and ``p`` for dropout.

    Arguments that are None keep the class defaults (the course passed None for every
    argument it was not given, which broke them); arguments a layer type does not take
    must be None (``keep_dim`` is only read by "flatten"). The course's 2025 factory
    defaulted to ``eps=1e-8, momentum=0.95``; here an unspecified ``eps`` / ``momentum``
    keeps BatchNorm's own defaults (1e-5 and 0.9, PyTorch's).
    """
    if name not in LAYERS:
        raise unknown_name("layer", name, LAYERS)
    given = {"activation": activation, "weight_init": weight_init, "n_out": n_out,
             "kernel_shape": kernel_shape, "stride": stride, "pad": pad, "mode": mode,
             "return_sequences": return_sequences, "eps": eps, "momentum": momentum,
             "n_in": n_in, "p": p}
    if name == "flatten":
        given["keep_dim"] = keep_dim
    accepted = inspect.signature(LAYERS[name]).parameters
    foreign = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if foreign:
        raise TypeError(f"initialize_layer({name!r}): a {name} layer takes no {foreign}")
    return LAYERS[name](**{k: v for k, v in given.items() if v is not None})


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
    "RNN",
    "LSTM",
    "GRU",
    "Elman",
    "BatchNorm1D",
    "BatchNorm2D",
    "LayerNorm",
    "Dropout",
    "initialize_layer",
    "layer_from_config",
    "LAYERS",
]
