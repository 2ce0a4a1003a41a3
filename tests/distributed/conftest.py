"""Tests of data-parallel training.

Tests marked ``mpi`` run in every process of ``mpiexec -n 2`` (the command is in
``MPI_COMMAND``); a plain ``pytest`` skips them. Each rank runs the same tests in the same
order; a test makes all its collective calls before it asserts anything, so a failure on
one rank cannot leave the other waiting, and a watchdog aborts the job if a test hangs anyway.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from mpi_environment import MPI_COMMAND, mpi_world_size

#: seconds after which a hanging MPI test dumps every thread's stack and aborts the job
WATCHDOG_SECONDS = int(os.environ.get("NEURAL_NETWORKS_MPI_TEST_TIMEOUT", "120"))


def pytest_collection_modifyitems(config, items):
    if mpi_world_size() >= 2:
        return
    skip = pytest.mark.skip(reason=f"needs 2 MPI processes; run: {MPI_COMMAND}")
    for item in items:
        if "mpi" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def comm():
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    assert world.Get_size() == 2, "the MPI tests expect exactly 2 processes"
    return world


@pytest.fixture
def shared_dir(comm):
    """One empty folder every rank sees (rank 0 creates it and removes it afterwards)."""
    path = tempfile.mkdtemp(prefix="nn-mpi-") if comm.Get_rank() == 0 else None
    path = Path(comm.bcast(path, root=0))
    yield path
    comm.Barrier()
    if comm.Get_rank() == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def watchdog(request):
    """Bound every MPI test in time, its fixtures included: after WATCHDOG_SECONDS the
    process prints every thread's stack and aborts the whole MPI job."""
    if "mpi" not in request.keywords:
        yield
        return
    from mpi4py import MPI

    def expire():
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=False)
        rank = MPI.COMM_WORLD.Get_rank()
        print(f"\nrank {rank}: {request.node.nodeid} still runs after {WATCHDOG_SECONDS} s; "
              f"aborting the MPI job. Stacks:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr)
        MPI.COMM_WORLD.Abort(1)

    timer = threading.Timer(WATCHDOG_SECONDS, expire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
