"""Exceptions raised by neural_networks."""


class UnknownNameError(ValueError, NotImplementedError):
    """A factory got a name it does not know.

    A ``ValueError`` (the library's convention) that is also a
    ``NotImplementedError`` (what the original course factories raised).
    """


class ShapeError(ValueError):
    """An array has a rank or size a layer, loss or model cannot take."""


class FormatError(ValueError):
    """A saved model or checkpoint file is not one this library can load safely."""


def unknown_name(argument: str, got, accepted) -> UnknownNameError:
    """Build the error for an unknown name, listing what is accepted."""
    return UnknownNameError(f"unknown {argument} {got!r}; expected one of {sorted(accepted)}")


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient became nan or inf during training."""
