"""Whether this test process is one of several that an MPI launcher started."""

from __future__ import annotations

import os

#: how CI runs the tests marked ``mpi`` (in every one of 2 processes)
MPI_COMMAND = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 600 mpiexec -n 2 python -m pytest -m mpi tests/distributed -q -p no:cacheprovider"


def mpi_world_size() -> int:
    """The number of processes the launcher started (1 outside mpiexec), read from the
    environment so that a plain pytest never initialises MPI."""
    for variable in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 1
