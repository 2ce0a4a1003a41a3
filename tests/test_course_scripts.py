"""The course's own scripts, replayed end to end: ``train_ffnn.py`` builds its network with
``initialize_model`` from AttrDict configs (the output layer's n_out "set by the
dataset"), trains it on ``initialize_dataset("iris", batch_size=25)`` with a Logger, and
tests it; ``train_rnn.py`` does the same with an Elman RNN and L2 on sine waves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neural_networks.datasets import initialize_dataset
from neural_networks.logs import Logger
from neural_networks.models import initialize_model
from neural_networks.utils.data_structures import AttrDict


def test_train_ffnn_script_flow(tmp_path):
    # the seed's train_ffnn.py configuration (course framework, 2023 values)
    optimizer_args = AttrDict({"name": "SGD", "lr": 0.01, "lr_scheduler": "constant", "lr_decay": 0.99,
                               "stage_length": 1000, "staircase": True, "clip_norm": 1.0,
                               "momentum": 0.9})
    layer_args = [AttrDict({"name": "fully_connected", "activation": "relu", "weight_init": "xavier_uniform",
                            "n_out": 25}),
                  AttrDict({"name": "fully_connected", "activation": "softmax", "n_out": None})]
    model_args = AttrDict({"name": "feed_forward", "loss": "cross_entropy", "layer_args": layer_args,
                           "optimizer_args": optimizer_args, "seed": 0})
    data_args = AttrDict({"name": "iris", "batch_size": 25})
    np.random.seed(model_args.seed)  # the script seeds NumPy globally, and passes no seed

    logger = Logger(model_name="ffnn_iris", model_args=model_args, data_args=data_args,
                    save=True, plot=False,  # the script plots; 200 redrawn figures are slow to test
                    save_dir=str(tmp_path / "experiments"))
    model = initialize_model(name=model_args.name, loss=model_args.loss, layer_args=model_args.layer_args,
                             optimizer_args=model_args.optimizer_args, logger=logger)
    dataset = initialize_dataset(name=data_args.name, batch_size=data_args.batch_size)
    model.train(dataset, epochs=100)
    results = model.test(dataset)

    assert model.layers[-1].n_out == dataset.out_dim == 3  # sized from the data
    assert len(logger.log) == 100
    first, last = logger.log[0], logger.log[-1]
    # the course's reported run (hidden 25, lr 1e-2): train loss 0.085 and validation error 0
    # after 100 epochs; allow for another split and initialisation
    assert last["loss"]["train"] < 0.2 < first["loss"]["train"]
    assert last["error"]["validate"] <= 0.1
    assert np.mean(results["error"]) <= 0.1
    assert len(results["loss"]) == len(results["error"]) == dataset.test.samples_per_epoch
    run = tmp_path / "experiments" / "ffnn_iris"
    assert json.loads((run / "log.json").read_text())[-1]["loss"]["train"] == last["loss"]["train"]


def test_train_rnn_script_flow(tmp_path):
    # the course's 2020 train_rnn.py: Elman on sinewave, L2, SGD with staircase decay
    optimizer_args = AttrDict({"name": "SGD", "lr": 0.01, "lr_scheduler": "exponential", "lr_decay": 0.99,
                               "stage_length": 1000, "staircase": True, "clip_norm": 1.0,
                               "momentum": 0.9})
    layer_args = [AttrDict({"name": "elman", "activation": "tanh", "weight_init": "xavier_uniform",
                            "n_out": 16}),
                  AttrDict({"name": "fully_connected", "activation": "linear", "n_out": None})]
    model_args = AttrDict({"name": "rnn", "loss": "l2", "layer_args": layer_args,
                           "optimizer_args": optimizer_args, "seed": 0})
    data_args = AttrDict({"name": "sinewave", "batch_size": 50})
    np.random.seed(model_args.seed)  # the script seeds NumPy globally, and passes no seed

    logger = Logger(model_name="rnn_sinewave", model_args=model_args, data_args=data_args,
                    save=True, plot=False, save_dir=str(tmp_path / "experiments"))
    model = initialize_model(name=model_args.name, loss=model_args.loss, layer_args=model_args.layer_args,
                             optimizer_args=model_args.optimizer_args, logger=logger)
    dataset = initialize_dataset(name=data_args.name, batch_size=data_args.batch_size)
    assert dataset.train.data_.shape[1:] == (1, 20)  # the course's layout (N, d, T)
    model.train(dataset, epochs=100)
    results = model.test(dataset)

    assert [type(layer).__name__ for layer in model.layers] == ["Elman", "FullyConnected"]
    assert model.layers[-1].n_out == dataset.out_dim == 1  # sized from the data
    assert len(logger.log) == 100
    first, last = logger.log[0], logger.log[-1]
    assert last["loss"]["train"] < first["loss"]["train"] / 10
    # the course's error for l2 is the mean squared error: with one output, the loss itself
    for entry in (first, last):
        assert entry["error"]["train"] == entry["loss"]["train"]
        assert entry["error"]["validate"] == entry["loss"]["validate"]

    # the test error beats predicting that each wave repeats its last value by far
    X_test, y_test = dataset.test.data_, dataset.test.labels
    last_value_mse = float(np.mean((X_test[:, 0, -1:].astype(np.float64) - y_test) ** 2))
    assert len(results["error"]) == dataset.test.samples_per_epoch == 3  # 150 = 3 batches of 50
    test_mse = float(np.mean(results["error"]))  # equal batches: the mean of their errors is the MSE
    predicted = model.predict(X_test).astype(np.float64)
    assert test_mse == pytest.approx(np.mean((predicted - y_test) ** 2), rel=1e-6)
    assert test_mse < last_value_mse / 10
    run = tmp_path / "experiments" / "rnn_sinewave"
    assert json.loads((run / "log.json").read_text())[-1]["error"]["validate"] == last["error"]["validate"]
