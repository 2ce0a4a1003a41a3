"""Callbacks (EarlyStopping, ModelCheckpoint, LearningRateScheduler, CSVLogger,
JSONLogger) and NeuralNetwork.summary."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

import neural_networks as nn
from neural_networks.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateScheduler,
    ModelCheckpoint,
)
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.optimizers import SGD, Adam

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


def toy_data(seed=0, n=48, d=4, k=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.argmax(X @ np.random.default_rng(99).standard_normal((d, k)), axis=1)
    return X, y


def mlp(seed=0, optimizer=None):
    return nn.NeuralNetwork([FullyConnected(8, "tanh"), FullyConnected(3, "softmax")],
                            optimizer=optimizer if optimizer is not None else SGD(lr=0.2), seed=seed)


def parameters(model):
    return {name: array.copy() for name, array in model.named_parameters().items()}


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class WeightRecorder(Callback):
    """The parameters at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs):
        self.weights.append(parameters(self.model))


class FakeModel:
    """Just what EarlyStopping needs: parameters and stop_training."""

    def __init__(self):
        self.stop_training = False
        self.array = np.zeros(2)

    def named_parameters(self):
        return {"0.W": self.array}


def expected_stop(values, patience, mode="min", min_delta=0.0):
    """(best index, index of the epoch that stops training or None) by the documented rule."""
    best, best_index, wait = (np.inf if mode == "min" else -np.inf), None, 0
    for index, value in enumerate(values):
        better = value < best - min_delta if mode == "min" else value > best + min_delta
        if better:
            best, best_index, wait = value, index, 0
        else:
            wait += 1
            if wait > patience:
                return best_index, index
    return best_index, None


# -- EarlyStopping ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, patience, mode",
    [
        ([3.0, 2.0, 2.5, 2.4, 2.6, 1.0], 1, "min"),
        ([3.0, 2.0, 2.5, 2.4, 2.6, 1.0], 3, "min"),
        ([5.0, 5.0, 5.0, 5.0], 0, "min"),
        ([0.1, 0.5, 0.4, 0.5, 0.45], 1, "max"),
        ([1.0, np.nan, np.inf, 0.5], 1, "min"),
    ],
)
def test_early_stopping_follows_patience(values, patience, mode):
    callback = EarlyStopping(monitor="val_accuracy" if mode == "max" else "val_loss", patience=patience)
    model = FakeModel()
    callback.on_train_begin(model)
    stopped_at = None
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {callback.monitor: value})
        if model.stop_training:
            stopped_at = epoch
            break
    finite = [v if np.isfinite(v) else (np.inf if mode == "min" else -np.inf) for v in values]
    best_index, stop_index = expected_stop(finite, patience, mode)
    assert stopped_at == stop_index
    assert callback.best_epoch == best_index
    assert callback.mode == mode


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    X, y = toy_data(0)
    Xv, yv = toy_data(1, n=24)
    yv = (yv + 1) % 3  # validation labels disagree with the training rule: val_loss rises
    recorder, stopper = WeightRecorder(), EarlyStopping(monitor="val_loss", patience=2)
    model = mlp(optimizer=SGD(lr=0.3))
    history = model.fit(X, y, epochs=40, batch_size=8, validation_data=(Xv, yv), verbose=0,
                        callbacks=[recorder, stopper])
    best, stop = expected_stop(history["val_loss"], patience=2)
    assert stop is not None and stop < 39, "the scenario must stop early"
    assert len(history.epochs) == stop + 1 == len(recorder.weights)
    assert stopper.best_epoch == best and stopper.stopped_epoch == stop
    assert stopper.best == history["val_loss"][best]
    assert_same_parameters(parameters(model), recorder.weights[best])
    assert any(not np.array_equal(v, recorder.weights[-1][k]) for k, v in parameters(model).items())


def test_early_stopping_without_restore_keeps_the_last_weights():
    X, y = toy_data(0)
    Xv, yv = toy_data(1, n=24)
    yv = (yv + 1) % 3
    recorder = WeightRecorder()
    stopper = EarlyStopping(patience=1, restore_best_weights=False)
    model = mlp(optimizer=SGD(lr=0.3))
    history = model.fit(X, y, epochs=40, batch_size=8, validation_data=(Xv, yv), verbose=0,
                        callbacks=[recorder, stopper])
    assert stopper.stopped_epoch is not None and len(history.epochs) < 40
    assert_same_parameters(parameters(model), recorder.weights[-1])


def test_early_stopping_rejects_negative_patience_and_bad_mode():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="sideways")


# -- ModelCheckpoint ----------------------------------------------------------------------------------
def test_model_checkpoint_writes_only_when_the_monitored_value_improves(tmp_path):
    X, y = toy_data(2)
    model = mlp()
    model.build((4,))
    path = tmp_path / "best.npz"
    checkpoint = ModelCheckpoint(path, monitor="val_loss")
    checkpoint.on_train_begin(model)
    saved = {}
    for epoch, value in enumerate([1.0, 2.0, 0.5, 0.5, 0.7, 0.1]):
        for array in model.named_parameters().values():
            array += 1.0  # new weights every epoch
        existed = path.exists()
        before = path.read_bytes() if existed else None
        checkpoint.on_epoch_end(epoch, {"val_loss": value, "loss": 9.0})
        improved = value < min([np.inf, *[v for v in saved.values()]])
        if improved:
            saved[epoch] = value
            assert_same_parameters(parameters(nn.load(path)), parameters(model))
        elif existed:
            assert path.read_bytes() == before
        else:
            assert not path.exists()
    assert list(saved) == [0, 2, 5]
    assert checkpoint.best == 0.1 and checkpoint.best_epoch == 5


def test_model_checkpoint_during_fit_holds_the_best_epoch(tmp_path):
    X, y = toy_data(3)
    Xv, yv = toy_data(4, n=24)
    yv = (yv + 1) % 3
    recorder = WeightRecorder()
    path = tmp_path / "sub" / "best.npz"
    model = mlp(optimizer=SGD(lr=0.3))
    history = model.fit(X, y, epochs=6, batch_size=8, validation_data=(Xv, yv), verbose=0,
                        callbacks=[recorder, ModelCheckpoint(path)])
    best = int(np.argmin(history["val_loss"]))
    loaded = nn.load(path)
    assert_same_parameters(parameters(loaded), recorder.weights[best])
    assert best < 5, "the scenario must have a best epoch before the last one"
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.npz"]


def test_model_checkpoint_saves_every_epoch_when_not_best_only(tmp_path):
    X, y = toy_data(5)
    path = tmp_path / "every.npz"
    snapshots = []

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append(parameters(nn.load(path)))

    recorder = WeightRecorder()
    model = mlp()
    model.fit(X, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[recorder, ModelCheckpoint(path, monitor="loss", mode="max", save_best_only=False), Snap()])
    for saved, weights in zip(snapshots, recorder.weights):
        assert_same_parameters(saved, weights)


# -- LearningRateScheduler -------------------------------------------------------------------------------
def test_learning_rate_scheduler_sets_the_lr_of_every_epoch():
    X, y = toy_data(6)
    schedule = [0.1, 0.05, 0.025, 0.0125]
    model = mlp(optimizer=SGD(lr=0.5, lr_scheduler="exponential"))
    history = model.fit(X, y, epochs=4, batch_size=8, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch: schedule[epoch])])
    assert history["lr"] == schedule
    assert model.optimizer.lr == schedule[-1]


def test_learning_rate_scheduler_lr_is_the_one_used_for_the_updates():
    X, y = toy_data(7)
    frozen = mlp(seed=1)
    frozen.build((4,))
    initial = parameters(frozen)
    frozen.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[LearningRateScheduler(lambda e: 0.0)])
    assert_same_parameters(parameters(frozen), initial)

    scheduled, plain = mlp(seed=1, optimizer=SGD(lr=0.9)), mlp(seed=1, optimizer=SGD(lr=0.07))
    scheduled.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[LearningRateScheduler(lambda e: 0.07)])
    plain.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert_same_parameters(parameters(scheduled), parameters(plain))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_learning_rate_scheduler_refuses_invalid_rates(bad):
    X, y = toy_data(8, n=8)
    with pytest.raises(ValueError, match="LearningRateScheduler"):
        mlp().fit(X, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e: bad)])


# -- loggers ---------------------------------------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    X, y = toy_data(9)
    Xv, yv = toy_data(10, n=12)
    path = tmp_path / "log.csv"
    path.write_text("stale\n")  # replaced, not appended to
    history = mlp().fit(X, y, epochs=3, batch_size=8, validation_data=(Xv, yv), verbose=0,
                        callbacks=[CSVLogger(path)])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert list(rows[0]) == ["epoch", *[k for k in METRICS if k in rows[0]]]
    assert set(rows[0]) == {"epoch", *METRICS}
    for index, row in enumerate(rows):
        assert int(row["epoch"]) == index + 1
        for key in METRICS:
            assert float(row[key]) == history[key][index], key


def test_csv_logger_append_keeps_earlier_rows(tmp_path):
    X, y = toy_data(11)
    path = tmp_path / "log.csv"
    model = mlp()
    model.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[CSVLogger(path)])
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[CSVLogger(path, append=True)])
    with open(path, newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2", "1"]


def test_json_logger_writes_one_row_per_epoch(tmp_path):
    X, y = toy_data(12)
    path = tmp_path / "history.json"
    history = mlp().fit(X, y, epochs=3, batch_size=8, verbose=0, validation_split=0.25,
                        callbacks=[JSONLogger(path)])
    rows = json.loads(path.read_text())
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for index, row in enumerate(rows):
        for key in METRICS:
            assert row[key] == history[key][index], key
    assert not [p for p in tmp_path.iterdir() if p.name != "history.json"]  # no temp file left


# -- summary -----------------------------------------------------------------------------------------------------
def _parse_summary(text):
    rows = []
    for line in text.splitlines():
        match = re.match(r"^(\d+): (\w+)\((\w*)\)\s+(\(.*?\))\s+([\d,]+)$", line)
        if match:
            rows.append((int(match[1]), match[2], match[4], int(match[5].replace(",", ""))))
    return rows


def test_summary_lists_every_layer_with_shapes_and_parameter_counts_before_any_data():
    layers = [Conv2D(4, 3, "relu"), Pool2D(2, stride=2), Conv2D(5, (2, 3), "tanh", pad="valid"),
              Flatten(), FullyConnected(7, "relu"), FullyConnected(3, "softmax")]
    model = nn.NeuralNetwork(layers, optimizer=Adam(), seed=0)
    printed = []
    text = model.summary(input_shape=(8, 8, 2), print_fn=printed.append)
    assert printed == [text]
    rows = _parse_summary(text)
    assert [row[0] for row in rows] == list(range(len(layers)))
    assert [row[1] for row in rows] == [type(layer).__name__ for layer in layers]

    # output shapes and parameter counts derived independently: run a batch through each layer
    out = np.zeros((2, 8, 8, 2), dtype=np.float32)
    for (index, _, shape, count), layer in zip(rows, layers):
        out = layer.forward(out, retain_derived=False)
        assert shape == str((None,) + out.shape[1:]), index
        assert count == sum(int(np.prod(p.shape)) for p in layer.parameters.values()), index
    total = sum(row[3] for row in rows)
    assert total == model.count_parameters() == sum(p.size for p in model.named_parameters().values())
    assert f"Trainable parameters: {total:,}" in text and "Non-trainable parameters: 0" in text
    assert "cross_entropy" in text and "Adam" in text


def test_summary_of_an_unbuilt_model_needs_an_input_shape():
    model = nn.NeuralNetwork([FullyConnected(3, "softmax")])
    with pytest.raises(ValueError, match="input_shape"):
        model.summary(print_fn=lambda _: None)
    X, y = toy_data(13, n=6)
    model.fit(X, y, epochs=1, verbose=0)
    rows = _parse_summary(model.summary(print_fn=lambda _: None))
    assert rows == [(0, "FullyConnected", "(None, 3)", 4 * 3 + 3)]


def test_csv_logger_continues_its_file_when_a_run_is_resumed(tmp_path):
    from neural_networks.callbacks import CSVLogger

    X, y = toy_data()
    log = tmp_path / "log.csv"
    mlp().fit(X, y, epochs=2, batch_size=16, verbose=0, checkpoint=tmp_path, callbacks=[CSVLogger(log)])
    mlp().fit(X, y, epochs=4, batch_size=16, verbose=0, resume=tmp_path, callbacks=[CSVLogger(log)])
    epochs = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3", "4"]
    mlp().fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[CSVLogger(log)])
    assert len(log.read_text().splitlines()) == 2  # a new run starts a new file
