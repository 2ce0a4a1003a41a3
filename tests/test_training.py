"""NeuralNetwork.fit / evaluate / predict: history, labels, validation, dtypes,
reproducibility, an end-to-end CNN on digits and numerical safety."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neural_networks as nn
from neural_networks.callbacks import Callback, LearningRateScheduler, ModelCheckpoint
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.losses import CrossEntropy, probability_floor
from neural_networks.optimizers import SGD, Adam

FAST = settings(max_examples=25, deadline=None)
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")


# -- helpers -----------------------------------------------------------------------------------
def toy_data(seed=0, n=48, d=4, k=3, dtype=np.float32):
    """Separable-ish classification data: the class is the argmax of a fixed projection."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.argmax(X @ np.random.default_rng(99).standard_normal((d, k)), axis=1)
    return X.astype(dtype), y.astype(np.int64)


def mlp(seed=0, dtype="float32", optimizer=None, k=3, loss="cross_entropy", out="softmax"):
    return nn.NeuralNetwork([FullyConnected(6, "tanh"), FullyConnected(k, out)], loss=loss,
                            optimizer=optimizer if optimizer is not None else SGD(lr=0.1),
                            seed=seed, dtype=dtype)


def small_cnn(seed=0, dtype="float32"):
    return nn.NeuralNetwork([Conv2D(3, 3, "relu"), Pool2D(2, stride=2), Flatten(),
                             FullyConnected(3, "softmax")], optimizer=SGD(lr=0.1), seed=seed, dtype=dtype)


def parameters(model):
    return {name: array.copy() for name, array in model.named_parameters().items()}


def assert_same_parameters(a, b):
    a, b = dict(a), dict(b)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def history_without_time(history):
    data = history.to_dict()
    data.pop("time")
    return data


def one_hot(ids, k, dtype=np.float32):
    return np.eye(k, dtype=dtype)[ids]


# -- history -----------------------------------------------------------------------------------
def test_history_has_every_metric_for_every_epoch():
    X, y = toy_data(0)
    Xv, yv = toy_data(1, n=20)
    model = mlp(optimizer=SGD(lr=0.05))
    history = model.fit(X, y, epochs=3, batch_size=8, validation_data=(Xv, yv), verbose=0)

    assert model.history is history
    assert history.epochs == [1, 2, 3]
    for key in METRICS:
        assert len(history[key]) == 3, key
        assert all(isinstance(v, float) and np.isfinite(v) for v in history[key]), key
    assert history["lr"] == [0.05] * 3
    assert all(t >= 0 for t in history["time"])
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["val_accuracy"])
    # the last epoch's validation metrics are those of the final model
    final = model.evaluate(Xv, yv)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert history["val_accuracy"][-1] == final["accuracy"]
    assert set(history.to_dict()) == {"epoch", *METRICS}


def test_epoch_metrics_of_one_full_batch_are_those_of_the_weights_before_the_step():
    X, y = toy_data(2)
    model = mlp()
    model.build(X.shape[1:])
    before = model.evaluate(X, y)
    history = model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
    assert history["loss"][0] == pytest.approx(before["loss"], rel=1e-6)
    assert history["accuracy"][0] == pytest.approx(before["accuracy"], abs=1e-12)
    assert history["val_loss"] == [None] and history["val_accuracy"] == [None]


def test_class_ids_and_one_hot_labels_train_identically():
    X, y = toy_data(3)
    Xv, yv = toy_data(4, n=12)
    a, b = mlp(seed=5), mlp(seed=5)
    ha = a.fit(X, y, epochs=3, batch_size=8, validation_data=(Xv, yv), verbose=0)
    hb = b.fit(X, one_hot(y, 3), epochs=3, batch_size=8, validation_data=(Xv, one_hot(yv, 3)), verbose=0)
    assert_same_parameters(parameters(a), parameters(b))
    assert history_without_time(ha) == history_without_time(hb)


def test_validation_split_holds_out_the_last_fraction():
    X, y = toy_data(5, n=40)
    n_val = int(round(40 * 0.25))
    a, b = mlp(seed=1), mlp(seed=1)
    ha = a.fit(X, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    hb = b.fit(X[:-n_val], y[:-n_val], epochs=2, batch_size=8,
               validation_data=(X[-n_val:], y[-n_val:]), verbose=0)
    assert_same_parameters(parameters(a), parameters(b))
    assert history_without_time(ha) == history_without_time(hb)
    assert all(v is not None for v in ha["val_loss"])


@pytest.mark.parametrize("split", [1.0, 1.5, -0.2])
def test_validation_split_outside_the_unit_interval_is_refused(split):
    X, y = toy_data(5, n=10)
    with pytest.raises(ValueError, match="validation_split"):
        mlp().fit(X, y, epochs=1, validation_split=split, verbose=0)


# -- predict -------------------------------------------------------------------------------------
@FAST
@given(batch_size=st.integers(1, 25), dtype=st.sampled_from(["float32", "float64"]))
def test_predict_in_batches_equals_one_forward(batch_size, dtype):
    rng = np.random.default_rng(batch_size)
    model = small_cnn(dtype=dtype)
    X = rng.standard_normal((21, 6, 6, 2)).astype(dtype)
    model.build(X.shape[1:])
    whole = model.forward(X, retain_derived=False)
    batched = model.predict(X, batch_size=batch_size)
    assert batched.shape == (21, 3) and batched.dtype == np.dtype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(batched, whole, rtol=rtol, atol=rtol * 1e-2)
    # each batch is what a forward of that batch alone gives, bit for bit
    for start in range(0, 21, batch_size):
        np.testing.assert_array_equal(
            batched[start:start + batch_size],
            model.forward(X[start:start + batch_size], retain_derived=False))


def _state(model):
    return copy.deepcopy([(dict(layer.cache), dict(layer.gradients), dict(layer.parameters))
                          for layer in model.layers])


def _assert_same_state(before, after):
    assert len(before) == len(after)
    for i, (old, new) in enumerate(zip(before, after)):
        for what, a, b in zip(("cache", "gradients", "parameters"), old, new):
            assert a.keys() == b.keys(), (i, what)
            for key in a:
                va, vb = a[key], b[key]
                if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                    assert isinstance(va, np.ndarray) and isinstance(vb, np.ndarray), (i, what, key)
                    np.testing.assert_array_equal(va, vb, err_msg=f"layer {i} {what}[{key}]")
                else:
                    assert va == vb, (i, what, key)


@pytest.mark.parametrize("make", [small_cnn, mlp])
def test_predict_with_targets_returns_loss_and_touches_no_cache_or_gradient(make):
    rng = np.random.default_rng(0)
    model = make(seed=2)
    shape = (6, 6, 2) if make is small_cnn else (4,)
    X = rng.standard_normal((5,) + shape).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0])
    # a forward and backward leave caches and gradients set, as during training
    model.backward(one_hot(y, 3), model.forward(X))
    before = _state(model)
    X2 = rng.standard_normal((7,) + shape).astype(np.float32)
    y2 = np.array([2, 2, 0, 1, 0, 1, 1])
    X2_copy = X2.copy()

    Y_hat, loss = model.predict(X2, y2, batch_size=3)

    _assert_same_state(before, _state(model))
    np.testing.assert_array_equal(X2, X2_copy)
    assert loss == pytest.approx(CrossEntropy()(one_hot(y2, 3), Y_hat), rel=1e-6)
    np.testing.assert_array_equal(Y_hat, model.predict(X2, batch_size=3))
    _, loss_one_hot = model.predict(X2, one_hot(y2, 3), batch_size=3)
    assert loss_one_hot == loss


# -- dtypes ----------------------------------------------------------------------------------------
def test_float64_model_keeps_float64_everywhere():
    X, y = toy_data(6, dtype=np.float64)
    model = mlp(dtype="float64", optimizer=Adam(lr=0.01))
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert all(p.dtype == np.float64 for p in model.named_parameters().values())
    assert all(g.dtype == np.float64 for g in model.named_gradients().values())
    for buffers in model.optimizer.state.values():
        for key, value in buffers.items():
            if key != "step":
                assert value.dtype == np.float64, key
    assert model.predict(X).dtype == np.float64
    assert model.predict(X.astype(np.float32)).dtype == np.float64
    assert model.predict(X.round().astype(np.int64)).dtype == np.float64


def test_integer_and_float64_inputs_are_converted_for_a_float32_model():
    X, y = toy_data(7)
    X_int = np.round(X * 3).astype(np.int32)
    X64 = X_int.astype(np.float64)
    a, b, c = mlp(seed=3), mlp(seed=3), mlp(seed=3)
    a.fit(X_int, y, epochs=2, batch_size=8, verbose=0)
    b.fit(X64, y, epochs=2, batch_size=8, verbose=0)
    c.fit(X_int.astype(np.float32), y, epochs=2, batch_size=8, verbose=0)
    for model in (a, b):
        assert all(p.dtype == np.float32 for p in model.named_parameters().values())
        assert_same_parameters(parameters(model), parameters(c))
    for inputs in (X_int, X64, np.abs(X_int).astype(np.uint8), X_int > 0):
        out = c.predict(inputs)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, c.predict(np.asarray(inputs).astype(np.float32)))
    assert c.evaluate(X64, y) == c.evaluate(X_int.astype(np.float32), y)


# -- end to end ------------------------------------------------------------------------------------
def test_small_cnn_on_digits_reaches_95_percent_test_accuracy():
    from neural_networks.datasets import load_dataset

    data = load_dataset("digits", seed=0)
    model = nn.NeuralNetwork([Conv2D(16, 3, "relu", weight_init="he_uniform"), Pool2D(2, stride=2),
                              Flatten(), FullyConnected(10, "softmax")],
                             loss="cross_entropy", optimizer=Adam(lr=3e-3), seed=0)
    history = model.fit(data.X_train, data.y_train, epochs=8, batch_size=32,
                        validation_data=(data.X_val, data.y_val), verbose=0)
    scores = model.evaluate(data.X_test, data.y_test)
    predicted = np.argmax(model.predict(data.X_test), axis=1)
    assert scores["accuracy"] == pytest.approx(np.mean(predicted == data.y_test), abs=1e-12)
    assert scores["accuracy"] >= 0.95, scores
    assert history["loss"][-1] < history["loss"][0]


# -- reproducibility -------------------------------------------------------------------------------
def test_same_seed_gives_bit_identical_training_and_other_seeds_differ():
    X, y = toy_data(8)
    Xv, yv = toy_data(9, n=12)

    def run(seed):
        model = nn.NeuralNetwork([FullyConnected(8, "relu", weight_init="he_uniform"),
                                  FullyConnected(3, "softmax")],
                                 optimizer=Adam(lr=0.01), seed=seed)
        history = model.fit(X, y, epochs=3, batch_size=7, validation_data=(Xv, yv), verbose=0)
        return parameters(model), history_without_time(history)

    first, second, other = run(11), run(11), run(12)
    assert_same_parameters(first[0], second[0])
    assert first[1] == second[1]
    assert any(not np.array_equal(first[0][k], other[0][k]) for k in first[0])


def test_seed_controls_the_data_order_too():
    X, y = toy_data(10)
    a, b = mlp(seed=4), mlp(seed=4)
    a.build((4,))
    b.build((4,))
    assert_same_parameters(parameters(a), parameters(b))
    b.rng = np.random.default_rng(12345)  # same initial weights, another shuffling stream
    a.fit(X, y, epochs=1, batch_size=4, verbose=0)
    b.fit(X, y, epochs=1, batch_size=4, verbose=0)
    assert any(not np.array_equal(v, parameters(b)[k]) for k, v in parameters(a).items())


# -- numerical safety ---------------------------------------------------------------------------------
class FileSnapshots(Callback):
    """Keep the bytes of ``path`` (or None) at the end of every epoch."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.bytes = []

    def on_epoch_end(self, epoch, logs):
        self.bytes.append(self.path.read_bytes() if self.path.exists() else None)


def test_divergence_stops_with_the_epoch_and_batch_and_keeps_the_best_file(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((40, 4)) * 10).astype(np.float32)
    Y = X[:, :2] * 3
    model = nn.NeuralNetwork([FullyConnected(8, "relu"), FullyConnected(2, "linear")], loss="l2",
                             optimizer=SGD(lr=1e-4), seed=0)
    best = tmp_path / "best.npz"
    snapshots = FileSnapshots(best)
    callbacks = [LearningRateScheduler(lambda epoch: 1e-5 if epoch == 0 else 1e6),
                 ModelCheckpoint(best, monitor="loss"), snapshots]
    with np.errstate(all="ignore"), pytest.raises(nn.TrainingDivergedError, match=r"epoch 2, batch \d+") as info:
        model.fit(X, Y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks)
    assert "inf" in str(info.value) or "nan" in str(info.value)
    assert isinstance(info.value, FloatingPointError)
    # the first epoch's checkpoint is the file on disk, byte for byte, and it loads
    assert len(snapshots.bytes) == 1 and snapshots.bytes[0] is not None
    assert best.read_bytes() == snapshots.bytes[0]
    loaded = nn.load(best)
    assert all(np.all(np.isfinite(p)) for p in loaded.named_parameters().values())
    # the batch that diverged was not applied
    assert all(np.all(np.isfinite(p)) for p in model.named_parameters().values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss, activation", [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid"),
                                              ("l2", "softmax"), ("l2", "sigmoid"), ("l2", "tanh")])
def test_outputs_losses_and_gradients_stay_finite_for_logits_of_1e4(dtype, activation, loss):
    layer = FullyConnected(2, activation)
    model = nn.NeuralNetwork([layer], loss=loss, dtype=dtype, seed=0)
    model.build((1,))
    layer.parameters["W"][...] = np.array([[1e4, -1e4]], dtype=dtype)
    X = np.array([[1.0], [-1.0]], dtype=dtype)  # logits (1e4, -1e4) and (-1e4, 1e4)
    Y = np.array([[1, 0], [1, 0]], dtype=dtype)  # the first row right, the second wrong
    out = model.forward(X)
    assert out.dtype == np.dtype(dtype) and np.all(np.isfinite(out))
    saturated = {"softmax": ([1, 0], [0, 1]), "sigmoid": ([1, 0], [0, 1]), "tanh": ([1, -1], [-1, 1])}
    np.testing.assert_array_equal(out, np.array(saturated[activation], dtype=dtype))
    value = model.backward(Y, out)
    assert np.isfinite(value)
    if loss == "cross_entropy":
        # −log(1) for the right row, −log(ε) for the wrong one (probabilities are clipped at ε)
        assert value == pytest.approx(-np.log(probability_floor(np.dtype(dtype))) / 2, rel=1e-6)
    if loss == "binary_cross_entropy":
        # per row Σ over both outputs: row 1 right on both (0), row 2 wrong on both (2·(−log ε))
        assert value == pytest.approx(-np.log(probability_floor(np.dtype(dtype))), rel=1e-6)
    for name, gradient in model.named_gradients().items():
        assert np.all(np.isfinite(gradient)), name
    model.update()
    assert all(np.all(np.isfinite(p)) for p in model.named_parameters().values())
