"""One whole training step of a small CNN through NeuralNetwork (forward, fused softmax +
cross-entropy, backward, optimizer update) against the same network in PyTorch, and the
model's training/evaluation modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import conv_weight_to_torch, fc_weight_to_torch, nchw_to_nhwc, nhwc_to_nchw
from neural_networks import NeuralNetwork
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.optimizers import SGD, Adam


def small_cnn(optimizer):
    layers = [Conv2D(3, 3, "relu", pad=1), Pool2D(2, stride=2), Conv2D(4, (2, 2), "tanh", pad="valid"),
              Flatten(), FullyConnected(5, "relu"), FullyConnected(3, "softmax")]
    return NeuralNetwork(layers, loss="cross_entropy", optimizer=optimizer, seed=0, dtype="float64")


def torch_twin(model):
    """The same network in torch, its parameters copied from ours (in torch's layouts)."""
    conv1 = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    conv2 = torch.nn.Conv2d(3, 4, 2, dtype=torch.float64)
    fc1, fc2 = torch.nn.Linear(36, 5, dtype=torch.float64), torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        for module, layer in zip((conv1, conv2), (model.layers[0], model.layers[2])):
            module.weight.copy_(conv_weight_to_torch(torch.from_numpy(layer.parameters["W"])))
            module.bias.copy_(torch.from_numpy(layer.parameters["b"][0]))
        for module, layer in zip((fc1, fc2), model.layers[4:]):
            module.weight.copy_(fc_weight_to_torch(torch.from_numpy(layer.parameters["W"])))
            module.bias.copy_(torch.from_numpy(layer.parameters["b"][0]))

    def forward(x_nhwc):
        h = torch.relu(conv1(nhwc_to_nchw(x_nhwc)))
        h = torch.nn.functional.max_pool2d(h, 2, 2)
        h = torch.tanh(conv2(h))
        h = nchw_to_nhwc(h).reshape(h.shape[0], -1)  # our Flatten is (H, W, C) order
        return fc2(torch.relu(fc1(h)))  # logits; the loss applies the softmax

    pairs = [(model.layers[0], conv1), (model.layers[2], conv2), (model.layers[4], fc1), (model.layers[5], fc2)]
    return forward, pairs


def ours_in_torch_layout(layer, key):
    value = torch.from_numpy(layer.parameters[key].copy())
    if key == "b":
        return value[0]
    return conv_weight_to_torch(value) if layer.parameters[key].ndim == 4 else fc_weight_to_torch(value)


@pytest.mark.parametrize("make_optimizers", [
    lambda params: (SGD(lr=0.1, momentum=0.9), torch.optim.SGD(params, lr=0.1, momentum=0.9)),
    lambda params: (Adam(lr=0.01), torch.optim.Adam(params, lr=0.01)),
], ids=["sgd_momentum", "adam"])
def test_training_steps_of_a_small_cnn_equal_pytorch_to_1e_10(make_optimizers):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 8, 8, 2))
    labels = np.array([0, 1, 2, 2, 1, 0])
    model = small_cnn(None)
    model.build(X.shape[1:])
    forward, pairs = torch_twin(model)
    params = [p for _, module in pairs for p in (module.weight, module.bias)]
    model.optimizer, torch_optimizer = make_optimizers(params)

    for step in range(3):  # three steps: the optimizer state (momentum, moments) matters too
        Y = model.check_targets(labels, len(X))
        out = model.forward(X)
        loss = model.backward(Y, out)
        model.update()

        torch_optimizer.zero_grad()
        logits = forward(torch.from_numpy(X))
        torch_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        torch_loss.backward()
        np.testing.assert_allclose(out, torch.softmax(logits, -1).detach().numpy(), rtol=1e-10, atol=1e-13)
        assert loss == pytest.approx(torch_loss.item(), rel=1e-10)
        for layer, module in pairs:
            for key, tensor in (("W", module.weight), ("b", module.bias)):
                gradient = layer.gradients[key]
                expected = tensor.grad.numpy()
                ours = (gradient[0] if key == "b" else
                        conv_weight_to_torch(torch.from_numpy(gradient)).numpy() if gradient.ndim == 4 else
                        gradient.T)
                np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-13,
                                           err_msg=f"step {step}: d{key} of {layer.name}")
        torch_optimizer.step()
        for layer, module in pairs:
            for key, tensor in (("W", module.weight), ("b", module.bias)):
                np.testing.assert_allclose(ours_in_torch_layout(layer, key).numpy(), tensor.detach().numpy(),
                                           rtol=1e-10, atol=1e-13, err_msg=f"step {step}: {key} of {layer.name}")


class ModeProbe(FullyConnected):
    """A dense layer that records the mode it ran in."""

    def __init__(self, n_out, activation="linear"):
        super().__init__(n_out, activation)
        self.modes = []

    def forward(self, X, retain_derived=True):
        self.modes.append(self.training)
        return super().forward(X, retain_derived)


def probe_model():
    return NeuralNetwork([ModeProbe(4, "relu"), ModeProbe(2, "softmax")], seed=0)


def test_fit_trains_in_training_mode_and_validates_in_evaluation_mode():
    X, y = np.random.default_rng(0).standard_normal((12, 3)), np.arange(12) % 2
    model = probe_model()
    model.fit(X, y, epochs=2, batch_size=6, validation_data=(X[:4], y[:4]), verbose=0)
    # per epoch: two training batches, then one validation pass
    assert model.layers[0].modes == [True, True, False, True, True, False]
    assert model.training and all(layer.training for layer in model.layers)


@pytest.mark.parametrize("start", [True, False])
def test_evaluate_and_predict_run_in_evaluation_mode_and_restore_the_mode(start):
    X, y = np.random.default_rng(0).standard_normal((5, 3)), np.arange(5) % 2
    model = probe_model().build((3,))
    model.set_training(start)
    model.predict(X)
    model.evaluate(X, y)
    assert model.layers[1].modes == [False, False]
    assert model.training is start and all(layer.training is start for layer in model.layers)


def test_the_mode_is_restored_when_prediction_raises():
    model = probe_model().build((3,))
    with pytest.raises(ValueError):
        model.predict(np.full((2, 3), np.nan))
    with pytest.raises(RuntimeError):
        with model.evaluating():
            assert not model.training and not model.layers[0].training
            raise RuntimeError("inside")
    assert model.training and model.layers[0].training


def test_set_training_refuses_a_non_bool():
    with pytest.raises(TypeError, match="training"):
        probe_model().set_training("no")


def test_predict_leaves_every_buffer_and_cache_as_it_was():
    X = np.random.default_rng(0).standard_normal((5, 3))
    model = probe_model().build((3,))
    model.forward(X)  # a training forward fills the caches
    caches = [dict(layer.cache) for layer in model.layers]
    model.predict(X[:2])
    for layer, cache in zip(model.layers, caches):
        assert layer.cache.keys() == cache.keys()
        assert all(layer.cache[key] is cache[key] for key in cache)
