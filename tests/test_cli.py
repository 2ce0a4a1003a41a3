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


#: the folder holding the package under test, so the command runs that same package
PACKAGE_ROOT = str(Path(nn.__file__).resolve().parents[1])


def run_cli(*args, cwd, timeout=180):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env.pop("NEURAL_NETWORKS_DATA", None)
    return subprocess.run([sys.executable, "-m", "neural_networks", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout, umask=0o022)


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
    # every file gets the mode open() gives under the umask 022 the command ran with
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in run.iterdir()} == {
        name: oct(0o644) for name in RUN_FILES}

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
    standardizer = Standardizer.from_state(model.metadata["preprocessing"])
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


# -- in-process helpers: the same main() the console script calls ------------------------------------------
from neural_networks import cli  # noqa: E402


def call_main(capsys, *args):
    """Run ``cli.main`` in this process; (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except KeyboardInterrupt:  # would stop the whole test session
        pytest.fail("KeyboardInterrupt escaped from the command")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, err, *fragments):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def small_model_file(path, input_shape, n_classes=3, metadata="identity"):
    """A saved Flatten → softmax model for samples of ``input_shape``."""
    from neural_networks.datasets import Standardizer
    from neural_networks.layers import Flatten, FullyConnected

    model = nn.NeuralNetwork([Flatten(), FullyConnected(n_classes, "softmax")], seed=0)
    model.build(input_shape)
    if metadata == "identity":
        metadata = {"preprocessing": Standardizer(0.0, 1.0).get_state()}  # the identity
    model.metadata = metadata or {}
    model.save(path)
    return model


# -- issue: predict never writes over its inputs ---------------------------------------------------------
def test_predict_refuses_to_write_over_its_inputs_or_the_model(tmp_path, capsys):
    small_model_file(tmp_path / "m.npz", (4,))
    X = np.random.default_rng(0).standard_normal((5, 4))
    np.save(tmp_path / "x.npy", X)
    before = (tmp_path / "x.npy").read_bytes()
    for output in ("x.npy", "m.npz", "./sub/../x.npy"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy",
                                 "--output", tmp_path / output)
        one_error_line(code, err, "refusing to write over it")
    os.link(tmp_path / "x.npy", tmp_path / "hard-link.npy")
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy",
                             "--output", tmp_path / "hard-link.npy")
    one_error_line(code, err, "the inputs")
    assert (tmp_path / "x.npy").read_bytes() == before
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), X)


# -- issue: the preprocessing travels with the model -------------------------------------------------------
def test_a_model_saved_from_python_needs_its_preprocessing_record(tmp_path, capsys):
    from neural_networks.datasets import load_dataset
    from neural_networks.layers import Flatten, FullyConnected
    from neural_networks.optimizers import Adam

    data = load_dataset("digits", seed=0)  # standardised, as in the README's example
    model = nn.NeuralNetwork([Flatten(), FullyConnected(10, "softmax")], optimizer=Adam(lr=1e-2), seed=0)
    model.fit(data.X_train, data.y_train, epochs=5, verbose=0)
    expected = model.evaluate(data.X_test, data.y_test)
    model.save(tmp_path / "digits.npz")
    code, _, err = call_main(capsys, "evaluate", tmp_path / "digits.npz", "--dataset", "digits")
    one_error_line(code, err, "records no preprocessing", "model.metadata.update(data.metadata())",
                   "--no-preprocessing")
    np.save(tmp_path / "x.npy", data.X_test[:3])
    code, _, err = call_main(capsys, "predict", tmp_path / "digits.npz", tmp_path / "x.npy")
    one_error_line(code, err, "records no preprocessing")

    model.metadata.update(data.metadata())
    model.save(tmp_path / "digits.npz")
    code, out, err = call_main(capsys, "evaluate", tmp_path / "digits.npz")  # dataset recorded too
    assert code == 0, err
    report = json.loads(out)
    assert report["test_accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert report["test_loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert expected["accuracy"] > 0.8

    # --no-preprocessing feeds the stored values as they are: the raw 0-16 pixels here
    code, out, err = call_main(capsys, "evaluate", tmp_path / "digits.npz", "--no-preprocessing")
    assert code == 0, err
    raw = load_dataset("digits", seed=0, standardize=False)
    assert json.loads(out)["test_accuracy"] == pytest.approx(
        model.evaluate(raw.X_test, raw.y_test)["accuracy"], abs=1e-12)


def test_predict_reads_the_record_of_earlier_versions(tmp_path, capsys):
    from neural_networks.datasets import Standardizer

    record = Standardizer(mean=[1.0, 2.0, 3.0, 4.0], std=[2.0, 2.0, 4.0, 4.0])
    model = small_model_file(tmp_path / "m.npz", (4,), metadata={"standardizer": record.get_state()})
    X = np.random.default_rng(1).standard_normal((6, 4))
    np.save(tmp_path / "x.npy", X)
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy")
    assert code == 0, err
    with open(tmp_path / "x.predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = model.predict(record.transform(X))
    assert [int(r["class_id"]) for r in rows] == np.argmax(expected, axis=1).tolist()


def test_evaluate_a_file_dataset_without_rescaling_twice(tmp_path, capsys):
    """MNIST files are 8-bit: the model's record scales them; nothing else does."""
    import struct

    rng = np.random.default_rng(0)
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    def write_idx(name, array):
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
        (data_dir / name).write_bytes(header + array.astype(np.uint8).tobytes())

    for prefix, n in (("train", 60), ("t10k", 30)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28)) + labels[:, None, None] * 20  # learnable
        write_idx(f"{prefix}-images-idx3-ubyte", images)
        write_idx(f"{prefix}-labels-idx1-ubyte", labels)
    code, out, err = call_main(capsys, "train", "--dataset", "MNIST", "--model", "mlp", "--epochs", 3,
                               "--data-dir", data_dir, "--runs-dir", tmp_path / "runs", "--verbose", 0)
    assert code == 0, err
    (run,) = run_folders(tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    code, out, err = call_main(capsys, "evaluate", run, "--data-dir", data_dir)
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "mnist" and report["n_samples"] == 30
    assert report["test_accuracy"] == metrics["test_accuracy"]
    assert report["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)


# -- issue: only flat vectors are reshaped -----------------------------------------------------------------
def test_predict_reshapes_flat_vectors_only(tmp_path, capsys):
    model = small_model_file(tmp_path / "m.npz", (4, 4, 3))
    rng = np.random.default_rng(2)
    nchw = rng.standard_normal((5, 3, 4, 4))
    np.save(tmp_path / "nchw.npy", nchw)
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "nchw.npy")
    one_error_line(code, err, "(4, 4, 3)", "(5, 3, 4, 4)")
    assert not (tmp_path / "nchw.predictions.csv").exists()

    nhwc = rng.standard_normal((5, 4, 4, 3))
    expected = np.argmax(model.predict(nhwc), axis=1).tolist()
    for name, X in (("flat", nhwc.reshape(5, -1)), ("nhwc", nhwc), ("one", nhwc[0])):
        np.save(tmp_path / f"{name}.npy", X)
        code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / f"{name}.npy")
        assert code == 0, err
        with open(tmp_path / f"{name}.predictions.csv", newline="") as handle:
            ids = [int(row["class_id"]) for row in csv.DictReader(handle)]
        assert ids == (expected[:1] if name == "one" else expected)


# -- issue: config values get the checks flags get, messages name the key ----------------------------------
@pytest.mark.parametrize(
    "line, key",
    [("lr = true", "lr"), ("verbose = 7", "verbose"), ('model = ["mlp"]', "model"),
     ('seed = "abc"', "seed"), ("seed = -1", "seed"), ("runs_dir = 5", "runs_dir"),
     ("epochs = true", "epochs"), ("batch-size = 2.5", "batch-size"), ('optimizer = "nope"', "optimizer"),
     ('dataset = 3', "dataset"), ("lr = nan", "lr")],
)
def test_config_values_are_checked_and_named(tmp_path, capsys, monkeypatch, line, key):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(line + "\n")
    code, _, err = call_main(capsys, "train", "--config", "bad.toml")
    message = one_error_line(code, err, f"'bad.toml': {key} must be")
    assert f"--{key}" not in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragment", [(["--seed", "-1"], "--seed must be an integer >= 0"),
                                            (["--verbose", "3"], "--verbose must be"),
                                            (["--lr", "inf"], "--lr must be a finite number")])
def test_flag_values_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    code, _, err = call_main(capsys, "train", *args)
    one_error_line(code, err, fragment)
    assert not (tmp_path / "runs").exists()


def test_names_take_any_case_for_every_flag(tmp_path, capsys):
    code, out, err = call_main(capsys, "train", "--dataset", "IRIS", "--model", "MLP", "--optimizer",
                               "SGD", "--epochs", 1, "--verbose", 0, "--runs-dir", tmp_path)
    assert code == 0, err
    (run,) = run_folders(tmp_path)
    settings = json.loads((run / "metrics.json").read_text())["settings"]
    assert (settings["dataset"], settings["model"], settings["optimizer"]) == ("iris", "mlp", "sgd")


# -- issue: crashes that must be one line ------------------------------------------------------------------
def test_predict_on_an_npz_archive_is_one_line(tmp_path):
    small_model_file(tmp_path / "m.npz", (4,))
    np.savez(tmp_path / "arch.npz", X=np.zeros((2, 4)))
    assert_usage_error(run_cli("predict", "m.npz", "arch.npz", cwd=tmp_path), "arch.npz", ".npy")


def test_runs_dir_that_is_a_file_is_refused_before_loading_data(tmp_path, capsys, monkeypatch):
    import neural_networks.datasets as datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    (tmp_path / "a-file").write_text("")
    for runs_dir in ("a-file", "a-file/runs"):
        code, _, err = call_main(capsys, "train", "--runs-dir", tmp_path / runs_dir, "--verbose", 0)
        one_error_line(code, err, "--runs-dir", "a-file", "is a file")


def test_unwritable_runs_dir_is_refused_before_loading_data(tmp_path, capsys, monkeypatch):
    import neural_networks.datasets as datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    # what os.access reports for a read-only file system (or a folder without write permission)
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    code, _, err = call_main(capsys, "train", "--runs-dir", tmp_path / "runs", "--verbose", 0)
    one_error_line(code, err, "--runs-dir", "cannot write in", str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="needs a user that folder permissions apply to")
def test_read_only_folder_is_refused_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_usage_error(run_cli("train", "--runs-dir", locked / "runs", cwd=tmp_path), "cannot write")
    finally:
        locked.chmod(0o755)


def test_predict_output_folder_and_unwritable_places(tmp_path, capsys, monkeypatch):
    small_model_file(tmp_path / "m.npz", (4,))
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    (tmp_path / "out").mkdir()
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy",
                             "--output", tmp_path / "out")
    one_error_line(code, err, "--output", "is a folder")
    real_access = os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != tmp_path and real_access(path, mode))
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy")
    one_error_line(code, err, "cannot write in", "--output")
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy",
                             "--output", tmp_path / "out" / "p.csv")
    assert code == 0, err
    assert len((tmp_path / "out" / "p.csv").read_text().splitlines()) == 3


def test_errors_of_the_system_about_a_path_are_one_line_others_are_bugs(capsys, monkeypatch, tmp_path):
    import errno

    small_model_file(tmp_path / "m.npz", (4,))

    def failing(error):
        def load_model(path):
            raise error
        return load_model

    import neural_networks.serialization as serialization

    for error in (OSError(errno.EROFS, "Read-only file system", "runs/x"),
                  PermissionError(errno.EACCES, "Permission denied", "m.npz"),
                  nn.FormatError("m.npz: not a model file")):
        monkeypatch.setattr(serialization, "read_model", failing(error))
        code, _, err = call_main(capsys, "evaluate", tmp_path / "m.npz", "--dataset", "iris")
        one_error_line(code, err, "m.npz" if "m.npz" in str(error) else "Read-only file system")
    for bug in (ValueError("a bug"), TypeError("a bug"), KeyError("a bug"), OSError(errno.EIO, "I/O error")):
        monkeypatch.setattr(serialization, "read_model", failing(bug))
        with pytest.raises(type(bug)):
            cli.main(["evaluate", str(tmp_path / "m.npz"), "--dataset", "iris"])


def test_a_bug_shows_its_traceback_and_exit_code_1(tmp_path):
    """A ValueError raised by no check of the library is a bug, not a user's mistake."""
    small_model_file(tmp_path / "m.npz", (4,))
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    script = ("import sys, neural_networks.cli as cli, neural_networks.serialization as s\n"
              "def load(path): raise ValueError('internal bug')\n"
              "s.read_model = load\n"
              "sys.exit(cli.main(['predict', 'm.npz', 'x.npy']))\n")
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: internal bug" in result.stderr


# -- issue: Ctrl-C outside training is one line ------------------------------------------------------------
def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_during_start_up_is_one_line(tmp_path, capsys, monkeypatch):
    import neural_networks.datasets as datasets

    monkeypatch.setattr(datasets, "load_dataset", interrupt)
    code, _, err = call_main(capsys, "train", "--runs-dir", tmp_path / "runs", "--verbose", 0)
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["neural-networks train: interrupted before training started; nothing was written"]
    assert run_folders(tmp_path / "runs") == []


def test_ctrl_c_during_plotting_is_one_line_and_keeps_the_results(tmp_path, capsys, monkeypatch):
    from neural_networks import plotting

    monkeypatch.setattr(plotting, "plot_history", interrupt)
    code, _, err = call_main(capsys, *IRIS_ARGS, "--epochs", 1, "--runs-dir", tmp_path)
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "while drawing the plots" in lines[0] and "model.npz" in lines[0]
    (run,) = run_folders(tmp_path)
    assert {"model.npz", "metrics.json"} <= {p.name for p in run.iterdir()}


# -- issue: resume records the new total, and refuses what it cannot do ---------------------------------
IRIS_ARGS = ("train", "--dataset", "iris", "--model", "mlp", "--seed", 3, "--batch-size", 16,
             "--verbose", 0)


def interrupt_after_epoch(monkeypatch, stop_epoch):
    """Ctrl-C right after epoch ``stop_epoch`` (1-based) has been logged."""
    from neural_networks.callbacks import JSONLogger

    original = JSONLogger.on_epoch_end

    def on_epoch_end(self, epoch, logs):
        original(self, epoch, logs)
        if epoch + 1 == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(JSONLogger, "on_epoch_end", on_epoch_end)


def checkpoint_header(run):
    return json.loads(np.load(run / "last.npz")["__header__"].tobytes())


def test_resume_records_the_new_total_and_the_hint_continues(tmp_path, capsys, monkeypatch):
    code, _, err = call_main(capsys, *IRIS_ARGS, "--epochs", 2, "--runs-dir", tmp_path)
    assert code == 0, err
    (run,) = run_folders(tmp_path)

    interrupt_after_epoch(monkeypatch, 4)
    code, _, err = call_main(capsys, "train", "--resume", run, "--epochs", 100000)
    assert code == 130
    hint = err.strip().splitlines()[-1].strip()
    assert hint == f"neural-networks train --resume {run}"
    header = checkpoint_header(run)
    assert header["metadata"]["train_settings"]["epochs"] == 100000
    assert header["state"]["trainer"]["epoch"] == 3  # the checkpoint follows the logger: epoch 4 unsaved

    monkeypatch.undo()
    interrupt_after_epoch(monkeypatch, 6)
    code, _, err = call_main(capsys, *hint.split()[1:])  # the printed hint, as typed
    assert code == 130, err  # it trained on (epochs 4 to 6) instead of stopping at once
    assert len(json.loads((run / "history.json").read_text())) == 6
    assert checkpoint_header(run)["state"]["trainer"]["epoch"] == 5

    monkeypatch.undo()
    code, _, err = call_main(capsys, "train", "--resume", run, "--epochs", 7)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 7 and metrics["settings"]["epochs"] == 7


def test_resume_refuses_what_it_cannot_do(tmp_path, capsys):
    code, _, err = call_main(capsys, *IRIS_ARGS, "--epochs", 3, "--runs-dir", tmp_path)
    assert code == 0, err
    (run,) = run_folders(tmp_path)
    before = (run / "last.npz").read_bytes()
    (tmp_path / "typo.toml").write_text("epochz = 5\n")
    for args, fragments in (
        (["--config", tmp_path / "typo.toml"], ["--config"]),
        (["--epochs", 2], ["--epochs 2", "already completed 3 epochs"]),
        ([], ["finished all its 3 epochs", "--epochs"]),
        (["--epochs", 3], ["finished all its 3 epochs"]),
        (["--optimizer", "SGD"], ["--optimizer"]),
    ):
        code, _, err = call_main(capsys, "train", "--resume", run, *args)
        one_error_line(code, err, *fragments)
    # the same settings in another case are no change
    code, _, err = call_main(capsys, "train", "--resume", run, "--optimizer", "ADAM", "--epochs", 4)
    assert code == 0, err
    assert (run / "last.npz").read_bytes() != before
    code, _, err = call_main(capsys, "train", "--resume", tmp_path / "nowhere")
    one_error_line(code, err, "nowhere")


# -- issue: --help and --version ----------------------------------------------------------------------------
def test_help_has_no_markup_and_version_is_printed(capsys):
    for args in ([], ["train"], ["evaluate"], ["predict"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*args, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage: neural-networks" in text and "`" not in text, text
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"neural-networks {nn.__version__}"


# -- a regression: sinewave with the gru preset ---------------------------------------------------------
REGRESSION_RUN_FILES = RUN_FILES - {"confusion_matrix.png", "filters.png"}


def last_value_mse(X: np.ndarray, y: np.ndarray) -> float:
    """The error of predicting that each wave repeats its last input value."""
    return float(np.mean((X[:, -1, :].astype(np.float64) - y) ** 2))


def png_size(path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def sinewave_run(tmp_path_factory):
    """``neural-networks train --dataset sinewave --model gru`` with its default settings."""
    cwd = tmp_path_factory.mktemp("sinewave")
    result = run_cli("train", "--dataset", "sinewave", "--model", "gru", "--verbose", 0, cwd=cwd)
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(cwd / "runs")
    return cwd, run, result


def test_sinewave_trains_a_regression_with_l2_and_reports_its_error(sinewave_run):
    from neural_networks.datasets import load_dataset

    cwd, run, result = sinewave_run
    assert {p.name for p in run.iterdir()} == REGRESSION_RUN_FILES  # no confusion matrix, no filters
    model = nn.load(run / "model.npz")
    assert model.loss.name == "l2"
    assert model.layers[-1].n_out == 1 and model.layers[-1].activation.name == "linear"
    assert model.metadata["class_names"] == []

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "regression"
    assert not any("accuracy" in key for key in metrics)
    # the gru preset's own defaults: a run of seconds
    assert (metrics["epochs"], metrics["settings"]["epochs"], metrics["settings"]["lr"]) == (5, 5, 0.01)
    history = json.loads((run / "history.json").read_text())
    assert all(row["accuracy"] is None and row["val_accuracy"] is None for row in history)
    assert history[-1]["loss"] < history[0]["loss"]

    # the reported errors are those of model.npz on the seed-0 sinewave test split (up to the
    # rounding of another BLAS thread count: the command ran single-threaded)
    data = load_dataset("sinewave", seed=0)
    predicted = model.predict(data.X_test).astype(np.float64)
    assert metrics["test_mse"] == pytest.approx(np.mean((predicted - data.y_test) ** 2), rel=1e-5)
    assert metrics["test_mae"] == pytest.approx(np.mean(np.abs(predicted - data.y_test)), rel=1e-5)
    assert metrics["test_loss"] == pytest.approx(model.evaluate(data.X_test, data.y_test)["loss"], rel=1e-5)
    assert metrics["test_loss"] == pytest.approx(metrics["test_mse"], rel=1e-5)  # one target value
    # and they beat repeating the last value by far
    assert metrics["test_mse"] < last_value_mse(data.X_test, data.y_test) / 10

    match = re.search(r"Test MSE (\S+), MAE (\S+), test loss (\S+) \(", result.stdout)
    assert match, result.stdout
    assert float(match[1]) == pytest.approx(metrics["test_mse"], rel=1e-3)
    assert float(match[2]) == pytest.approx(metrics["test_mae"], rel=1e-3)
    assert "accuracy" not in result.stdout.lower()
    width, _ = png_size(run / "curves.png")
    assert width == 500  # one panel, the loss (a classification draws loss and accuracy: 1000)


def test_digits_curves_keep_their_accuracy_panel(digits_run):
    cwd, _ = digits_run
    assert png_size(run_folders(cwd / "runs")[0] / "curves.png")[0] == 1000


def test_evaluate_a_regression_run(sinewave_run):
    cwd, run, _ = sinewave_run
    result = run_cli("evaluate", run, cwd=cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(report) == {"dataset", "test_loss", "test_mse", "test_mae", "n_samples"}
    assert report["dataset"] == "sinewave" and report["n_samples"] == 150
    for key in ("test_loss", "test_mse", "test_mae"):
        assert report[key] == pytest.approx(metrics[key], rel=1e-12), key


def test_predict_writes_a_regression_s_values(sinewave_run, tmp_path, capsys):
    from neural_networks.datasets import make_sinewave

    _, run, _ = sinewave_run
    X, _ = make_sinewave(6, 20, seed=11)
    expected = nn.load(run / "model.npz").predict(X)[:, 0]
    for name, inputs in (("sequences", X), ("no feature axis", X[:, :, 0])):
        np.save(tmp_path / "x.npy", inputs)
        code, _, err = call_main(capsys, "predict", run, tmp_path / "x.npy")
        assert code == 0, (name, err)
        with open(tmp_path / "x.predictions.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        assert reader.fieldnames == ["index", "prediction"], name
        assert [int(row["index"]) for row in rows] == list(range(6))
        # written with the digits that read back to the same float32
        np.testing.assert_array_equal(np.array([row["prediction"] for row in rows], dtype=np.float32),
                                      expected, err_msg=name)


def test_predict_writes_one_column_per_target_value(tmp_path, capsys):
    from neural_networks.layers import Flatten, FullyConnected

    model = nn.NeuralNetwork([Flatten(), FullyConnected(3, "linear")], loss="l2", seed=0).build((4,))
    model.metadata = {"preprocessing": {"mean": 0.0, "std": 1.0, "scale": 1.0}}
    model.save(tmp_path / "m.npz")
    X = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    code, _, err = call_main(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.npy")
    assert code == 0, err
    with open(tmp_path / "x.predictions.csv", newline="") as handle:
        reader = csv.reader(handle)
        header, *rows = list(reader)
    assert header == ["index", "prediction_0", "prediction_1", "prediction_2"]
    np.testing.assert_array_equal(np.array([row[1:] for row in rows], dtype=np.float32),
                                  nn.load(tmp_path / "m.npz").predict(X))


def test_evaluate_refuses_a_model_of_the_other_task(sinewave_run, tmp_path, capsys):
    _, run, _ = sinewave_run
    code, _, err = call_main(capsys, "evaluate", run, "--dataset", "iris")
    one_error_line(code, err, "iris is a classification dataset", "a regression model", "'l2'")
    small_model_file(tmp_path / "classifier.npz", (20, 1))
    code, _, err = call_main(capsys, "evaluate", tmp_path / "classifier.npz", "--dataset", "sinewave")
    one_error_line(code, err, "sinewave is a regression dataset", "a classification model",
                   "'cross_entropy'")


def test_evaluate_refuses_a_regression_of_another_width(tmp_path, capsys):
    from neural_networks.layers import Flatten, FullyConnected

    model = nn.NeuralNetwork([Flatten(), FullyConnected(2, "linear")], loss="l2", seed=0).build((20, 1))
    model.metadata = {"preprocessing": {"mean": 0.0, "std": 1.0, "scale": 1.0}}
    model.save(tmp_path / "two.npz")
    code, _, err = call_main(capsys, "evaluate", tmp_path / "two.npz", "--dataset", "sinewave")
    one_error_line(code, err, "sinewave has 1 target values per sample", "2 outputs")


@pytest.mark.parametrize(
    "args, fragments",
    [(["--dataset", "sinewave"], ["'cnn' needs images", "(20, 1)", "--model gru"]),
     (["--dataset", "iris", "--model", "gru"], ["'gru' needs sequences", "(4,)", "--model mlp"]),
     (["--model", "gru"], ["'gru' needs sequences", "(8, 8, 1)", "--model cnn"])],
    ids=["cnn on sequences", "gru on tabular data", "gru on images"],
)
def test_a_preset_on_data_of_the_wrong_rank_is_one_line(tmp_path, capsys, args, fragments):
    code, _, err = call_main(capsys, "train", "--verbose", 0, "--runs-dir", tmp_path / "runs", *args)
    one_error_line(code, err, *fragments)
    assert run_folders(tmp_path / "runs") == []


def train_settings(*argv):
    return cli._train_settings(cli._parser().parse_args(["train", *map(str, argv)]))


def test_a_preset_s_defaults_give_way_to_the_config_and_the_flags(tmp_path):
    assert train_settings("--model", "gru") == cli.TRAIN_DEFAULTS | {"model": "gru", "epochs": 5, "lr": 0.01}
    assert train_settings("--model", "GRU", "--epochs", 2)["epochs"] == 2
    assert train_settings("--model", "gru", "--lr", 0.5)["lr"] == 0.5
    config = tmp_path / "run.toml"
    config.write_text('model = "gru"\nepochs = 3\n')
    assert {k: v for k, v in train_settings("--config", config).items() if k in ("epochs", "lr")} == {
        "epochs": 3, "lr": 0.01}
    assert train_settings("--config", config, "--epochs", 4)["epochs"] == 4
    # the other presets keep the command's defaults
    for model in ("cnn", "mlp", "lenet", "vgg"):
        settings = train_settings("--model", model)
        assert (settings["epochs"], settings["lr"]) == (cli.TRAIN_DEFAULTS["epochs"], cli.TRAIN_DEFAULTS["lr"])
    assert train_settings()["epochs"] == cli.TRAIN_DEFAULTS["epochs"]
