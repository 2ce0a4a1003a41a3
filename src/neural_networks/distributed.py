"""Data-parallel training: where the Trainer talks to the other processes, if any.

A *strategy* is what ``Trainer`` (and ``NeuralNetwork.fit(..., distributed=...)``) calls
at a few named points of the epoch loop:

==========================  =====================================================
``shard(rows)``             this process's rows of a global batch
``step(model, compute,..)`` one forward/backward on the shard, then the gradients
                            of every process averaged (one ``Allreduce``)
``begin(trainer)``          every process starts from rank 0's state
``synchronize(model, e)``   at an epoch's end: running statistics from rank 0 (and
                            the optional check that every rank holds the same model)
``evaluate(model, X, Y)``   loss and accuracy computed on shards, summed
``together()``              a block of local work that stops every process, at its
                            end, if it raised on one
``deferred()``              a block of local work whose failure stops every process
                            at the next collective call (the next step, ...)
``any(flag)``               True on every process if it is True on one
``is_root``                 whether this process writes files and shows progress
==========================  =====================================================

``Local`` (the default) is one process and makes each of these the identity, so a run
without ``distributed`` is exactly what it would be without this module. ``MPI`` runs
one process per MPI rank (``mpiexec -n K python script.py``):

* every rank holds the whole data set; ``batch_size`` is the **global** batch; each rank
  takes its contiguous share of every global batch of the shared, seeded permutation
  (ranks below ``N mod K`` get one row more);
* each rank backpropagates the mean loss over its n_r rows, giving g_r; one ``Allreduce``
  over one flat buffer sums n_r·g_r (plus the loss, accuracy and row counts, and a
  failure flag), and every rank divides by N = Σ n_r. With the loss a mean over the
  batch, (1/N) Σ_r n_r g_r is the gradient of the whole global batch, so a K-rank run
  equals a one-process run with the same global batch, uneven last batch included, up to
  the order in which float sums are taken (≈ 1e-16 relative per step);
* before the first step rank 0's state (parameters, buffers, generators, optimizer,
  history, callbacks; after a resume, what rank 0 read from the checkpoint) is broadcast;
* layers with random masks (dropout) draw them per rank: rank r's layer generators are
  rank 0's ``bit_generator.jumped(r)`` (far-apart streams), so masks are independent
  across ranks. Layers with batch
  statistics (batch normalisation) normalise each rank's shard by its own statistics, as
  PyTorch's DistributedDataParallel without SyncBatchNorm; their running statistics
  (``model.named_buffers()``) are broadcast from rank 0 at each epoch's end, before
  validation. Networks without such layers match one-process training exactly;
* a failure on one rank (an exception in the forward or backward pass, the optimizer
  step, validation, a callback, the progress output, writing or reading a checkpoint)
  does not leave the other ranks waiting in a collective call: the failing rank keeps
  its exception and still takes part in the next collective call, which carries a
  failure flag, and then every rank raises that exception (same type and message; the
  lowest failing rank's when several fail).

>>> strategy = get_strategy(None)
>>> strategy.is_root, strategy.size, strategy.shard(slice(0, 5))
(True, 1, slice(0, 5, None))
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from typing import Callable

import numpy as np

from .errors import DistributedError, InvalidParameterError
from .serialization import flatten_state, unflatten_state

__all__ = ["Strategy", "Local", "MPI", "get_strategy", "share_bounds", "INSTALL_HINT", "LAUNCH_HINT"]

INSTALL_HINT = 'pip install "neural-networks[mpi]"  (mpi4py and the mpich wheel, which brings mpiexec)'
LAUNCH_HINT = ("mpiexec -n K python your_script.py  (or mpiexec -n K neural-networks train "
               "--distributed mpi)")
#: environment variables that MPI launchers (MPICH/Intel hydra, Open MPI, PMIx, Slurm) set
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
#: debug switch for the per-epoch identity check when the strategy is chosen by name
CHECK_VARIABLE = "NEURAL_NETWORKS_MPI_CHECK"
_FAILURE = (Exception, KeyboardInterrupt)


def share_bounds(n_rows: int, rank: int, size: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous share of ``n_rows`` rows split over
    ``size`` ranks: the first ``n_rows mod size`` ranks take one row more.

    >>> [share_bounds(7, rank, 3) for rank in range(3)]
    [(0, 3), (3, 5), (5, 7)]
    >>> share_bounds(1, 1, 2)  # a batch smaller than the number of ranks
    (1, 1)
    """
    base, extra = divmod(int(n_rows), size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Strategy(ABC):
    """The hooks the Trainer calls (see the module docstring); ``rank`` and ``size`` say
    which of how many processes this is."""

    rank = 0
    size = 1

    @property
    def is_root(self) -> bool:
        """True on the process that shows progress and writes logs, checkpoints and models."""
        return self.rank == 0

    def bounds(self, n_rows: int) -> tuple[int, int]:
        """[start, stop) of this rank's contiguous share of ``n_rows`` rows."""
        return share_bounds(n_rows, self.rank, self.size)

    def shard(self, rows):
        """This rank's part of a global batch's row selector (a slice or an index array)."""
        if isinstance(rows, slice):
            start, stop = self.bounds(rows.stop - rows.start)
            return slice(rows.start + start, rows.start + stop)
        start, stop = self.bounds(len(rows))
        return rows[start:stop]

    @abstractmethod
    def step(self, model, compute: Callable, X_batch, Y_batch) -> tuple[float, float | None, int]:
        """``compute(X_batch, Y_batch)`` runs forward and backward on this process's rows
        and returns (loss, accuracy); leave the global batch's gradients in the model and
        return the global batch's (loss, accuracy, number of rows)."""

    @abstractmethod
    def begin(self, trainer) -> None:
        """Before the first step: make every process continue from the same state."""

    @abstractmethod
    def synchronize(self, model, epoch: int) -> None:
        """After an epoch's last step, before validation."""

    @abstractmethod
    def evaluate(self, model, X, Y, batch_size: int = 256) -> dict:
        """``model.evaluate`` of the whole (X, Y), on every process."""

    @abstractmethod
    def together(self):
        """A context for local work: a failure on one process is raised on all at its end."""

    @abstractmethod
    def deferred(self):
        """A context for local work: a failure on one process is raised on all at the
        next collective call."""

    @abstractmethod
    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is True on at least one process."""

    @abstractmethod
    def broadcast(self, tree):
        """The root process's state tree (JSON values and arrays), on every process."""


class Local(Strategy):
    """One process: every hook is the identity."""

    def shard(self, rows):
        return rows

    def step(self, model, compute: Callable, X_batch, Y_batch) -> tuple[float, float | None, int]:
        loss, batch_accuracy = compute(X_batch, Y_batch)
        return loss, batch_accuracy, len(X_batch)

    def begin(self, trainer) -> None:
        pass

    def synchronize(self, model, epoch: int) -> None:
        pass

    def evaluate(self, model, X, Y, batch_size: int = 256) -> dict:
        return model.evaluate(X, Y, batch_size=batch_size)

    def together(self):
        return nullcontext()

    def deferred(self):
        return nullcontext()

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def broadcast(self, tree):
        return tree


# the slots after the gradients in the step buffer
_LOSS_SUM, _CORRECT, _N_SCORED, _N_ROWS, _FAILED = range(5)
_TOTALS = 5


class MPI(Strategy):
    """One process per MPI rank; gradients averaged by one ``Allreduce`` per step.

    Parameters
    ----------
    comm : mpi4py communicator or None
        Default ``MPI.COMM_WORLD``, which must come from ``mpiexec`` (a process started
        without it is refused with the command to use). Passing a communicator (even
        ``COMM_SELF``) skips that check.
    check : bool or None
        After every epoch, verify with an allreduced checksum that every rank holds the
        same parameters, running statistics and data-order generator (a debug aid: one
        hash of every array per epoch). None reads the environment variable
        ``NEURAL_NETWORKS_MPI_CHECK`` (set to 1 to check).

    ``allreduce_seconds`` and ``steps`` count the time spent in the gradient
    ``Allreduce`` and the number of steps, for measurements.
    """

    def __init__(self, comm=None, check: bool | None = None) -> None:
        try:
            from mpi4py import MPI as mpi
        except ImportError:
            raise DistributedError(f"distributed='mpi' needs mpi4py and an MPI library: {INSTALL_HINT}; "
                                   f"then launch with {LAUNCH_HINT}") from None
        if comm is None:
            comm = mpi.COMM_WORLD
            if comm.Get_size() == 1 and not any(name in os.environ for name in _LAUNCHER_VARIABLES):
                raise DistributedError(f"distributed='mpi': this process was not started by mpiexec; launch "
                                       f"with {LAUNCH_HINT}, or train without distributed in one process")
        if check is None:
            check = os.environ.get(CHECK_VARIABLE, "").strip() not in ("", "0")
        self._mpi, self.comm = mpi, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.check = bool(check)
        self.allreduce_seconds, self.steps = 0.0, 0
        self._buffer, self._layout, self._views = None, None, {}
        #: this rank's failure not yet agreed on by every rank
        self._pending: BaseException | None = None

    # -- the training step ----------------------------------------------------------------------
    def step(self, model, compute: Callable, X_batch, Y_batch) -> tuple[float, float | None, int]:
        """Forward and backward on this rank's rows, then every rank's gradients summed as
        n_r·g_r and divided by N, with the loss and accuracy, in ONE Allreduce. Returns the
        global batch's (loss, accuracy, N); every rank raises if any rank's compute did."""
        buffer = self._step_buffer(model)
        totals = buffer[-_TOTALS:]
        n_rows = len(X_batch)
        totals[:] = 0
        try:
            if self._pending is not None:  # failed since the last collective call: only tell
                pass
            elif not n_rows:  # a global batch smaller than the number of ranks leaves some without rows
                buffer[:-_TOTALS] = 0
            else:
                loss, batch_accuracy = compute(X_batch, Y_batch)
                for name, gradient in model.named_gradients().items():
                    np.multiply(gradient, n_rows, out=self._views[name])
                totals[_LOSS_SUM] = loss * n_rows
                if batch_accuracy is not None:
                    totals[_CORRECT], totals[_N_SCORED] = batch_accuracy * n_rows, n_rows
                totals[_N_ROWS] = n_rows
        except _FAILURE as caught:
            self._pending = caught
        totals[_FAILED] = self._pending is not None
        started = time.perf_counter()
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        self.allreduce_seconds += time.perf_counter() - started
        self.steps += 1
        self._raise_if_failed(int(totals[_FAILED]))
        n_global = int(round(float(totals[_N_ROWS])))
        for name, gradient in model.named_gradients().items():
            np.divide(self._views[name], n_global, out=gradient)
        scored = float(totals[_N_SCORED]) > 0
        return (float(totals[_LOSS_SUM]) / n_global,
                float(totals[_CORRECT]) / n_global if scored else None, n_global)

    def _step_buffer(self, model) -> np.ndarray:
        """One flat buffer: every gradient (in the model's dtype) then the totals; each
        gradient's part is a view shaped like it."""
        gradients = model.named_gradients()
        layout = [(name, gradient.shape) for name, gradient in gradients.items()]
        dtype = np.result_type(*gradients.values()) if gradients else np.dtype(np.float64)
        if self._buffer is None or self._buffer.dtype != dtype or self._layout != layout:
            size = sum(gradient.size for gradient in gradients.values())
            self._buffer, self._layout, self._views = np.zeros(size + _TOTALS, dtype), layout, {}
            offset = 0
            for name, shape in layout:
                count = int(np.prod(shape))
                self._views[name] = self._buffer[offset:offset + count].reshape(shape)
                offset += count
        return self._buffer

    # -- the state every rank starts from -------------------------------------------------------
    def begin(self, trainer) -> None:
        """Every rank continues from rank 0's training state; then each rank's layer
        generators become independent streams (dropout masks differ across ranks)."""
        if self.size == 1:
            return
        state = self.broadcast(trainer.state_dict(trainer.start_epoch) if self.is_root else None)
        with self.together():
            if not self.is_root:
                trainer.load_state_dict(state)
                for layer in trainer.model.layers:
                    if layer.rng is not None:
                        layer.rng = _jumped(layer.rng, self.rank)

    def broadcast(self, tree):
        """Rank 0's state tree (JSON values and NumPy arrays) on every rank, without pickle:
        a JSON header and one byte buffer of every array."""
        if self.is_root:
            header, arrays = flatten_state(tree)
            described = [[name, array.dtype.str, list(array.shape)] for name, array in arrays.items()]
            header_bytes = json.dumps({"tree": header, "arrays": described}).encode("utf-8")
            payload = b"".join(array.tobytes(order="C") for array in arrays.values())
        else:
            header_bytes = payload = None
        header = json.loads(self._broadcast_bytes(header_bytes).decode("utf-8"))
        payload = self._broadcast_bytes(payload)
        if self.is_root:
            return tree
        arrays, offset = {}, 0
        for name, dtype, shape in header["arrays"]:
            dtype = np.dtype(dtype)
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(payload, dtype, count, offset).reshape(shape).copy()
            offset += count * dtype.itemsize
        return unflatten_state(header["tree"], arrays)

    def _broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        length = np.array([len(data) if self.rank == root else 0], dtype=np.int64)
        self.comm.Bcast(length, root=root)
        buffer = (np.frombuffer(data, np.uint8).copy() if self.rank == root
                  else np.empty(int(length[0]), np.uint8))
        self.comm.Bcast(buffer, root=root)
        return buffer.tobytes()

    # -- the end of an epoch --------------------------------------------------------------------
    def synchronize(self, model, epoch: int) -> None:
        """Running statistics from rank 0 on every rank; with ``check``, verify that every
        rank holds the same model."""
        for buffer in model.named_buffers().values():
            contiguous = buffer.flags.c_contiguous and buffer.flags.writeable
            received = buffer if contiguous else np.array(buffer, order="C")
            self.comm.Bcast(received, root=0)
            if not contiguous:
                buffer[...] = received
        if self.check:
            self.check_identical(model, f"after epoch {epoch + 1}")

    def check_identical(self, model, when: str = "now") -> None:
        """Raise DistributedError on every rank unless all ranks hold bit-identical
        parameters, buffers and data-order generator (an allreduced hash of each)."""
        items = {f"parameter {name}": array for name, array in model.named_parameters().items()}
        items |= {f"buffer {name}": array for name, array in model.named_buffers().items()}
        items["the data-order generator"] = np.frombuffer(
            json.dumps(model.rng.bit_generator.state, sort_keys=True).encode("utf-8"), np.uint8)
        digests = np.array([_digest(array) for array in items.values()], dtype=np.int64)
        # max and −min of every digest, and whether any rank failed, in one reduction
        extremes = np.concatenate([digests, -digests, [self._pending is not None]])
        self.comm.Allreduce(self._mpi.IN_PLACE, extremes, op=self._mpi.MAX)
        self._raise_if_failed(int(extremes[-1]))
        n = len(digests)
        differ = [name for name, high, minus_low in zip(items, extremes[:n], extremes[n:]) if high != -minus_low]
        if differ:
            raise DistributedError(f"the {self.size} ranks hold different values {when}: {', '.join(differ)}")

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model, X, Y, batch_size: int = 256) -> dict:
        """{"loss", "accuracy"} of the whole (X, Y), each rank evaluating its contiguous
        share of the rows; the sums are reduced so the figures equal one process's."""
        start, stop = self.bounds(len(X))
        totals = np.zeros(_TOTALS)
        try:
            if self._pending is None and stop > start:
                scores = model.evaluate(X[start:stop], Y[start:stop], batch_size=batch_size)
                n_rows = stop - start
                totals[_LOSS_SUM], totals[_N_ROWS] = scores["loss"] * n_rows, n_rows
                if scores["accuracy"] is not None:
                    totals[_CORRECT], totals[_N_SCORED] = scores["accuracy"] * n_rows, n_rows
        except _FAILURE as caught:
            self._pending = caught
        totals[_FAILED] = self._pending is not None
        self.comm.Allreduce(self._mpi.IN_PLACE, totals, op=self._mpi.SUM)
        self._raise_if_failed(int(totals[_FAILED]))
        return {"loss": float(totals[_LOSS_SUM]) / len(X),
                "accuracy": float(totals[_CORRECT]) / len(X) if totals[_N_SCORED] > 0 else None}

    # -- agreeing on failures and decisions -----------------------------------------------------
    @contextmanager
    def deferred(self):
        """Run a block of rank-local work (no collective call inside); if it raises, keep
        the exception: every rank raises it at the next collective call."""
        try:
            yield
        except _FAILURE as caught:
            if self._pending is None:
                self._pending = caught

    @contextmanager
    def together(self):
        """Run a block of rank-local work (no collective call inside); if it raises on any
        rank, every rank raises that rank's exception when the block ends."""
        with self.deferred():
            yield
        self.any(False)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on at least one (e.g. stop_training);
        raises on every rank a failure one of them kept."""
        values = np.array([bool(flag), self._pending is not None], dtype=np.int64)
        self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.MAX)
        self._raise_if_failed(int(values[1]))
        return bool(values[0])

    def _raise_if_failed(self, n_failed: int) -> None:
        """Called on every rank after a collective call that carried the failure flags:
        when a rank failed, every rank raises the exception of the lowest failing rank."""
        if n_failed == 0:
            return
        error, self._pending = self._pending, None
        first = np.array([self.rank if error is not None else self.size], dtype=np.int64)
        self.comm.Allreduce(self._mpi.IN_PLACE, first, op=self._mpi.MIN)
        root = int(first[0])
        report = _describe(error).encode("utf-8") if self.rank == root else None
        report = json.loads(self._broadcast_bytes(report, root=root).decode("utf-8"))
        where = f"raised on rank {root} of {self.size}; every rank stopped with it"
        if self.rank == root:
            error.add_note(where)
            raise error
        rebuilt = _rebuild(report)
        rebuilt.add_note(where)
        raise rebuilt from error


def get_strategy(distributed) -> Strategy:
    """The strategy for ``fit(..., distributed=...)``: None → ``Local()``, "mpi" →
    ``MPI()``, or a ``Strategy`` instance as given."""
    if distributed is None:
        return Local()
    if isinstance(distributed, Strategy):
        return distributed
    if isinstance(distributed, str) and distributed.lower() == "mpi":
        return MPI()
    raise InvalidParameterError(f"distributed must be None, 'mpi' or a neural_networks.distributed.Strategy, "
                                f"got {distributed!r} ({type(distributed).__name__})")


# -- helpers ------------------------------------------------------------------------------------
def _jumped(rng: np.random.Generator, jumps: int) -> np.random.Generator:
    """A generator ``jumps`` strides of 2^127 ahead (independent of ``rng``'s stream)."""
    bit_generator = rng.bit_generator
    if hasattr(bit_generator, "jumped"):
        return np.random.Generator(bit_generator.jumped(jumps))
    seed = np.random.SeedSequence([jumps, *rng.integers(0, 2**32, size=4).tolist()])
    return np.random.Generator(type(bit_generator)(seed))


def _digest(array: np.ndarray) -> int:
    """A 56-bit hash of an array's bytes (fits an int64 with its negation)."""
    data = np.ascontiguousarray(array)
    return int.from_bytes(hashlib.blake2b(memoryview(data).cast("B"), digest_size=7).digest(), "little")


def _describe(error: BaseException) -> str:
    """An exception as JSON: where its class lives, its arguments and its message."""
    kind = type(error)
    try:
        args = json.loads(json.dumps(list(error.args)))
    except (TypeError, ValueError):
        args = [str(error)]
    return json.dumps({"module": kind.__module__, "qualname": kind.__qualname__, "args": args,
                       "message": str(error)})


def _rebuild(report: dict) -> BaseException:
    """The exception another rank raised: the same class (when this process has loaded
    it) with the same arguments, else a DistributedError with the same message."""
    kind = sys.modules.get(report["module"])
    for part in report["qualname"].split("."):
        kind = getattr(kind, part, None)
    if isinstance(kind, type) and issubclass(kind, BaseException):
        try:
            rebuilt = kind(*report["args"])
            if str(rebuilt) == report["message"]:
                return rebuilt
        except Exception:  # a constructor that wants other arguments: fall back below
            pass
    return DistributedError(f"{report['qualname']}: {report['message']}")
