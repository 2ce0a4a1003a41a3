"""Preprocessing: standardisation and stratified splitting, in plain NumPy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Standardizer", "stratified_split"]

# Big image sets are processed in chunks of about this many values so that no
# float64 copy of the whole set (1.2 GB for CIFAR-10) is ever made.
_CHUNK_VALUES = 1 << 22


def _row_chunks(n_rows: int, row_size: int):
    """Yield slices covering ``range(n_rows)`` in chunks of about ``_CHUNK_VALUES`` values."""
    step = max(1, _CHUNK_VALUES // max(1, row_size))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _row_variance(rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Two-pass population variance of each row, accumulated over column chunks.

    Chunking keeps the float64 deviations small instead of materialising a
    float64 copy of the whole data set (1.2 GB for CIFAR-10).
    """
    total = np.zeros(len(rows))
    step = max(1, _CHUNK_VALUES // max(1, len(rows)))
    for start in range(0, rows.shape[1], step):
        deviation = rows[:, start:start + step] - mean[:, np.newaxis]
        total += np.einsum("ij,ij->i", deviation, deviation)
    return total / rows.shape[1]


class Standardizer:
    """Shift and scale features to zero mean and unit variance.

    ``transform(X) = (X * scale - mean) / std``.  The ``scale`` factor lets the
    standardiser work on raw data: for 8-bit images ``scale = 1/255`` and
    ``mean``/``std`` are statistics of pixel values in [0, 1].

    Parameters
    ----------
    mean, std : array-like, optional
        Fitted statistics, shaped to broadcast against one sample (the array
        without its leading batch axis).  Usually left None and set by
        :meth:`fit`, or restored by :meth:`from_state`.
    scale : float
        Factor applied to the raw data before standardising.
    per_channel : bool
        When fitting, pool the statistics over every axis but the last (the
        channel axis of NHWC images) instead of computing one per feature.

    Attributes
    ----------
    mean, std : numpy.ndarray or None
        ``float64`` statistics; None before fitting.  Constant features get
        ``std = 1`` so they map to 0 instead of dividing by zero.
    """

    def __init__(self, mean=None, std=None, *, scale: float = 1.0, per_channel: bool = False):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.scale = float(scale)
        if not np.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"scale must be a finite non-zero number, got {scale}")
        self.per_channel = bool(per_channel)

    @classmethod
    def scaling(cls, scale: float) -> "Standardizer":
        """A fitted standardiser that only multiplies by ``scale`` (mean 0, std 1), e.g.
        ``Standardizer.scaling(1 / 255)`` for 8-bit pixels mapped to [0, 1].

        >>> Standardizer.scaling(0.5).transform([[2.0, 4.0]]).tolist()
        [[1.0, 2.0]]
        """
        return cls(0.0, 1.0, scale=scale)

    def __repr__(self) -> str:
        shape = None if self.mean is None else self.mean.shape
        return (
            f"Standardizer(shape={shape}, scale={self.scale}, per_channel={self.per_channel})"
        )

    # ------------------------------------------------------------------ fit
    def _statistic_rows(self, X: np.ndarray) -> np.ndarray:
        """Copy ``X`` to shape (statistics, values): one contiguous row per mean/std.

        Reductions along contiguous rows are an order of magnitude faster
        than numpy's strided reductions over several axes of NHWC images.
        """
        if self.per_channel:
            table = X.reshape(-1, X.shape[-1])
        else:
            table = X.reshape(len(X), -1)
        return np.ascontiguousarray(table.T)

    def fit(self, X) -> "Standardizer":
        """Compute ``mean`` and ``std`` from training data.

        Parameters
        ----------
        X : array-like, shape (N, ...)
            Raw training data (before ``scale``); at least one sample, and a
            channel axis last when ``per_channel``.

        Returns
        -------
        Standardizer
            ``self``, for chaining.
        """
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"fit needs a non-empty array of shape (N, features...), got {X.shape}")
        rows = self._statistic_rows(X)
        # dtype=float64 accumulates in double precision without first copying
        # e.g. uint8 pixels to float64.
        raw_mean = rows.mean(axis=1, dtype=np.float64)
        raw_std = np.sqrt(_row_variance(rows, raw_mean))
        # Constancy is decided exactly (max == min) rather than by a threshold
        # on std, which rounding in the mean would make unreliable.
        constant = rows.max(axis=1) == rows.min(axis=1)
        shape = (X.shape[-1],) if self.per_channel else X.shape[1:]
        self.mean = (raw_mean * self.scale).reshape(shape)
        self.std = np.where(constant, 1.0, raw_std * abs(self.scale)).reshape(shape)
        return self

    # ------------------------------------------------------------ transform
    def _check_fitted(self) -> None:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer is not fitted: call fit(X) or from_state(state) first")

    def transform(self, X, dtype=np.float32) -> np.ndarray:
        """Standardise ``X`` into a new array.

        Parameters
        ----------
        X : array-like, shape (N, ...)
            Raw data shaped like the data the standardiser was fitted on.
        dtype : numpy dtype
            Floating dtype of the result.

        Returns
        -------
        numpy.ndarray
            ``(X * scale - mean) / std``; ``X`` itself is not modified.
        """
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim < 1 or np.broadcast_shapes(X.shape[1:], self.mean.shape) != X.shape[1:]:
            raise ValueError(
                f"cannot standardise samples of shape {X.shape[1:]} with statistics "
                f"of shape {self.mean.shape}"
            )
        # One multiply-add, computed in the wider of the input and output
        # dtypes: float32 for pixels, float64 for float64 tables.
        # Both are spread over a whole sample: broadcasting a length-3 channel
        # vector makes numpy's inner loop 3 elements long and 10x slower.
        work = np.result_type(X.dtype, dtype)
        gain = np.broadcast_to(self.scale / self.std, X.shape[1:]).astype(work)
        offset = np.broadcast_to(-self.mean / self.std, X.shape[1:]).astype(work)
        out = np.empty(X.shape, dtype=dtype)
        for rows in _row_chunks(X.shape[0], int(np.prod(X.shape[1:]))):
            out[rows] = X[rows] * gain + offset
        return out

    def fit_transform(self, X, dtype=np.float32) -> np.ndarray:
        """Fit on ``X`` and return it standardised."""
        return self.fit(X).transform(X, dtype=dtype)

    def inverse_transform(self, X, dtype=np.float32) -> np.ndarray:
        """Map standardised data back to the raw scale."""
        self._check_fitted()
        return ((np.asarray(X) * self.std + self.mean) / self.scale).astype(dtype)

    def flattened(self, sample_shape: Sequence[int]) -> "Standardizer":
        """Return an equivalent per-feature standardiser for flattened samples.

        Used when images of ``sample_shape`` (e.g. ``(28, 28, 1)``) are fed to a
        model as vectors: the per-channel statistics are broadcast to every
        pixel and raveled in the same (C) order as ``X.reshape(N, -1)``.
        """
        self._check_fitted()
        shape = tuple(sample_shape)
        mean = np.broadcast_to(self.mean, shape).ravel()
        std = np.broadcast_to(self.std, shape).ravel()
        return Standardizer(mean, std, scale=self.scale)

    # ---------------------------------------------------------------- state
    def get_state(self) -> dict:
        """Return the fitted parameters as plain Python values (JSON-serialisable)."""
        self._check_fitted()
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "scale": self.scale,
            "per_channel": self.per_channel,
        }

    @classmethod
    def from_state(cls, state: dict) -> "Standardizer":
        """Rebuild a standardiser from :meth:`get_state` output (lists or arrays)."""
        return cls(
            state["mean"],
            state["std"],
            scale=state.get("scale", 1.0),
            per_channel=state.get("per_channel", False),
        )


# --------------------------------------------------------------------------
# Stratified splitting
# --------------------------------------------------------------------------

def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Validate split fractions: non-negative and summing to 1."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or fractions.size == 0:
        raise ValueError("fractions must be a non-empty sequence of numbers")
    if np.any(fractions < 0) or not np.all(np.isfinite(fractions)):
        raise ValueError(f"fractions must be finite and non-negative, got {fractions.tolist()}")
    if not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must sum to 1, got {fractions.tolist()} (sum {fractions.sum()})")
    return fractions / fractions.sum()


def _largest_remainder(ideal: np.ndarray, total: int) -> np.ndarray:
    """Round ``ideal`` (summing to ``total``) to integers with the same sum."""
    counts = np.floor(ideal).astype(np.int64)
    shortfall = total - int(counts.sum())
    # Stable sort: ties go to the earlier entry, so the result is deterministic.
    order = np.argsort(-(ideal - counts), kind="stable")
    counts[order[:shortfall]] += 1
    return counts


def _split_counts(class_sizes: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Number of samples of each class in each split, shape (classes, splits).

    Every count is within one sample of its ideal ``class_size * fraction``,
    every class is fully used, and the split totals are the ideal totals
    rounded by largest remainder.  Start from the floor of the ideal table and
    hand out the remaining samples one per (class, split) cell; this is a 0/1
    matrix with given row and column sums, built greedily by giving each class
    to the splits that still lack the most samples (Gale-Ryser), which always
    succeeds when such a matrix exists.
    """
    ideal = np.outer(class_sizes, fractions)
    counts = np.floor(ideal).astype(np.int64)
    totals = _largest_remainder(class_sizes.sum() * fractions, int(class_sizes.sum()))
    row_need = class_sizes - counts.sum(axis=1)
    col_need = totals - counts.sum(axis=0)
    remainders = ideal - counts
    for c in np.argsort(-row_need, kind="stable"):
        # Neediest splits first; among equals, the one this class is closest to filling.
        order = np.lexsort((-remainders[c], -col_need))
        chosen = order[: row_need[c]]
        counts[c, chosen] += 1
        col_need[chosen] -= 1
    if np.any(col_need != 0) or np.any(counts.sum(axis=1) != class_sizes):
        raise AssertionError("internal error: stratified split counts do not add up")
    return counts


def stratified_split(
    y, fractions: Sequence[float], rng: np.random.Generator | int | None = None
) -> list[np.ndarray]:
    """Split sample indices into parts with the class proportions of ``y``.

    Parameters
    ----------
    y : array-like of int, shape (N,)
        Class label of every sample.
    fractions : sequence of float
        Fraction of the samples in each part; non-negative, summing to 1.
    rng : numpy.random.Generator or int or None
        Source of randomness (a seed is passed to ``numpy.random.default_rng``).

    Returns
    -------
    list of numpy.ndarray
        One shuffled ``int64`` index array per fraction.  The parts are
        disjoint and cover ``range(N)``; each class's count in each part is
        within one sample of ``class_size * fraction``, and part sizes are
        ``N * fraction`` rounded so that they sum to ``N``.
    """
    rng = np.random.default_rng(rng)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    fractions = _check_fractions(fractions)
    if y.size == 0:
        return [np.empty(0, dtype=np.int64) for _ in fractions]
    classes, y_index = np.unique(y, return_inverse=True)
    counts = _split_counts(np.bincount(y_index, minlength=len(classes)), fractions)

    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(y_index == c))
        bounds = np.cumsum(counts[c])[:-1]
        for part, chunk in zip(parts, np.split(members, bounds)):
            part.append(chunk)
    # Shuffle each part so samples are not grouped by class.
    return [rng.permutation(np.concatenate(part)).astype(np.int64) for part in parts]
