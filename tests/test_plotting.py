"""PNG plots of training and the confusion matrix they draw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks import plotting
from neural_networks.training import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 50 and height > 50
    return width, height


def history(epochs=4, validation=True):
    h = History()
    for epoch in range(epochs):
        logs = {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch, "lr": 0.01, "time": 0.1}
        if validation:
            logs |= {"val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.45 + 0.1 * epoch}
        h.append(epoch, logs)
    return h


@pytest.mark.parametrize("source", ["history", "dict", "no validation", "one epoch"])
def test_plot_history_writes_a_png(tmp_path, source):
    h = {"history": history(), "dict": history().to_dict(),
         "no validation": history(validation=False), "one epoch": history(1)}[source]
    path = plotting.plot_history(h, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    assert_png(path)


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    path = plotting.plot_confusion_matrix(y_true, y_pred, ["a", "b", "c", "d"], tmp_path / "cm.png")
    assert path == tmp_path / "cm.png"
    assert_png(path)


@pytest.mark.parametrize("shape", [(3, 3, 1, 16), (5, 5, 3, 6), (3, 3, 2, 1), (2, 3, 4, 7)])
def test_plot_filters_writes_a_png(tmp_path, shape):
    weights = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    weights_copy = weights.copy()
    path = plotting.plot_filters(weights, tmp_path / "filters.png")
    assert_png(path)
    np.testing.assert_array_equal(weights, weights_copy)


def test_confusion_matrix_counts_a_known_case():
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 0, 2, 2]
    expected = np.array([[1, 1, 0],
                         [0, 2, 1],
                         [1, 0, 3]])
    np.testing.assert_array_equal(plotting.confusion_matrix(y_true, y_pred, 3), expected)
    # a class that never occurs gets an empty row and column
    np.testing.assert_array_equal(plotting.confusion_matrix([0, 0], [0, 0], 3),
                                  [[2, 0, 0], [0, 0, 0], [0, 0, 0]])


@settings(max_examples=25, deadline=None)
@given(n_classes=st.integers(1, 6), data=st.data())
def test_confusion_matrix_matches_counting_pairs(n_classes, data):
    labels = st.lists(st.integers(0, n_classes - 1), min_size=0, max_size=40)
    y_true = data.draw(labels)
    y_pred = data.draw(st.lists(st.integers(0, n_classes - 1), min_size=len(y_true), max_size=len(y_true)))
    counts = plotting.confusion_matrix(np.array(y_true, dtype=int), np.array(y_pred, dtype=int), n_classes)
    assert counts.shape == (n_classes, n_classes)
    expected = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(y_true)
    assert np.trace(counts) == sum(t == p for t, p in zip(y_true, y_pred))


def regression_history(epochs=4):
    """What a regression's fit records: no accuracy in any epoch."""
    h = History()
    for epoch in range(epochs):
        h.append(epoch, {"loss": 1.0 / (epoch + 1), "accuracy": None, "val_loss": 1.1 / (epoch + 1),
                         "val_accuracy": None, "lr": 0.01, "time": 0.1})
    return h


def test_a_regression_s_curves_are_the_loss_only(tmp_path):
    assert plotting.history_panels(regression_history()) == ["loss"]
    assert plotting.history_panels(regression_history().to_dict()) == ["loss"]
    assert plotting.history_panels(history()) == ["loss", "accuracy"]
    assert plotting.history_panels(history(validation=False)) == ["loss", "accuracy"]
    regression_width, _ = assert_png(plotting.plot_history(regression_history(), tmp_path / "r.png"))
    classification_width, _ = assert_png(plotting.plot_history(history(), tmp_path / "c.png"))
    assert (regression_width, classification_width) == (500, 1000)  # one panel of 5 inches, or two
