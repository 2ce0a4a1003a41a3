"""The distributed strategies from one process: how rows are shared, the errors a wrong
launch gets, and whole MPI jobs (``mpiexec -n 2`` started from here, bounded in time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import neural_networks
from neural_networks import NeuralNetwork, Trainer
from neural_networks.distributed import Local, Strategy, get_strategy, share_bounds
from neural_networks.errors import DistributedError, InvalidParameterError
from neural_networks.layers import FullyConnected

from mpi_environment import mpi_world_size

SOURCE = str(Path(neural_networks.__file__).resolve().parents[1])
JOB_SECONDS = 240


class Ranks(Local):
    """Rank ``rank`` of ``size``, sharing rows as every multi-process strategy does."""

    shard = Strategy.shard

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@given(n_rows=st.integers(0, 10_000), size=st.integers(1, 64))
def test_the_shares_of_a_batch_are_contiguous_cover_it_once_and_differ_by_at_most_one_row(n_rows, size):
    bounds = [share_bounds(n_rows, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@given(start=st.integers(0, 50), n_rows=st.integers(0, 40), size=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_a_shard_of_a_slice_and_of_an_index_array_select_the_same_rows(start, n_rows, size, seed):
    order = np.random.default_rng(seed).permutation(start + n_rows)[start:]
    for rank in range(size):
        ranks = Ranks(rank, size)
        first, stop = ranks.bounds(n_rows)
        assert ranks.shard(slice(start, start + n_rows)) == slice(start + first, start + stop)
        np.testing.assert_array_equal(ranks.shard(order), order[first:stop])
    assert np.array_equal(np.concatenate([Ranks(rank, size).shard(order) for rank in range(size)]), order)


def test_no_distributed_is_the_local_strategy_whose_hooks_change_nothing():
    strategy = get_strategy(None)
    rows = np.array([4, 1, 3])
    assert isinstance(strategy, Local) and strategy.is_root and strategy.size == 1
    assert strategy.shard(rows) is rows and strategy.broadcast(rows) is rows
    assert strategy.any(True) is True and strategy.any(False) is False
    with pytest.raises(KeyError, match="raised at once"):
        with strategy.deferred():
            raise KeyError("raised at once")
    given_strategy = Local()
    assert get_strategy(given_strategy) is given_strategy


@pytest.mark.parametrize("distributed", ["gloo", 2, True])
def test_an_unknown_distributed_value_is_a_clear_error(distributed):
    model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0)
    with pytest.raises(InvalidParameterError, match="distributed must be"):
        Trainer(model, distributed=distributed)


def test_mpi_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # "import mpi4py" now fails
    model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0, input_shape=(3,))
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(DistributedError, match=r'pip install "neural-networks\[mpi\]".*mpiexec -n K'):
        model.fit(X, y, epochs=1, verbose=0, distributed="mpi")
    with pytest.raises(DistributedError, match="needs mpi4py"):
        model.evaluate(X, y, distributed="mpi")


# -- whole processes ----------------------------------------------------------------------------
def _environment() -> dict:
    """This interpreter's environment for a child: this checkout's package, one BLAS thread,
    and no variable of an MPI launcher (so a child is "outside mpiexec")."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_"))}
    environment["PYTHONPATH"] = os.pathsep.join([SOURCE, environment.get("PYTHONPATH", "")])
    environment |= {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return environment


def _mpiexec() -> str | None:
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _mpi4py_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("mpi4py") is not None


needs_a_launcher = pytest.mark.skipif(
    _mpiexec() is None or not _mpi4py_installed() or mpi_world_size() > 1,
    reason='needs mpi4py and mpiexec (pip install "neural-networks[mpi]"), outside mpiexec')


@pytest.mark.skipif(not _mpi4py_installed(), reason='needs mpi4py (pip install "neural-networks[mpi]")')
def test_mpi_outside_mpiexec_says_how_to_launch():
    script = textwrap.dedent("""
        import numpy as np
        from neural_networks import NeuralNetwork
        from neural_networks.layers import FullyConnected
        model = NeuralNetwork([FullyConnected(2, "softmax")], seed=0)
        model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=1, verbose=0, distributed="mpi")
    """)
    done = subprocess.run([sys.executable, "-c", script], env=_environment(), capture_output=True,
                          text=True, timeout=JOB_SECONDS)
    assert done.returncode == 1
    assert "DistributedError: distributed='mpi': this process was not started by mpiexec" in done.stderr
    assert "mpiexec -n K python your_script.py" in done.stderr


@needs_a_launcher
def test_an_error_on_one_rank_ends_the_whole_job_with_that_error_on_every_rank(tmp_path):
    script = tmp_path / "fails_on_rank_1.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from mpi4py import MPI
        from neural_networks import NeuralNetwork
        from neural_networks.callbacks import Callback
        from neural_networks.layers import FullyConnected

        class BadData(Callback):
            def on_epoch_begin(self, epoch):
                if epoch == 1 and MPI.COMM_WORLD.Get_rank() == 1:
                    raise ValueError("rank 1 read a corrupt shard")

        model = NeuralNetwork([FullyConnected(4, "relu"), FullyConnected(2, "softmax")], seed=0)
        X = np.random.default_rng(0).normal(size=(64, 3))
        try:
            model.fit(X, X[:, 0] > 0, epochs=3, batch_size=8, verbose=0, callbacks=[BadData()],
                      distributed="mpi")
        except ValueError as error:
            print(f"rank {MPI.COMM_WORLD.Get_rank()} stopped: {error}", flush=True)
            raise
    """))
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script)], env=_environment(),
                          capture_output=True, text=True, timeout=JOB_SECONDS)
    assert done.returncode != 0, done.stdout + done.stderr
    for rank in (0, 1):  # (mpiexec merges both ranks' output: lines may run together)
        assert done.stdout.count(f"rank {rank} stopped: rank 1 read a corrupt shard") == 1, done.stdout
    assert done.stderr.count("raised on rank 1 of 2; every rank stopped with it") == 2, done.stderr
