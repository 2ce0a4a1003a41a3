"""Datasets generated from a seed: nothing is read from disk or downloaded.

``sinewave`` is the course's sequence regression task (its 2020 ``train_rnn.py`` trained
an Elman RNN on it with L2): from the first ``T`` values of a sine wave of random
frequency and phase, predict the next one.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ..errors import InvalidParameterError
from ..utils.validation import Interval, validate_params

__all__ = ["SINEWAVE_FREQUENCIES", "SINEWAVE_SAMPLES", "SINEWAVE_STEPS", "SYNTHETIC_DATASETS", "make_sinewave"]

#: Names of the generated datasets (``load_dataset`` and ``initialize_dataset`` accept them).
SYNTHETIC_DATASETS = ("sinewave",)

#: ``load_dataset("sinewave")``: 1000 waves (700 train, 150 validation, 150 test by default)...
SINEWAVE_SAMPLES = 1000
#: ...of 20 steps each...
SINEWAVE_STEPS = 20
#: ...with frequencies from 0.05 to 0.25 cycles per step (periods of 4 to 20 steps, so every
#: sequence holds at least one full period). The next value then depends on the frequency,
#: which a recurrent network must infer from the sequence: on the validation split, repeating
#: the last value scores a mean squared error of 0.45 and the best linear fit of the last two
#: values 0.15, while a 32-unit tanh RNN (SGD, lr 0.01, momentum 0.9, batch 32) reaches 0.03
#: after 5 epochs and 0.015 after 10 (a few seconds).
SINEWAVE_FREQUENCIES = (0.05, 0.25)

_CONSTRAINTS = {
    "n_samples": [Interval(Integral, 1, None)],
    "n_steps": [Interval(Integral, 1, None)],
    "noise": [Interval(Real, 0, None)],
}


def _check_dtype(dtype) -> np.dtype:
    try:
        checked = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except TypeError:
        checked = None
    if checked not in (np.float32, np.float64):
        raise InvalidParameterError(f"make_sinewave: dtype must be float32 or float64, got {dtype!r}")
    return checked


def _check_frequency_range(frequency_range) -> tuple[float, float]:
    try:
        low, high = (float(f) for f in frequency_range)
        valid = 0 < low <= high <= 0.5
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidParameterError(
            f"make_sinewave: frequency_range must be two frequencies (low, high) in cycles per "
            f"step with 0 < low <= high <= 0.5 (the Nyquist limit), got {frequency_range!r}")
    return low, high


def make_sinewave(
    n_samples: int = SINEWAVE_SAMPLES,
    n_steps: int = SINEWAVE_STEPS,
    *,
    frequency_range: tuple[float, float] = SINEWAVE_FREQUENCIES,
    noise: float = 0.0,
    seed=None,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Sine waves of random frequency and phase, and the next value of each.

    For sample n, with f_n ~ U[low, high] (cycles per step) and φ_n ~ U[0, 2π)::

        s_n(t) = sin(2π f_n t + φ_n) + noise·ε_n(t),   ε_n(t) ~ N(0, 1) independent
        X[n, t, 0] = s_n(t)  for t = 0, …, T − 1       y[n, 0] = s_n(T)

    so the target is the value one step after the last input, of the same (noisy) wave.
    Noise-free unless ``noise`` (a standard deviation >= 0) is given; the waves
    themselves, and the draws left to a passed Generator, do not depend on ``noise``.

    Parameters
    ----------
    n_samples : int
        Number of waves N.
    n_steps : int
        Input length T.
    frequency_range : (float, float)
        Bounds of the uniform frequency draw, in cycles per step, within (0, 0.5].
    noise : float
        Standard deviation of the Gaussian noise added to every value (inputs and target).
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        The same seed gives the same data; None draws fresh entropy.
    dtype : float32 or float64

    Returns
    -------
    X : numpy.ndarray, shape (N, T, 1)
        Batch-first sequences with one feature.
    y : numpy.ndarray, shape (N, 1)
        The next value of each sequence.

    >>> X, y = make_sinewave(3, 5, seed=0)
    >>> X.shape, y.shape, X.dtype
    ((3, 5, 1), (3, 1), dtype('float32'))
    >>> bool(np.all(np.abs(X) <= 1))
    True
    """
    validate_params("make_sinewave", _CONSTRAINTS, n_samples=n_samples, n_steps=n_steps, noise=noise)
    low, high = _check_frequency_range(frequency_range)
    dtype = _check_dtype(dtype)
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(low, high, size=(n_samples, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_samples, 1))
    steps = np.arange(n_steps + 1)
    waves = np.sin(2 * np.pi * frequency * steps + phase)  # (N, T + 1): inputs, then the target
    # Drawn at every noise level, so that a seeded Generator is left in the same state and
    # whatever it draws next (load_dataset's split) does not depend on the noise.
    standard_noise = rng.standard_normal(waves.shape)
    if noise > 0:
        waves += noise * standard_noise
    waves = waves.astype(dtype)
    return np.ascontiguousarray(waves[:, :n_steps, None]), waves[:, n_steps:].copy()
