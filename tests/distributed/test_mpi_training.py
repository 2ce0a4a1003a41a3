"""Data-parallel training over 2 MPI processes equals training in one process.

Run in every process of ``mpiexec -n 2`` (see conftest). Each rank also trains the
one-process reference itself, so every rank can compare its own result.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from neural_networks import NeuralNetwork, TrainingDivergedError
from neural_networks.callbacks import Callback, CSVLogger, EarlyStopping, JSONLogger, ModelCheckpoint
from neural_networks.distributed import MPI
from neural_networks.errors import DistributedError, FormatError
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Layer, Pool2D
from neural_networks.optimizers import initialize_optimizer

pytestmark = pytest.mark.mpi

RTOL = 1e-12
OPTIMIZERS = {
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 0.01}),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.05}),
    "rmsprop": ("RMSProp", {"lr": 0.005}),
}


def mlp(optimizer: str, seed: int = 3) -> NeuralNetwork:
    name, settings = OPTIMIZERS[optimizer]
    return NeuralNetwork([FullyConnected(16, "relu"), FullyConnected(8, "tanh"), FullyConnected(3, "softmax")],
                         optimizer=initialize_optimizer(name, **settings), seed=seed, dtype="float64")


def cnn(optimizer: str, seed: int = 5) -> NeuralNetwork:
    name, settings = OPTIMIZERS[optimizer]
    return NeuralNetwork([Conv2D(4, 3, "relu"), Pool2D(2, stride=2), Conv2D(6, 3, "relu", pad="valid"),
                          Flatten(), FullyConnected(3, "softmax")],
                         optimizer=initialize_optimizer(name, **settings), seed=seed, dtype="float64")


def tabular(n: int = 101, seed: int = 1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return X, (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)


def images(n: int = 45, seed: int = 2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8, 8, 2))
    return X, (X[:, :4].mean(axis=(1, 2, 3)) > 0).astype(int) + (X[..., 1].mean(axis=(1, 2)) > 0.1)


def assert_close(ours, reference, what: str) -> None:
    ours, reference = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    error = float(np.max(np.abs(ours - reference))) if reference.size else 0.0
    assert error <= RTOL * scale + 1e-300, f"{what}: |ours - one process| = {error:.3g} > {RTOL} * {scale:.3g}"


def assert_same_training(model, reference, history, reference_history) -> None:
    for (name, ours), theirs in zip(model.named_parameters().items(), reference.named_parameters().values()):
        assert_close(ours, theirs, f"parameter {name}")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert (history[key][0] is None) == (reference_history[key][0] is None), key
        if reference_history[key][0] is not None:
            assert_close(history[key], reference_history[key], f"history {key}")
    assert history.epochs == reference_history.epochs


def self_communicator():
    from mpi4py import MPI as mpi

    return mpi.COMM_SELF


def flat_parameters(model) -> np.ndarray:
    return np.concatenate([array.ravel() for array in model.named_parameters().values()])


# -- training equals one process ------------------------------------------------------------------
# 101 rows with validation_split=0.2 leave 81 training rows: batches of 16 end with ONE row,
# which only rank 0 gets; the CNN's 45 rows in batches of 7 end with 3 (2 + 1).
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("network, data, batch_size, fit_settings", [
    (mlp, tabular, 16, {"validation_split": 0.2}),
    (cnn, images, 7, {}),
])
def test_two_ranks_train_as_one_process(comm, network, data, batch_size, fit_settings, optimizer):
    X, y = data()
    if not fit_settings:
        fit_settings = {"validation_data": data(n=13, seed=9)}
    reference = network(optimizer)
    reference_history = reference.fit(X, y, epochs=3, batch_size=batch_size, verbose=0, **fit_settings)
    model = network(optimizer)
    history = model.fit(X, y, epochs=3, batch_size=batch_size, verbose=0, distributed=MPI(check=True),
                        **fit_settings)
    everyone = comm.allgather(flat_parameters(model))

    assert_same_training(model, reference, history, reference_history)
    np.testing.assert_array_equal(everyone[0], everyone[1])  # bit for bit on both ranks


def test_different_seeds_on_each_rank_still_train_rank_0s_model(comm):
    """Rank 0's initial parameters and data order are broadcast: a rank seeded differently
    (or not at all) trains the same model."""
    X, y = tabular()
    reference = mlp("adam", seed=3)
    reference.fit(X, y, epochs=2, batch_size=10, verbose=0)
    model = mlp("adam", seed=3 if comm.Get_rank() == 0 else 1234)
    model.fit(X, y, epochs=2, batch_size=10, verbose=0, distributed="mpi")
    everyone = comm.allgather(flat_parameters(model))

    for ours, theirs in zip(model.named_parameters().values(), reference.named_parameters().values()):
        assert_close(ours, theirs, "parameters")
    np.testing.assert_array_equal(everyone[0], everyone[1])


def test_a_global_batch_of_one_row_and_no_shuffle(comm):
    """Every global batch has one row: rank 1 never computes, and still ends equal."""
    X, y = tabular(n=9)
    reference = mlp("sgd_momentum")
    reference_history = reference.fit(X, y, epochs=2, batch_size=1, shuffle=False, verbose=0)
    model = mlp("sgd_momentum")
    history = model.fit(X, y, epochs=2, batch_size=1, shuffle=False, verbose=0, distributed="mpi")
    assert_same_training(model, reference, history, reference_history)


def test_evaluate_on_shards_equals_one_process(comm):
    X, y = tabular(n=7)
    model = mlp("adam").build((6,))
    single, shared = model.evaluate(X, y), model.evaluate(X, y, distributed="mpi")
    one_row = model.evaluate(X[:1], y[:1], distributed="mpi")  # rank 1 holds no row
    regression = NeuralNetwork([FullyConnected(1)], loss="l2", seed=0, dtype="float64").build((6,))
    targets = X[:, :1] - X[:, 1:2] * X[:, 2:3]
    regression_scores = regression.evaluate(X, targets, distributed="mpi")

    assert_close(shared["loss"], single["loss"], "loss")
    assert shared["accuracy"] == single["accuracy"]
    assert_close(one_row["loss"], model.evaluate(X[:1], y[:1])["loss"], "loss of one row")
    assert regression_scores["accuracy"] is None
    assert_close(regression_scores["loss"], regression.evaluate(X, targets)["loss"], "l2 loss")


def test_early_stopping_stops_every_rank_at_the_same_epoch(comm):
    X, y = tabular()
    reference = mlp("adam")
    stopper = EarlyStopping(monitor="val_loss", patience=0, min_delta=1.0)  # stops after epoch 2
    reference_history = reference.fit(X, y, epochs=6, batch_size=16, validation_split=0.2, verbose=0,
                                      callbacks=[EarlyStopping(monitor="val_loss", patience=0, min_delta=1.0)])
    model = mlp("adam")
    history = model.fit(X, y, epochs=6, batch_size=16, validation_split=0.2, verbose=0,
                        callbacks=[stopper], distributed="mpi")
    epochs = comm.allgather(history.epochs)

    assert epochs[0] == epochs[1] == reference_history.epochs == [1, 2]
    assert_same_training(model, reference, history, reference_history)


# -- files and output: rank 0 only ----------------------------------------------------------------
def test_only_rank_0_writes_files_and_prints(comm, shared_dir, capsys):
    rank = comm.Get_rank()
    own = shared_dir / f"given-to-rank-{rank}"  # each rank names its own paths
    own.mkdir()
    X, y = tabular()
    model = mlp("adam")
    model.fit(X, y, epochs=2, batch_size=16, validation_split=0.2, verbose=2, checkpoint=own / "run",
              callbacks=[ModelCheckpoint(own / "best.npz"), JSONLogger(own / "history.json"),
                         CSVLogger(own / "history.csv")], distributed="mpi")
    printed = capsys.readouterr().out
    written = sorted(path.name for path in own.rglob("*") if path.is_file())

    if rank == 0:
        assert written == ["best.npz", "history.csv", "history.json", "last.npz"]
        assert printed.count("Epoch ") == 2
    else:
        assert written == []
        assert printed == ""


# -- checkpoints written on K ranks resume on any number ----------------------------------------
def test_a_two_rank_checkpoint_resumes_exactly_on_one_and_two_ranks(comm, shared_dir):
    X, y = images()
    rank = comm.Get_rank()
    settings = {"batch_size": 7, "validation_data": images(n=13, seed=9), "verbose": 0}
    uninterrupted = cnn("adam")
    uninterrupted_history = uninterrupted.fit(X, y, epochs=4, distributed="mpi", **settings)
    cnn("adam").fit(X, y, epochs=2, checkpoint=shared_dir / "run", distributed="mpi", **settings)
    resumed_on_two = cnn("adam")
    resumed_on_two_history = resumed_on_two.fit(X, y, epochs=4, resume=shared_dir / "run",
                                                distributed="mpi", **settings)
    # the 1-rank continuations: one process, and one MPI rank (a communicator of its own)
    resumed_alone, resumed_on_one = cnn("adam"), cnn("adam")
    resumed_alone_history = resumed_alone.fit(X, y, epochs=4, resume=shared_dir / "run", **settings)
    resumed_on_one.fit(X, y, epochs=4, resume=shared_dir / "run", distributed=MPI(comm=self_communicator()), **settings)
    one_process = cnn("adam")
    one_process_history = one_process.fit(X, y, epochs=4, **settings)

    # the same number of ranks: bit for bit the uninterrupted run
    for ours, theirs in zip(resumed_on_two.named_parameters().values(), uninterrupted.named_parameters().values()):
        np.testing.assert_array_equal(ours, theirs)
    assert resumed_on_two_history["val_loss"] == uninterrupted_history["val_loss"]
    # one rank: the one-process run (the first two epochs were summed in another order)
    assert_same_training(resumed_alone, one_process, resumed_alone_history, one_process_history)
    assert_same_training(resumed_alone, uninterrupted, resumed_alone_history, uninterrupted_history)
    for ours, theirs in zip(resumed_on_one.named_parameters().values(), resumed_alone.named_parameters().values()):
        assert_close(ours, theirs, f"rank {rank} alone under MPI")


def test_a_one_process_checkpoint_resumes_on_two_ranks(comm, shared_dir):
    X, y = tabular()
    if comm.Get_rank() == 0:
        mlp("rmsprop").fit(X, y, epochs=2, batch_size=16, verbose=0, checkpoint=shared_dir / "alone")
    comm.Barrier()
    resumed = mlp("rmsprop")
    resumed.fit(X, y, epochs=4, batch_size=16, verbose=0, resume=shared_dir / "alone", distributed="mpi")
    reference = mlp("rmsprop")
    reference.fit(X, y, epochs=4, batch_size=16, verbose=0)
    for ours, theirs in zip(resumed.named_parameters().values(), reference.named_parameters().values()):
        assert_close(ours, theirs, "parameters")


# -- buffers, generators and the identity check ---------------------------------------------------
class LastBatchMean(Layer):
    """Identity; in training mode keeps the mean of its last batch as a buffer (a
    stand-in for batch normalisation's running statistics)."""

    type_name = "last_batch_mean"

    def build(self, input_shape):
        self.buffers = OrderedDict(mean=np.zeros(input_shape, self._param_dtype(np.float64)))
        super().build(input_shape)

    def forward(self, X, retain_derived=True):
        X = self._check_input(X, rank=2)
        if self.training:
            self.buffers["mean"] = X.mean(axis=0)
        return X

    def backward(self, dLdY, *, input_gradient=True):
        return dLdY

    def get_config(self):
        return {"type": self.type_name}


def test_running_statistics_come_from_rank_0_at_each_epoch_end(comm):
    X, y = tabular(n=40)
    model = NeuralNetwork([LastBatchMean(), FullyConnected(3, "softmax")], seed=0, dtype="float64")
    model.fit(X, y, epochs=1, batch_size=10, shuffle=False, verbose=0, distributed="mpi")
    buffers = comm.allgather(model.named_buffers()["0.mean"])

    np.testing.assert_array_equal(buffers[0], X[30:35].mean(axis=0))  # rank 0's half of the last batch
    np.testing.assert_array_equal(buffers[1], buffers[0])


def test_layer_generators_are_independent_across_ranks_and_rank_0_keeps_its_own(comm):
    X, y = tabular()
    reference = mlp("adam")
    reference.fit(X, y, epochs=1, batch_size=16, verbose=0)
    model = mlp("adam")
    model.fit(X, y, epochs=1, batch_size=16, verbose=0, distributed="mpi")
    draws = comm.allgather([layer.rng.random() for layer in model.layers])
    reference_draws = [layer.rng.random() for layer in reference.layers]

    assert draws[0] == reference_draws
    assert all(a != b for a, b in zip(draws[0], draws[1]))


class PerturbOnRank1(Callback):
    def on_epoch_begin(self, epoch):
        if epoch == 1 and self.model.distributed_rank == 1:
            self.model.layers[1].parameters["b"][0, 0] += 1e-9


def test_the_identity_check_finds_a_rank_that_drifted(comm):
    X, y = tabular()
    model = mlp("adam")
    model.distributed_rank = comm.Get_rank()
    with pytest.raises(DistributedError) as raised:
        model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[PerturbOnRank1()],
                  distributed=MPI(check=True))
    assert "after epoch 2" in str(raised.value) and "parameter 1.b" in str(raised.value)
    assert "parameter 0.W" not in str(raised.value)


# -- a failure on one rank stops both -------------------------------------------------------------
class InjectedError(RuntimeError):
    pass


class FailingOnRank(Layer):
    """Identity that raises in its forward pass on one rank at one call."""

    type_name = "failing_on_rank"

    def __init__(self, rank, at_call):
        super().__init__()
        self.failing_rank, self.at_call, self.calls = rank, at_call, 0

    def forward(self, X, retain_derived=True):
        X = self._check_input(X, rank=2)
        self.calls += 1
        if self.rank_here == self.failing_rank and self.calls == self.at_call:
            raise InjectedError(f"bad batch on rank {self.failing_rank}")
        return X

    def backward(self, dLdY, *, input_gradient=True):
        return dLdY

    def get_config(self):
        return {"type": self.type_name, "rank": self.failing_rank, "at_call": self.at_call}


@pytest.mark.parametrize("failing_rank", [0, 1])
def test_an_exception_in_one_ranks_step_stops_both_with_it(comm, failing_rank):
    X, y = tabular()
    layer = FailingOnRank(failing_rank, at_call=5)
    layer.rank_here = comm.Get_rank()
    model = NeuralNetwork([layer, FullyConnected(3, "softmax")], seed=0, dtype="float64")
    with pytest.raises(InjectedError) as raised:
        model.fit(X, y, epochs=2, batch_size=16, verbose=0, distributed="mpi")
    assert str(raised.value) == f"bad batch on rank {failing_rank}"
    assert f"raised on rank {failing_rank} of 2" in "".join(raised.value.__notes__)


class FailingCallback(Callback):
    def on_epoch_end(self, epoch, logs):
        if epoch == 1 and self.model.distributed_rank == 0:
            raise OSError(28, "No space left on device")


def test_a_callback_failing_on_rank_0_stops_both(comm):
    X, y = tabular()
    model = mlp("adam")
    model.distributed_rank = comm.Get_rank()
    with pytest.raises(OSError, match=r"No space left on device") as raised:
        model.fit(X, y, epochs=4, batch_size=16, verbose=0, callbacks=[FailingCallback()], distributed="mpi")
    assert raised.value.errno == 28


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning")
def test_divergence_in_one_ranks_rows_stops_both_with_the_same_message(comm):
    X, y = tabular()
    X[5] = 1e308  # finite, overflows in the first layer: a row of rank 0's share of batch 1
    model = mlp("sgd_momentum")
    with pytest.raises(TrainingDivergedError) as raised:
        model.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0, distributed="mpi")
    messages = comm.allgather(str(raised.value))
    assert messages[0] == messages[1] and "epoch 1, batch 1" in messages[0]


def test_a_corrupt_checkpoint_read_on_rank_0_stops_both(comm, shared_dir):
    if comm.Get_rank() == 0:
        (shared_dir / "last.npz").write_bytes(b"not a checkpoint")
    comm.Barrier()
    X, y = tabular()
    with pytest.raises(FormatError, match="not a neural_networks model file"):
        mlp("adam").fit(X, y, epochs=2, batch_size=16, verbose=0, resume=shared_dir, distributed="mpi")


class FailingStepOnRank1(Callback):
    """Breaks rank 1's optimizer step at its third call (e.g. a state that differs)."""

    def on_train_begin(self, model):
        super().on_train_begin(model)
        optimizer, calls = model.optimizer, []
        original = optimizer.step

        def step(parameters, gradients):
            calls.append(1)
            if model.distributed_rank == 1 and len(calls) == 3:
                raise InjectedError("optimizer state broken on rank 1")
            return original(parameters, gradients)

        optimizer.step = step


def test_an_optimizer_step_failing_on_one_rank_stops_both_at_the_next_step(comm):
    X, y = tabular()
    model = mlp("adam")
    model.distributed_rank = comm.Get_rank()
    with pytest.raises(InjectedError) as raised:
        model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[FailingStepOnRank1()], distributed="mpi")
    steps = comm.allgather(model.optimizer.iterations)
    assert str(raised.value) == "optimizer state broken on rank 1"
    assert steps == [3, 2]  # rank 0 applied update 3; nobody applied a fourth


class BrokenPipeOnRank0:
    def __init__(self, rank):
        self.rank = rank

    def write(self, text):
        if self.rank == 0:
            raise BrokenPipeError(32, "Broken pipe")
        return len(text)

    def flush(self):
        pass


def test_rank_0s_progress_output_failing_stops_both(comm, monkeypatch):
    X, y = tabular()
    monkeypatch.setattr("sys.stdout", BrokenPipeOnRank0(comm.Get_rank()))
    with pytest.raises(BrokenPipeError) as raised:
        mlp("adam").fit(X, y, epochs=3, batch_size=16, verbose=2, distributed="mpi")
    assert raised.value.errno == 32
