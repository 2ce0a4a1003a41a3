"""Callbacks (EarlyStopping, ModelCheckpoint, LearningRateScheduler, CSVLogger,
JSONLogger) and NeuralNetwork.summary."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from harness import assert_json_values_and_arrays
import neural_networks as nn
from neural_networks.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LearningRateScheduler,
    ModelCheckpoint,
)
from neural_networks.errors import InvalidParameterError
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.optimizers import SGD, Adam
from neural_networks.schedulers import Exponential, StepDecay

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
    """(best index, index of the epoch that stops training or None) by Keras's rule: the
    first epoch sets the best; training stops at the end of the epoch where the number of
    epochs in a row without improvement reaches ``patience`` (never at the first epoch)."""
    best, best_index, wait = (np.inf if mode == "min" else -np.inf), None, 0
    for index, value in enumerate(values):
        better = value < best - min_delta if mode == "min" else value > best + min_delta
        if better:
            best, best_index, wait = value, index, 0
        else:
            wait += 1
            if wait >= patience and index > 0:
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
    # the override lasted only while training: the optimizer is as it was
    assert model.optimizer.lr == 0.5 and model.optimizer.lr_override is None


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


# -- argument checks --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: EarlyStopping(patience=2.7), r"^EarlyStopping: patience must be an integer >= 0, got 2.7"),
        (lambda: EarlyStopping(patience=True), r"^EarlyStopping: patience must be an integer >= 0, got True"),
        (lambda: EarlyStopping(patience="3"), r"^EarlyStopping: patience must be"),
        (lambda: EarlyStopping(patience=-1), r"^EarlyStopping: patience must be an integer >= 0, got -1"),
        (lambda: EarlyStopping(mode="sideways"), r"^EarlyStopping: mode must be one of 'auto', 'min', 'max'"),
        (lambda: EarlyStopping(mode=None), r"^EarlyStopping: mode must be"),
        (lambda: EarlyStopping(min_delta=-0.1), r"^EarlyStopping: min_delta must be a finite real number >= 0"),
        (lambda: EarlyStopping(min_delta=float("nan")), r"^EarlyStopping: min_delta must be"),
        (lambda: EarlyStopping(min_delta="0"), r"^EarlyStopping: min_delta must be"),
        (lambda: EarlyStopping(monitor=5), r"^EarlyStopping: monitor must be a string, got 5"),
        (lambda: EarlyStopping(monitor=None), r"^EarlyStopping: monitor must be a string"),
        (lambda: EarlyStopping(restore_best_weights=1), r"^EarlyStopping: restore_best_weights must be True or False"),
        (lambda: ModelCheckpoint(None), r"^ModelCheckpoint: path must be a file path"),
        (lambda: ModelCheckpoint("best.npz", monitor=["loss"]), r"^ModelCheckpoint: monitor must be a string"),
        (lambda: ModelCheckpoint("best.npz", mode="up"), r"^ModelCheckpoint: mode must be one of"),
        (lambda: ModelCheckpoint("best.npz", save_best_only="yes"), r"^ModelCheckpoint: save_best_only must be True or False"),
        (lambda: ModelCheckpoint("best.npz", min_delta=-1), r"^ModelCheckpoint: min_delta must be"),
        (lambda: LearningRateScheduler(0.1), r"^LearningRateScheduler: schedule must be a callable, got 0.1"),
        (lambda: CSVLogger(""), r"^CSVLogger: path must be a file path \(a non-empty str or os.PathLike\), got ''"),
        (lambda: CSVLogger(3), r"^CSVLogger: path must be a file path"),
        (lambda: CSVLogger("log.csv", append=1), r"^CSVLogger: append must be True or False, got 1"),
        (lambda: JSONLogger(None), r"^JSONLogger: path must be a file path"),
    ],
)
def test_callback_arguments_are_checked_when_made(build, message):
    with pytest.raises(InvalidParameterError, match=message):
        build()


@pytest.mark.parametrize("cls", [CSVLogger, JSONLogger, ModelCheckpoint])
def test_a_folder_is_refused_as_a_file_path(tmp_path, cls):
    with pytest.raises(InvalidParameterError, match=rf"^{cls.__name__}: path must be a file path, got the folder"):
        cls(tmp_path)


def test_csv_logger_creates_its_folder(tmp_path):
    X, y = toy_data(14, n=8)
    path = tmp_path / "logs" / "run" / "log.csv"
    mlp().fit(X, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    assert len(path.read_text().splitlines()) == 3


# -- monitors that are not logged ------------------------------------------------------------------------------
class EpochCounter(Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs):
        self.epochs += 1


@pytest.mark.parametrize("make", [lambda: EarlyStopping(monitor="val_acc"),
                                  lambda: ModelCheckpoint("never.npz", monitor="val_acc")])
def test_an_unknown_monitor_raises_at_the_first_epoch_listing_the_logged_metrics(tmp_path, make):
    X, y = toy_data(15)
    Xv, yv = toy_data(16, n=12)
    counter = EpochCounter()
    with pytest.raises(InvalidParameterError, match=r"monitor 'val_acc' is not a metric of this training run") as info:
        mlp().fit(X, y, epochs=5, batch_size=8, validation_data=(Xv, yv), verbose=0,
                  callbacks=[counter, make()])
    assert counter.epochs == 1
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert f"'{metric}'" in str(info.value)
    assert not (tmp_path / "never.npz").exists()


def test_a_metric_without_a_value_is_not_a_monitor():
    # a regression logs accuracy None: watching it would never improve
    X = np.random.default_rng(0).standard_normal((16, 3))
    model = nn.NeuralNetwork([FullyConnected(1, "linear")], loss="l2", seed=0)
    with pytest.raises(InvalidParameterError, match=r"monitor 'val_accuracy' is not a metric") as info:
        model.fit(X, X[:, :1], epochs=3, verbose=0, callbacks=[EarlyStopping(monitor="val_accuracy")])
    assert "'accuracy'" not in str(info.value) and "'loss'" in str(info.value)


def test_val_monitor_falls_back_to_the_training_metric_without_validation_data():
    X, y = toy_data(17)
    stopper = EarlyStopping(monitor="val_loss", patience=100)
    history = mlp().fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[stopper])
    assert stopper.best == min(history["loss"])


# -- Keras's patience ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patience, epochs_run", [(0, 2), (1, 2), (2, 3), (4, 5)])
def test_patience_on_a_metric_that_never_improves_runs_patience_plus_one_epochs(patience, epochs_run):
    # lr 0: the loss is the same every epoch, so only the first epoch "improves" (from inf)
    X, y = toy_data(18)
    stopper = EarlyStopping(monitor="loss", patience=patience)
    history = mlp(optimizer=SGD(lr=0.0)).fit(X, y, epochs=20, batch_size=8, shuffle=False, verbose=0, callbacks=[stopper])
    assert len(history.epochs) == epochs_run
    assert stopper.stopped_epoch == epochs_run - 1 and stopper.best_epoch == 0
    assert len(set(history["loss"])) == 1


def test_early_stopping_starts_afresh_on_every_fit():
    X, y = toy_data(19)
    stopper = EarlyStopping(monitor="loss", patience=2)
    model = mlp(optimizer=SGD(lr=0.0))
    assert len(model.fit(X, y, epochs=20, batch_size=8, shuffle=False, verbose=0, callbacks=[stopper]).epochs) == 3
    assert len(model.fit(X, y, epochs=20, batch_size=8, shuffle=False, verbose=0, callbacks=[stopper]).epochs) == 3
    assert stopper.best_epoch == 0 and stopper.wait == 2


# -- state ------------------------------------------------------------------------------------------------------
def test_early_stopping_state_dict_round_trips_with_its_best_weights_inline():
    X, y = toy_data(20)
    Xv, yv = toy_data(21, n=12)
    stopper = EarlyStopping(patience=30)
    model = mlp()
    model.fit(X, y, epochs=4, batch_size=8, validation_data=(Xv, (yv + 1) % 3), verbose=0, callbacks=[stopper])
    state = stopper.state_dict()
    assert_json_values_and_arrays(state)
    assert set(state) == {"best", "best_epoch", "wait", "stopped_epoch", "best_weights"}
    assert state["best"] == stopper.best and state["wait"] == stopper.wait
    assert set(state["best_weights"]) == set(model.named_parameters())
    json.dumps({k: v for k, v in state.items() if k != "best_weights"})

    restored = EarlyStopping(patience=30)
    restored.on_train_begin(model)
    restored.load_state_dict(state)
    for weights in state["best_weights"].values():
        weights[...] = 0  # the load copied
    assert (restored.best, restored.best_epoch, restored.wait, restored.stopped_epoch) == (
        stopper.best, stopper.best_epoch, stopper.wait, stopper.stopped_epoch)
    for name, weights in stopper.best_weights.items():
        np.testing.assert_array_equal(restored.best_weights[name], weights)


def test_state_dict_of_a_fresh_monitor_has_no_best_yet():
    for callback in (EarlyStopping(), ModelCheckpoint("best.npz")):
        state = callback.state_dict()
        assert state["best"] is None and state["best_epoch"] is None
        json.dumps({k: v for k, v in state.items()}, allow_nan=False)  # strict JSON
        callback.load_state_dict(state)
        assert callback.best == np.inf and callback.best_epoch is None


def test_get_state_and_set_state_keep_the_version_1_format():
    stopper = EarlyStopping(monitor="loss", patience=3)
    model = FakeModel()
    stopper.on_train_begin(model)
    assert stopper.get_state() == {"best": np.inf, "best_epoch": -1, "wait": 0}
    stopper.on_epoch_end(0, {"loss": 2.0})
    stopper.on_epoch_end(1, {"loss": 3.0})
    legacy = stopper.get_state()
    assert set(legacy) == {"best", "best_epoch", "wait", "arrays"}
    assert (legacy["best"], legacy["best_epoch"], legacy["wait"]) == (2.0, 0, 1)
    np.testing.assert_array_equal(legacy["arrays"]["0.W"], model.array)
    other = EarlyStopping(monitor="loss", patience=3)
    other.set_state(legacy)
    assert (other.best, other.best_epoch, other.wait) == (2.0, 0, 1)
    assert ModelCheckpoint("b.npz").get_state() == {"best": np.inf, "best_epoch": -1}
    assert JSONLogger("h.json").get_state() == {"rows": []}


def test_set_state_reads_the_v1_checkpoint_fixture():
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "v1_checkpoint.npz"
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays.pop("__header__").tobytes().decode("utf-8"))
    saved = header["checkpoint"]["callbacks"][0]
    assert saved["type"] == "EarlyStopping"
    weights = {k.split(":", 2)[2]: v for k, v in arrays.items() if k.startswith("callback:0:")}
    stopper = EarlyStopping(monitor="loss", patience=3)
    stopper.set_state({**saved["state"], "arrays": weights})
    assert (stopper.best, stopper.best_epoch, stopper.wait) == (
        saved["state"]["best"], saved["state"]["best_epoch"], saved["state"]["wait"])
    assert stopper.best_weights.keys() == weights.keys()
    state = stopper.state_dict()  # and in today's form, the weights inline
    assert state["best_weights"].keys() == weights.keys() and state["stopped_epoch"] is None


@pytest.mark.parametrize("bad", [{"best": 1.0}, {"best": "low", "best_epoch": 0, "wait": 0},
                                 {"best": 1.0, "best_epoch": 1.5, "wait": 0}, [1, 2]])
def test_load_state_dict_refuses_a_broken_state(bad):
    with pytest.raises(InvalidParameterError, match="EarlyStopping.load_state_dict"):
        EarlyStopping().load_state_dict(bad)


def test_loggers_and_the_lr_callback_round_trip_their_state(tmp_path):
    logger = JSONLogger(tmp_path / "h.json")
    logger.on_epoch_end(0, {"loss": 0.5, "accuracy": None})
    other = JSONLogger(tmp_path / "h.json")
    other.load_state_dict(json.loads(json.dumps(logger.state_dict())))
    assert other.rows == logger.rows and other.rows is not logger.rows
    for callback in (LearningRateScheduler(lambda e: 0.1), CSVLogger(tmp_path / "l.csv")):
        assert callback.state_dict() == {}
        callback.load_state_dict({})


# -- LearningRateScheduler leaves the optimizer as it was --------------------------------------------------------
def test_learning_rate_scheduler_restores_the_optimizers_own_schedule_after_fit():
    X, y = toy_data(22)
    scheduler = Exponential(decay=0.5, stage_length=1)
    model = mlp(optimizer=SGD(lr=0.4, lr_scheduler=scheduler))
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch: 0.01)])
    assert history["lr"] == [0.01] * 3
    assert model.optimizer.lr_scheduler is scheduler and model.optimizer.lr == 0.4
    again = model.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert again["lr"] == [0.4, 0.2, 0.1]  # its own schedule is in charge again


def test_learning_rate_scheduler_after_a_failed_fit_leaves_no_override():
    X, y = toy_data(23)
    model = mlp(optimizer=SGD(lr=0.3))

    def schedule(epoch):
        if epoch == 1:
            raise RuntimeError("schedule failed")
        return 0.02

    with pytest.raises(RuntimeError, match="schedule failed"):
        model.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[LearningRateScheduler(schedule)])
    assert model.fit(X, y, epochs=2, batch_size=8, verbose=0)["lr"] == [0.3, 0.3]


def test_learning_rate_scheduler_takes_a_scheduler_starting_from_the_optimizers_lr():
    X, y = toy_data(24)
    model = mlp(optimizer=SGD(lr=0.8))
    history = model.fit(X, y, epochs=3, batch_size=8, verbose=0,
                        callbacks=[LearningRateScheduler(StepDecay(step_size=1, gamma=0.5))])
    assert history["lr"] == [0.8, 0.4, 0.2]


def test_a_resumed_run_with_a_learning_rate_scheduler_ends_like_an_uninterrupted_one(tmp_path):
    X, y = toy_data(25)
    schedule = [0.3, 0.2, 0.1, 0.05, 0.02]

    def callbacks():
        return [LearningRateScheduler(lambda epoch: schedule[epoch])]

    def model():
        return mlp(seed=4, optimizer=SGD(lr=0.9, momentum=0.5, lr_scheduler=Exponential(decay=0.5, stage_length=1)))

    straight = model()
    expected = straight.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks())
    model().fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=callbacks(), checkpoint=tmp_path)
    resumed = model()
    history = resumed.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks(), resume=tmp_path)
    assert history["lr"] == expected["lr"] == schedule
    assert_same_parameters(parameters(resumed), parameters(straight))
    assert resumed.optimizer.get_config() == straight.optimizer.get_config()
    assert resumed.optimizer.get_config()["lr_scheduler"]["type"] == "exponential"
