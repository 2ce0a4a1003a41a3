"""neural_networks: a deep-learning library in plain NumPy.

Every layer has an explicit forward and backward pass that agrees with PyTorch;
images are NHWC, float32 by default.
"""

from . import activations, layers, losses, utils, weights
from ._version import __version__
from .errors import (FormatError, InvalidParameterError, NeuralNetworksError, ShapeError,
                     TrainingDivergedError, UnknownNameError)
from .models import NeuralNetwork, initialize_model
from .training import History, Trainer

load = NeuralNetwork.load


__all__ = [
    "activations",
    "layers",
    "losses",
    "utils",
    "weights",
    "NeuralNetwork",
    "Trainer",
    "History",
    "initialize_model",
    "load",
    "NeuralNetworksError",
    "InvalidParameterError",
    "FormatError",
    "TrainingDivergedError",
    "ShapeError",
    "UnknownNameError",
    "__version__",
]
