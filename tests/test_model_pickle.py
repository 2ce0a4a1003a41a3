"""A NeuralNetwork survives pickle and deepcopy: same predictions bit for bit, same training."""

import copy
import pickle

import numpy as np
import pytest

from neural_networks import NeuralNetwork
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D


def small_cnn(dtype):
    return NeuralNetwork([Conv2D(4, 3, "relu", weight_init="he_normal"), Pool2D(2, stride=2), Flatten(),
                          FullyConnected(5, "tanh"), FullyConnected(3, "softmax")],
                         loss="cross_entropy", optimizer={"name": "adam", "lr": 1e-2}, seed=7, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("round_trip", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_built_and_trained_model_round_trips(dtype, round_trip):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 6, 6, 2)), rng.integers(0, 3, size=24)
    model = small_cnn(dtype).build((6, 6, 2))
    same = round_trip(model)  # built, untrained: the layers hold their initialisers
    assert np.array_equal(same.predict(X), model.predict(X))

    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    same = round_trip(model)  # trained: optimizer moments and the shuffling generator too
    predicted, again = model.predict(X), same.predict(X)
    assert again.dtype == np.dtype(dtype) and np.array_equal(again, predicted)

    # both go on identically: same data order, same Adam state
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    same.fit(X, y, epochs=1, batch_size=8, verbose=0)
    for name, value in model.named_parameters().items():
        assert np.array_equal(same.named_parameters()[name], value), name
