"""fit(checkpoint=...) / fit(resume=...): an interrupted run resumed from its checkpoint
ends exactly like an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neural_networks as nn
from neural_networks import serialization
from neural_networks.callbacks import Callback, EarlyStopping, JSONLogger
from neural_networks.errors import FormatError
from neural_networks.layers import FullyConnected
from neural_networks.optimizers import SGD, Adam
from neural_networks.schedulers import Exponential


def toy_data(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    y = np.argmax(X @ np.random.default_rng(99).standard_normal((4, 3)), axis=1)
    return X, y


X, Y = toy_data(0, 44)
XV, YV = toy_data(1, 16)
YV_FLIPPED = (YV + 1) % 3  # validation disagrees with training: early stopping triggers

OPTIMIZERS = {
    "sgd_momentum_scheduler": lambda: SGD(lr=0.4, momentum=0.9, nesterov=True,
                                          lr_scheduler=Exponential(lr=0.4, decay=0.7, stage_length=2, staircase=True)),
    "adam": lambda: Adam(lr=0.03, betas=(0.8, 0.95)),
}


def model_for(optimizer_name, activation="tanh", width=6, seed=3):
    return nn.NeuralNetwork([FullyConnected(width, activation), FullyConnected(3, "softmax")],
                            optimizer=OPTIMIZERS[optimizer_name](), seed=seed)


def callbacks_for(tmp_path, tag):
    # patience 4 (Keras's rule): the flipped validation stops the run after the interruption
    return [EarlyStopping(patience=4, restore_best_weights=True), JSONLogger(tmp_path / f"{tag}.json")]


def fit(model, epochs, callbacks, y_val=YV, **kwargs):
    return model.fit(X, Y, epochs=epochs, batch_size=8, validation_data=(XV, y_val), verbose=0,
                     callbacks=callbacks, **kwargs)


def without_time(history):
    data = history.to_dict()
    data.pop("time")
    return data


def assert_same_parameters(a, b):
    pa, pb = a.named_parameters(), b.named_parameters()
    assert pa.keys() == pb.keys()
    for name in pa:
        assert pa[name].dtype == pb[name].dtype
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def assert_same_optimizer_state(a, b):
    assert a.optimizer.iterations == b.optimizer.iterations
    assert a.optimizer.get_config() == b.optimizer.get_config()
    assert a.optimizer.state.keys() == b.optimizer.state.keys()
    for name, buffers in a.optimizer.state.items():
        assert buffers.keys() == b.optimizer.state[name].keys()
        for key, value in buffers.items():
            np.testing.assert_array_equal(value, b.optimizer.state[name][key], err_msg=f"{name}:{key}")


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("y_val", [YV, YV_FLIPPED], ids=["runs to the end", "stops early"])
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, optimizer_name, y_val):
    straight = model_for(optimizer_name)
    straight_callbacks = callbacks_for(tmp_path, "straight")
    expected = fit(straight, 10, straight_callbacks, y_val=y_val)

    first_part = model_for(optimizer_name)
    fit(first_part, 4, callbacks_for(tmp_path, "part"), y_val=y_val, checkpoint=tmp_path / "run")
    assert (tmp_path / "run" / "last.npz").is_file()

    resumed = model_for(optimizer_name)  # a fresh process would build a fresh model
    resumed_callbacks = callbacks_for(tmp_path, "part")
    history = fit(resumed, 10, resumed_callbacks, y_val=y_val, resume=tmp_path / "run")

    assert_same_parameters(straight, resumed)
    assert without_time(history) == without_time(expected)
    assert_same_optimizer_state(straight, resumed)
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state
    stopper, resumed_stopper = straight_callbacks[0], resumed_callbacks[0]
    assert (stopper.best, stopper.best_epoch, stopper.wait, stopper.stopped_epoch) == (
        resumed_stopper.best, resumed_stopper.best_epoch, resumed_stopper.wait, resumed_stopper.stopped_epoch)
    # the JSON history of the resumed run holds every epoch, the first four included
    assert [row["epoch"] for row in resumed_callbacks[1].rows] == expected.epochs
    if y_val is YV_FLIPPED:
        assert stopper.stopped_epoch is not None and stopper.stopped_epoch >= 4, \
            "the scenario must stop early after the interruption"
        assert stopper.best_epoch < 4, "the best weights must come from the checkpoint"


@pytest.mark.parametrize("optimizer_name, buffers", [("adam", {"step", "exp_avg", "exp_avg_sq"}),
                                                     ("sgd_momentum_scheduler", {"step", "momentum_buffer"})])
def test_checkpoint_file_holds_the_optimizer_state_and_the_callbacks(tmp_path, optimizer_name, buffers):
    model = model_for(optimizer_name)
    stopper = EarlyStopping(patience=5)
    history = fit(model, 3, [stopper], checkpoint=tmp_path / "ckpt.npz")
    archive = serialization.read_checkpoint(tmp_path / "ckpt.npz")
    assert archive.kind == "checkpoint"
    saved_optimizer = archive.state["optimizer"]
    assert set(model.optimizer.state) == set(model.named_parameters()) == set(saved_optimizer["state"])
    for name, state in model.optimizer.state.items():
        assert set(state) == buffers
        for key in buffers:
            np.testing.assert_array_equal(saved_optimizer["state"][name][key], state[key])
    saved_layers = archive.state["model"]["layers"]
    for name, value in model.named_parameters().items():
        index, key = name.split(".")
        np.testing.assert_array_equal(saved_layers[int(index)]["parameters"][key], value)
    saved_stopper = archive.state["trainer"]["callbacks"][0]
    assert saved_stopper["type"] == "EarlyStopping"
    for name, value in stopper.best_weights.items():
        np.testing.assert_array_equal(saved_stopper["state"]["best_weights"][name], value)
    assert archive.state["trainer"]["epoch"] == 3
    assert saved_optimizer["iterations"] == model.optimizer.iterations == 3 * 6
    assert archive.state["trainer"]["history"]["val_loss"] == history["val_loss"]
    # the checkpoint also loads as a plain model that predicts like the trained one
    np.testing.assert_array_equal(nn.load(tmp_path / "ckpt.npz").predict(XV), model.predict(XV))


class InterruptAt(Callback):
    """Raise KeyboardInterrupt at the end (or the beginning) of one epoch (None: never),
    like a Ctrl-C."""

    def __init__(self, epoch=None, when="end"):
        super().__init__()
        self.epoch, self.when = epoch, when

    def on_epoch_begin(self, epoch):
        if epoch == self.epoch and self.when == "begin":
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch and self.when == "end":
            raise KeyboardInterrupt


@pytest.mark.parametrize("interrupted_after", [0, 6])
def test_an_interrupted_run_resumes_from_the_last_completed_epoch(tmp_path, interrupted_after):
    straight = model_for("sgd_momentum_scheduler")
    expected = fit(straight, 8, [InterruptAt(None)])

    crashed = model_for("sgd_momentum_scheduler")
    with pytest.raises(KeyboardInterrupt):
        fit(crashed, 8, [InterruptAt(interrupted_after)], checkpoint=tmp_path)
    resumed = model_for("sgd_momentum_scheduler")
    history = fit(resumed, 8, [InterruptAt(None)], resume=tmp_path)
    assert_same_parameters(straight, resumed)
    assert without_time(history) == without_time(expected)


def test_a_checkpoint_is_written_before_the_first_epoch(tmp_path):
    model = model_for("adam")
    model.build((4,))
    initial = {k: v.copy() for k, v in model.named_parameters().items()}
    with pytest.raises(KeyboardInterrupt):
        fit(model, 5, [InterruptAt(0, when="begin")], checkpoint=tmp_path)
    saved = nn.load(tmp_path / "last.npz")
    for name, value in saved.named_parameters().items():
        np.testing.assert_array_equal(value, initial[name])
    # and resuming from it is the same as starting afresh
    straight = model_for("adam")
    expected = fit(straight, 3, [InterruptAt(None)])
    resumed = model_for("adam")
    history = fit(resumed, 3, [InterruptAt(None)], resume=tmp_path)
    assert_same_parameters(straight, resumed)
    assert without_time(history) == without_time(expected)


def test_resume_with_more_epochs_continues_a_finished_run(tmp_path):
    straight = model_for("adam")
    expected = fit(straight, 6, [])
    first = model_for("adam")
    fit(first, 3, [], checkpoint=tmp_path)
    second = model_for("adam")
    history = fit(second, 6, [], resume=tmp_path, checkpoint=tmp_path)
    assert_same_parameters(straight, second)
    assert without_time(history) == without_time(expected)
    third = model_for("adam")  # the checkpoint now holds all six epochs: nothing left to do
    history = fit(third, 6, [], resume=tmp_path)
    assert_same_parameters(straight, third)
    assert history.epochs == list(range(1, 7))


# -- resuming with something else is refused ------------------------------------------------------------------
@pytest.fixture()
def checkpoint_dir(tmp_path):
    fit(model_for("adam"), 2, [EarlyStopping(patience=3)], checkpoint=tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "callbacks, match",
    [([], "callbacks"), ([EarlyStopping(), EarlyStopping()], "callbacks"),
     ([JSONLogger("unused.json")], "callbacks")],
    ids=["none", "two", "another type"],
)
def test_resume_with_other_callbacks_is_refused(checkpoint_dir, callbacks, match):
    with pytest.raises(ValueError, match=match):
        fit(model_for("adam"), 4, callbacks, resume=checkpoint_dir)


@pytest.mark.parametrize(
    "make",
    [
        lambda: model_for("adam", activation="relu"),
        lambda: model_for("adam", width=7),
        lambda: nn.NeuralNetwork([FullyConnected(6, "tanh"), FullyConnected(3, "softmax")],
                                 optimizer=Adam(lr=0.03), seed=3, dtype="float64"),
        lambda: nn.NeuralNetwork([FullyConnected(6, "tanh"), FullyConnected(3, "softmax")],
                                 optimizer=Adam(lr=0.03), seed=3, loss="l2"),
        lambda: model_for("adam", activation="relu").build((4,)),
    ],
    ids=["other activation", "other width", "other dtype", "other loss", "built, other activation"],
)
def test_resume_with_another_architecture_is_refused(checkpoint_dir, make):
    model = make()
    with pytest.raises(ValueError, match="checkpoint"):
        fit(model, 4, [EarlyStopping(patience=3)], resume=checkpoint_dir)
    assert model.optimizer.iterations == 0


def test_resume_with_another_optimizer_type_is_refused(checkpoint_dir):
    model = model_for("sgd_momentum_scheduler")
    with pytest.raises(ValueError, match="adam|sgd"):
        fit(model, 4, [EarlyStopping(patience=3)], resume=checkpoint_dir)


def test_resume_from_a_model_file_or_nothing_is_refused(tmp_path):
    model = model_for("adam")
    fit(model, 1, [])
    model.save(tmp_path / "model.npz")
    with pytest.raises(FormatError, match="checkpoint"):
        fit(model_for("adam"), 2, [], resume=tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError):
        fit(model_for("adam"), 2, [], resume=tmp_path / "no_such_run")


def test_resume_with_inputs_of_another_shape_is_refused(checkpoint_dir):
    X5 = np.hstack([X, X[:, :1]])
    with pytest.raises(ValueError, match="input_shape"):
        model_for("adam").fit(X5, Y, epochs=4, verbose=0, callbacks=[EarlyStopping(patience=3)],
                              resume=checkpoint_dir)


def test_the_checkpoint_before_the_first_epoch_of_an_unbuilt_model_is_usable(tmp_path):
    model = model_for("adam")
    assert not model.built
    with pytest.raises(KeyboardInterrupt):
        fit(model, 3, [InterruptAt(0, when="begin")], checkpoint=tmp_path)
    saved = nn.load(tmp_path / "last.npz")
    assert saved.input_shape == (4,)
    reference = model_for("adam").build((4,))
    for name, value in reference.named_parameters().items():
        np.testing.assert_array_equal(saved.named_parameters()[name], value)


def test_resuming_a_run_that_stopped_early_trains_no_more(tmp_path):
    model = model_for("adam")
    stopper = EarlyStopping(monitor="loss", patience=1, min_delta=1e9)  # nothing counts as better
    history = fit(model, 10, [stopper], checkpoint=tmp_path / "ckpt.npz")
    assert len(history.epochs) == 2  # the first sets the best, the second does not improve
    weights = {k: v.copy() for k, v in model.named_parameters().items()}
    resumed = model_for("adam")
    history = fit(resumed, 10, [EarlyStopping(monitor="loss", patience=1, min_delta=1e9)],
                  resume=tmp_path / "ckpt.npz")
    assert history.epochs == [1, 2]
    for name, value in weights.items():
        np.testing.assert_array_equal(resumed.named_parameters()[name], value)
