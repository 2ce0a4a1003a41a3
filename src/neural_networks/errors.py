"""The library's exceptions.

Every error the library raises on purpose derives from ``NeuralNetworksError``, so the
command line can tell a user's mistake (one line, exit code 2) from a bug (a traceback).
Each is also the built-in exception a caller would catch for that kind of mistake.
"""


class NeuralNetworksError(Exception):
    """Base of every error neural_networks raises on purpose."""


class InvalidParameterError(NeuralNetworksError, ValueError, TypeError):
    """An argument has the wrong type or a value outside what it accepts.

    Both a ``ValueError`` and a ``TypeError`` (as scikit-learn's), so code that catches
    either keeps working whichever of the two a check used to raise.
    """


class UnknownNameError(InvalidParameterError, NotImplementedError):
    """A factory got a name it does not know.

    Also a ``NotImplementedError``: what the original course factories raised.
    """


class ShapeError(NeuralNetworksError, ValueError):
    """An array has a rank or size a layer, loss or model cannot take."""


class FormatError(NeuralNetworksError, ValueError):
    """A saved model or checkpoint file is not one this library can load safely."""


class NotBuiltError(NeuralNetworksError, ValueError, RuntimeError):
    """A layer or model was asked for something that needs its parameters first
    (``backward`` before ``forward``, ``save`` before ``build``)."""


class TrainingDivergedError(NeuralNetworksError, FloatingPointError):
    """The loss or a gradient became nan or inf during training."""


class TrainingStalledWarning(UserWarning):
    """The loss has stayed at its clipping ceiling for several epochs: a divergence that
    clipping keeps finite, or inputs far too large for the initial weights."""


class DistributedError(NeuralNetworksError, RuntimeError):
    """Distributed training cannot start (no mpi4py, not launched by ``mpiexec``) or its
    processes disagree (different parameters on two ranks)."""


def unknown_name(argument: str, got, accepted) -> UnknownNameError:
    """Build the error for an unknown name, listing what is accepted."""
    return UnknownNameError(f"unknown {argument} {got!r}; expected one of {sorted(accepted)}")
