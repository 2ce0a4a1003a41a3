"""The command line, run as a user runs it: ``python -m neural_networks ...`` in a fresh
process, in an empty working folder."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neural_networks as nn
from neural_networks import serialization

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_FILES = {"model.npz", "best.npz", "last.npz", "history.json", "metrics.json",
             "curves.png", "confusion_matrix.png", "filters.png"}


def run_cli(*args, cwd, timeout=180):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("NEURAL_NETWORKS_DATA", None)
    return subprocess.run([sys.executable, "-m", "neural_networks", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_usage_error(result, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.exists() else []


def parameters(path):
    return nn.load(path).named_parameters()


def assert_same_model_files(a, b):
    pa, pb = parameters(a), parameters(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


# -- one real training run on digits, shared by the tests that inspect it ------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("digits")
    result = run_cli("train", "--epochs", 2, "--verbose", 0, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd, result


def test_train_writes_exactly_one_complete_run_folder(digits_run):
    cwd, result = digits_run
    folders = run_folders(cwd / "runs")
    assert len(folders) == 1
    assert {p.name for p in cwd.iterdir()} - {"x.npy", "x.predictions.csv"} == {"runs"}
    run = folders[0]
    assert {p.name for p in run.iterdir()} == RUN_FILES
    for png in ("curves.png", "confusion_matrix.png", "filters.png"):
        assert (run / png).read_bytes().startswith(PNG_SIGNATURE), png

    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert metrics["epochs"] == 2
    assert metrics["settings"]["dataset"] == "digits" and metrics["settings"]["model"] == "cnn"
    assert metrics["val_loss"] == history[-1]["val_loss"]
    match = re.search(r"Test accuracy (\d\.\d{4})", result.stdout)
    assert match, result.stdout
    assert float(match[1]) == pytest.approx(metrics["test_accuracy"], abs=5e-5)
    assert 0.5 < metrics["test_accuracy"] <= 1.0

    # the reported accuracy is that of model.npz on the seed-0 digits test split
    from neural_networks.datasets import load_dataset

    data = load_dataset("digits", seed=0)
    model = nn.load(run / "model.npz")
    scores = model.evaluate(data.X_test, data.y_test)
    assert scores["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert scores["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert model.metadata["class_names"] == [str(i) for i in range(10)]
    # last.npz is the checkpoint after the final epoch; best.npz a loadable model
    last = serialization.read_checkpoint(run / "last.npz")
    assert last.kind == "checkpoint" and last.state["trainer"]["epoch"] == 2
    assert_same_model_files(run / "last.npz", run / "model.npz")
    best_epoch = int(np.argmin([row["val_loss"] for row in history]))
    assert nn.load(run / "best.npz").predict(data.X_val[:5]).shape == (5, 10)
    if best_epoch == 1:
        assert_same_model_files(run / "best.npz", run / "model.npz")


def test_evaluate_a_run_folder(digits_run):
    cwd, _ = digits_run
    run = run_folders(cwd / "runs")[0]
    result = run_cli("evaluate", run, cwd=cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((run / "metrics.json").read_text())
    assert report["dataset"] == "digits"
    assert report["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert report["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert report["n_samples"] == 269


def test_predict_writes_one_csv_row_per_sample(digits_run):
    from sklearn.datasets import load_digits

    cwd, _ = digits_run
    run = run_folders(cwd / "runs")[0]
    raw = load_digits().images[:12]  # raw (N, 8, 8) pixels: the CLI standardises and reshapes
    np.save(cwd / "x.npy", raw)
    result = run_cli("predict", run / "model.npz", "x.npy", cwd=cwd)
    assert result.returncode == 0, result.stderr
    output = cwd / "x.predictions.csv"
    with open(output, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert [int(row["index"]) for row in rows] == list(range(12))

    from neural_networks.datasets import Standardizer

    model = nn.load(run / "model.npz")
    standardizer = Standardizer.from_state(model.metadata["standardizer"])
    probabilities = model.predict(standardizer.transform(raw.reshape(12, 8, 8, 1)))
    assert [int(row["class_id"]) for row in rows] == np.argmax(probabilities, axis=1).tolist()
    assert [row["class_name"] for row in rows] == [str(np.argmax(p)) for p in probabilities]
    for row, p in zip(rows, probabilities):
        assert float(row["probability"]) == pytest.approx(p.max(), abs=1e-6)


def test_predict_and_evaluate_refuse_missing_files(tmp_path):
    assert_usage_error(run_cli("predict", "nothing.npz", "x.npy", cwd=tmp_path), "nothing.npz")
    assert_usage_error(run_cli("evaluate", "no_run", cwd=tmp_path), "no_run")


# -- config, folders and resume (iris: small and fast) ----------------------------------------------------
IRIS = {"dataset": "iris", "model": "mlp", "seed": 3, "batch-size": 16, "verbose": 0}


def test_config_second_run_and_resume(tmp_path):
    runs = tmp_path / "runs"
    # a 2-epoch run with flags ...
    flags = [f"--{k}={v}" for k, v in IRIS.items()]
    first = run_cli("train", *flags, "--epochs", 2, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (interrupted,) = run_folders(runs)
    # ... and a 3-epoch run from a TOML config with the same settings: a new folder
    config = tmp_path / "run.toml"
    config.write_text('dataset = "iris"\nmodel = "mlp"\nseed = 3\nbatch-size = 16\n'
                      'verbose = 0\nepochs = 3\n')
    second = run_cli("train", "--config", config, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    folders = run_folders(runs)
    assert len(folders) == 2 and interrupted in folders
    (complete,) = [f for f in folders if f != interrupted]
    metrics = json.loads((complete / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert {k: metrics["settings"][k.replace("-", "_")] for k in IRIS} == IRIS

    # resuming the 2-epoch run to 3 epochs ends with the 3-epoch run's model
    resumed = run_cli("train", "--resume", interrupted, "--epochs", 3, "--verbose", 0, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(run_folders(runs)) == 2  # resume writes into the run it continues
    assert_same_model_files(interrupted / "model.npz", complete / "model.npz")
    assert_same_model_files(interrupted / "last.npz", complete / "last.npz")

    def rows(folder):
        return [{k: v for k, v in row.items() if k != "time"}
                for row in json.loads((folder / "history.json").read_text())]

    assert rows(interrupted) == rows(complete)
    assert len(rows(interrupted)) == 3

    # a resumed run keeps its settings
    changed = run_cli("train", "--resume", interrupted, "--epochs", 4, "--lr", 0.5, cwd=tmp_path)
    assert_usage_error(changed, "lr")


@pytest.mark.parametrize(
    "content, fragment",
    [('epochs = 2\nlearning_rate = 0.1\n', "learning_rate"),
     ('epochs = 2\ndataset = \n', "TOML"),
     ('epochs = "two"\n', "epochs")],
    ids=["unknown key", "invalid toml", "wrong type"],
)
def test_bad_config_files_exit_2(tmp_path, content, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    assert_usage_error(run_cli("train", "--config", config, cwd=tmp_path), fragment)
    assert not (tmp_path / "runs").exists()


def test_missing_config_file_exits_2(tmp_path):
    assert_usage_error(run_cli("train", "--config", "nope.toml", cwd=tmp_path), "nope.toml")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--epochs", "-1"], ["--epochs"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--lr", "-0.1"], ["--lr"]),
        (["--model", "nope"], ["nope", "mlp"]),
        (["--dataset", "nope"], ["nope", "digits"]),
        (["--model", "lenet", "--dataset", "iris"], ["lenet", "mlp"]),
        (["--optimizer", "nope"], ["nope"]),
    ],
    ids=["negative epochs", "zero batch size", "negative lr", "unknown model", "unknown dataset",
         "cnn on tabular data", "unknown optimizer"],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, fragments):
    result = run_cli("train", "--verbose", "0", *args, cwd=tmp_path)
    assert_usage_error(result, *fragments)
    assert run_folders(tmp_path / "runs") == []


def test_unparsable_arguments_exit_2_without_traceback(tmp_path):
    result = run_cli("train", "--epochs", "many", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--epochs" in result.stderr


def test_missing_mnist_files_exit_2_naming_the_expected_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("train", "--dataset", "mnist", "--data-dir", empty, "--verbose", 0, cwd=tmp_path)
    line = assert_usage_error(result, "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str(empty))
    assert "download" in line.lower()  # says that nothing is downloaded
    assert run_folders(tmp_path / "runs") == []
