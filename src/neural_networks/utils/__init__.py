"""Utilities: AttrDict, one-hot labels, gradient checks and feature scaling."""

from .data_processing import center, normalize, standardize
from .data_structures import AttrDict, integers_to_one_hot
from .grad_check import check_gradients, numerical_gradient

__all__ = [
    "AttrDict",
    "integers_to_one_hot",
    "check_gradients",
    "numerical_gradient",
    "center",
    "normalize",
    "standardize",
]
