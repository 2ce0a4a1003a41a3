"""The course's interface: NeuralNetwork(loss=, layer_args=, optimizer_args=, logger=, seed=),
model.train(dataset, epochs), model.test(dataset) and the course Logger."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import neural_networks as nn
from neural_networks import datasets
from neural_networks.logs import Logger
from neural_networks.losses import CrossEntropy
from neural_networks.optimizers import SGD

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LAYER_ARGS = [
    {"name": "fully_connected", "activation": "relu", "weight_init": "xavier_uniform", "n_out": 25},
    {"name": "fully_connected", "activation": "softmax", "n_out": None},
]
OPTIMIZER_ARGS = {"name": "SGD", "lr": 0.01, "lr_scheduler": "constant", "lr_decay": 0.99,
                  "stage_length": 1000, "staircase": True, "clip_norm": 1.0, "momentum": 0.9}


def course_model(seed, logger=None):
    return nn.NeuralNetwork(loss="cross_entropy", layer_args=[dict(a) for a in LAYER_ARGS],
                            optimizer_args=dict(OPTIMIZER_ARGS), logger=logger, seed=seed)


def iris_dataset(seed, batch_size=25):
    """A stratified 100/50 train/validation split of iris, standardised on the training part;
    the validation part doubles as the test set."""
    X, y, _ = datasets.load_embedded("iris")
    train, validation = datasets.stratified_split(y, [2 / 3, 1 / 3], seed)
    standardizer = datasets.Standardizer().fit(X[train])
    X_train, X_val = standardizer.transform(X[train]), standardizer.transform(X[validation])
    return datasets.Dataset(X_train, y[train], batch_size, validation_set=X_val,
                            validation_labels=y[validation], test_set=X_val,
                            test_labels=y[validation], seed=seed)


def test_iris_course_experiment_reaches_92_percent_mean_validation_accuracy():
    accuracies = []
    for seed in range(5):
        dataset = iris_dataset(seed)
        assert (dataset.n_training, dataset.n_validation, dataset.out_dim) == (100, 50, 3)
        model = course_model(seed)
        history = model.train(dataset, 100)
        assert history.epochs == list(range(1, 101))
        assert all(lr == 0.01 for lr in history["lr"])
        assert history["loss"][-1] < history["loss"][0]
        final = model.evaluate(dataset.validate.data_, dataset.validate.labels)
        assert history["val_accuracy"][-1] == final["accuracy"]
        accuracies.append(history["val_accuracy"][-1])
    assert np.mean(accuracies) >= 0.92, accuracies


def test_course_model_builds_its_output_layer_from_the_dataset():
    model = course_model(0)
    assert len(model.layers) == 1 and not model.built
    dataset = iris_dataset(0)
    model.train(dataset, 1)
    assert len(model.layers) == 2
    assert model.layers[-1].parameters["W"].shape == (25, 3)
    assert model.layers[0].parameters["W"].shape == (4, 25)
    assert isinstance(model.optimizer, SGD)
    assert model.optimizer.momentum == 0.9 and model.optimizer.clip_norm == 1.0


def test_course_training_is_reproducible_with_a_seed():
    def run(seed):
        model = course_model(seed)
        model.train(iris_dataset(seed), 3)
        return model.named_parameters()

    a, b, c = run(1), run(1), run(2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[name], c[name]) for name in a)


@pytest.mark.parametrize("batch_size", [25, 20, 7])
def test_test_returns_the_loss_and_error_of_every_batch(batch_size):
    dataset = iris_dataset(0, batch_size=batch_size)
    model = course_model(0)
    model.train(dataset, 5)
    results = model.test(dataset)
    n_batches = math.ceil(50 / batch_size)
    assert set(results) == {"loss", "error"}
    assert len(results["loss"]) == len(results["error"]) == n_batches
    X, Y = dataset.test.data_, dataset.test.labels
    for index, start in enumerate(range(0, 50, batch_size)):
        Y_hat = model.predict(X[start:start + batch_size])
        Y_batch = Y[start:start + batch_size]
        assert results["loss"][index] == pytest.approx(CrossEntropy()(Y_batch.astype(Y_hat.dtype), Y_hat), rel=1e-6)
        wrong = np.mean(np.argmax(Y_hat, axis=1) != np.argmax(Y_batch, axis=1))
        assert results["error"][index] == pytest.approx(wrong, abs=1e-12)
    with_predictions = model.test(dataset, save_predictions=True)
    # batch by batch: BLAS may round a 7-row product differently from a 50-row one
    for index, start in enumerate(range(0, 50, batch_size)):
        np.testing.assert_array_equal(with_predictions["prediction"][index],
                                      model.predict(X[start:start + batch_size]))
    assert with_predictions["loss"] == results["loss"]


def test_initialize_dataset_feeds_the_course_model():
    dataset = datasets.initialize_dataset("iris", batch_size=16, seed=0)
    model = course_model(0)
    history = model.train(dataset, 3)
    assert len(history.epochs) == 3
    assert all(v is not None for v in history["val_loss"])
    results = model.test(dataset)
    assert len(results["loss"]) == math.ceil(dataset.n_test / 16)


# -- the course Logger -------------------------------------------------------------------------------------------
def test_logger_saves_the_log_and_plots_the_curves(tmp_path):
    logger = Logger("iris_mlp", model_args={"layers": LAYER_ARGS}, data_args={"name": "iris"},
                    save=True, plot=True, save_dir=tmp_path)
    model = course_model(0, logger=logger)
    history = model.train(iris_dataset(0), 3)
    folder = tmp_path / "iris_mlp"
    log = json.loads((folder / "log.json").read_text())
    assert len(log) == 3 == len(logger.log)
    for epoch, entry in enumerate(log):
        assert entry["loss"]["train"] == history["loss"][epoch]
        assert entry["loss"]["validate"] == history["val_loss"][epoch]
        assert entry["error"]["train"] == pytest.approx(1 - history["accuracy"][epoch], abs=1e-12)
        assert entry["error"]["validate"] == pytest.approx(1 - history["val_accuracy"][epoch], abs=1e-12)
    for png in ("loss.png", "error.png"):
        assert (folder / png).read_bytes().startswith(PNG_SIGNATURE), png
    assert json.loads((folder / "model_args.json").read_text()) == {"layers": LAYER_ARGS}
    assert json.loads((folder / "data_args.json").read_text()) == {"name": "iris"}
    logger.reset()
    assert logger.log == []


def test_logger_without_save_or_plot_writes_nothing(tmp_path):
    logger = Logger("quiet", save=False, plot=False, save_dir=tmp_path)
    model = course_model(0, logger=logger)
    model.train(iris_dataset(0), 2)
    assert len(logger.log) == 2
    assert list(tmp_path.iterdir()) == []


def test_logger_save_only_writes_json_and_no_png(tmp_path):
    logger = Logger("json_only", save=True, plot=False, save_dir=tmp_path)
    logger.push({"loss": {"train": 1.0, "validate": None}, "error": {"train": 0.5, "validate": None}})
    folder = tmp_path / "json_only"
    assert json.loads((folder / "log.json").read_text()) == logger.log
    assert not list(folder.glob("*.png"))


@pytest.mark.parametrize("loss, expected_error", [("l2", "mse"), ("mae", None), ("huber", None)])
def test_logger_error_of_a_regression_is_the_mean_squared_error_for_l2(loss, expected_error):
    """The course's error for "l2" is the MSE over every output value (here 3 per sample);
    the other regression losses have no course error."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    Y = X[:, :3] @ rng.standard_normal((3, 3))
    dataset = datasets.Dataset(X[:30], Y[:30], 10, validation_set=X[30:], validation_labels=Y[30:], seed=0)
    logger = Logger("regression")
    model = nn.NeuralNetwork(loss=loss, layer_args=[{"name": "fully_connected", "activation": "linear",
                                                     "n_out": None}],
                             optimizer_args={"name": "SGD", "lr": 0.01}, logger=logger, seed=0)
    history = model.train(dataset, 2)
    for epoch, entry in enumerate(logger.log):
        if expected_error is None:
            assert entry["error"] == {"train": None, "validate": None}
            continue
        assert entry["error"]["train"] == pytest.approx(history["loss"][epoch] / 3, rel=1e-12)
        assert entry["error"]["validate"] == pytest.approx(history["val_loss"][epoch] / 3, rel=1e-12)
    if expected_error == "mse":
        Y_hat = model.predict(X[30:])
        assert logger.log[-1]["error"]["validate"] == pytest.approx(np.mean((Y_hat - Y[30:]) ** 2), rel=1e-5)
