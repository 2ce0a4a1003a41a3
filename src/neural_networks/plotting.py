"""PNG plots of training: learning curves, confusion matrix, first-layer filters (a
regression gets the loss curves only; the command line draws filters for a CNN only).

Needs the optional ``plot`` extra (matplotlib); it is imported only when a plot
is drawn, with the non-interactive Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlottingUnavailable(
            'plots need matplotlib: pip install "neural-networks[plot]"'
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def history_panels(history) -> list[str]:
    """The metrics ``plot_history`` draws: the loss, and the accuracy when some epoch has
    one (a regression has none: its curves are the loss only)."""
    data = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    has_accuracy = any(value is not None for key in ("accuracy", "val_accuracy")
                       for value in data.get(key) or [])
    return ["loss", "accuracy"] if has_accuracy else ["loss"]


def plot_history(history, path) -> Path:
    """Loss and accuracy per epoch, train against validation, side by side (the loss
    alone for a regression, see ``history_panels``)."""
    plt = _pyplot()
    data = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    epochs = data["epoch"]
    panels = history_panels(data)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, metric in zip(axes.flat, panels):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = data.get(key) or []
            points = [(e, v) for e, v in zip(epochs, values) if v is not None]
            if points:
                axis.plot(*zip(*points), marker=".", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return _save(figure, plt, path)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """counts[i, j] = number of samples of class i predicted as class j."""
    pairs = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def plot_confusion_matrix(y_true, y_pred, class_names, path) -> Path:
    """Heat map of the confusion matrix with the count in every cell."""
    plt = _pyplot()
    counts = confusion_matrix(y_true, y_pred, len(class_names))
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(counts, cmap="Blues")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, labels=class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for (row, col), value in np.ndenumerate(counts):
        axis.text(col, row, str(value), ha="center", va="center",
                  color="white" if value > threshold else "black", fontsize=8)
    figure.tight_layout()
    return _save(figure, plt, path)


def plot_filters(weights: np.ndarray, path) -> Path:
    """A grid of first-layer convolution filters (kh, kw, C_in, C_out): one tile per output
    channel, the mean over input channels, each scaled to its own range."""
    plt = _pyplot()
    weights = np.asarray(weights, dtype=np.float64)
    filters = weights.mean(axis=2).transpose(2, 0, 1)  # (C_out, kh, kw)
    n_cols = int(np.ceil(np.sqrt(len(filters))))
    n_rows = int(np.ceil(len(filters) / n_cols))
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(1.2 * n_cols, 1.2 * n_rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(filters):
            axis.imshow(filters[index], cmap="gray", interpolation="nearest")
    figure.suptitle("first-layer filters")
    return _save(figure, plt, path)


def _save(figure, plt, path) -> Path:
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
