"""``neural-networks train --distributed mpi`` in every process of ``mpiexec -n 2``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neural_networks import NeuralNetwork
from neural_networks.cli import main

pytestmark = pytest.mark.mpi


def test_a_two_rank_run_writes_one_run_folder_prints_once_and_resumes(comm, shared_dir, capsys):
    flags = ["--dataset", "iris", "--model", "mlp", "--batch-size", "25", "--verbose", "2",
             "--runs-dir", str(shared_dir / "runs"), "--distributed", "mpi"]
    code = main(["train", "--epochs", "2", *flags])
    printed = capsys.readouterr().out
    runs = sorted((shared_dir / "runs").iterdir())
    resumed_code = main(["train", "--resume", str(runs[0]), "--epochs", "3", "--distributed", "mpi"]) if runs else None
    resumed_printed = capsys.readouterr().out
    all_printed = comm.allgather(printed + resumed_printed)

    assert code == 0 and resumed_code == 0 and len(runs) == 1
    files = {path.name for path in runs[0].iterdir()}
    assert {"model.npz", "last.npz", "best.npz", "history.json", "metrics.json"} <= files
    assert json.loads((runs[0] / "metrics.json").read_text())["epochs"] == 3
    assert all_printed[1] == ""
    assert all_printed[0].count("Training mlp on iris") == 2 and all_printed[0].count("Epoch 3/3") == 1
    assert np.all(np.isfinite(NeuralNetwork.load(runs[0] / "model.npz").layers[0].parameters["W"]))
