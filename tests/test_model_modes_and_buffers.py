"""A model with BatchNorm and Dropout: running statistics and masks follow the mode,
evaluation leaves them alone, and saving, loading and resuming keep them bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import neural_networks as nn
from neural_networks.layers import (BatchNorm1D, BatchNorm2D, Conv2D, Dropout, Flatten,
                                    FullyConnected, Pool2D)
from neural_networks.optimizers import Adam

RNG = np.random.default_rng(0)
X = RNG.standard_normal((48, 6, 6, 2)).astype(np.float32)
Y = RNG.integers(0, 3, 48)


def regularised_cnn(seed=0):
    return nn.NeuralNetwork([Conv2D(4, 3, "relu"), BatchNorm2D(), Pool2D(2, stride=2), Flatten(),
                             Dropout(0.3), FullyConnected(8, "relu"), BatchNorm1D(), Dropout(0.2),
                             FullyConnected(3, "softmax")], optimizer=Adam(lr=1e-2), seed=seed)


def buffers(model):
    return {name: value.copy() for name, value in model.named_buffers().items()}


def test_evaluate_and_predict_leave_every_running_statistic_unchanged():
    model = regularised_cnn()
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    before = buffers(model)
    assert before and any(not np.all(v == 0) for k, v in before.items() if "running_mean" in k)
    first = model.predict(X)
    model.evaluate(X, Y)
    for name, value in before.items():
        np.testing.assert_array_equal(model.named_buffers()[name], value, err_msg=name)
    np.testing.assert_array_equal(model.predict(X), first)  # evaluation is deterministic: no dropout


def test_fit_updates_the_running_statistics_and_summary_counts_them_apart():
    model = regularised_cnn().build(X.shape[1:])
    start = buffers(model)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    assert any(not np.array_equal(model.named_buffers()[k], v) for k, v in start.items())
    text = model.summary(print_fn=lambda _: None)
    n_buffers = sum(v.size for v in start.values())
    assert f"Non-trainable parameters: {n_buffers:,}" in text and n_buffers == 2 * (4 + 8)


def test_a_loaded_model_predicts_bit_for_bit(tmp_path):
    model = regularised_cnn()
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
    again = nn.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    for name, value in model.named_buffers().items():
        np.testing.assert_array_equal(again.named_buffers()[name], value)


def test_a_resumed_run_with_batchnorm_and_dropout_ends_bit_identical(tmp_path):
    straight = regularised_cnn()
    straight.fit(X, Y, epochs=4, batch_size=16, verbose=0)

    first = regularised_cnn()
    first.fit(X, Y, epochs=2, batch_size=16, verbose=0, checkpoint=tmp_path)
    resumed = regularised_cnn()  # a fresh process: same seed, nothing trained
    resumed.fit(X, Y, epochs=4, batch_size=16, verbose=0, resume=tmp_path)
    for name, value in straight.named_parameters().items():
        np.testing.assert_array_equal(resumed.named_parameters()[name], value, err_msg=name)
    for name, value in straight.named_buffers().items():
        np.testing.assert_array_equal(resumed.named_buffers()[name], value, err_msg=name)


def test_dropout_masks_differ_between_steps_and_repeat_with_the_seed():
    a, b, c = regularised_cnn(1), regularised_cnn(1), regularised_cnn(2)
    for model in (a, b, c):
        model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    for name, value in a.named_parameters().items():
        np.testing.assert_array_equal(b.named_parameters()[name], value)
    assert any(not np.array_equal(c.named_parameters()[k], v) for k, v in a.named_parameters().items())


def test_a_batch_of_one_in_training_mode_is_refused_with_the_layer_named():
    model = nn.NeuralNetwork([FullyConnected(4), BatchNorm1D(), FullyConnected(2, "softmax")], seed=0)
    with pytest.raises(nn.ShapeError, match="BatchNorm1D"):
        model.fit(np.ones((1, 3)), np.array([1]), epochs=1, verbose=0)
    model.predict(np.ones((1, 3)))  # evaluation mode takes a single sample
