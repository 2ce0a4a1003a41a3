"""Standardizer and stratified_split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neural_networks.datasets import Standardizer, stratified_split


# ---------------------------------------------------------------- Standardizer

def test_per_feature_fit_and_transform():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(200, 4))
    X[:, 2] = 7.25  # constant feature

    s = Standardizer()
    Z = s.fit_transform(X)

    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(s.mean, X.mean(axis=0))
    np.testing.assert_allclose(s.std[[0, 1, 3]], X.std(axis=0)[[0, 1, 3]])
    assert s.std[2] == 1.0
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(Z.std(axis=0)[[0, 1, 3]], 1, rtol=1e-5)
    assert np.all(np.isfinite(Z)) and np.all(Z[:, 2] == 0)


def test_transform_does_not_modify_input_and_uses_fitted_statistics():
    X_train = np.array([[0.0, 10.0], [2.0, 30.0]])
    X_new = np.array([[4.0, 20.0]])
    before = X_new.copy()
    s = Standardizer().fit(X_train)
    np.testing.assert_allclose(s.transform(X_new), [[3.0, 0.0]])
    np.testing.assert_array_equal(X_new, before)


def test_per_channel_with_scale_on_uint8_images():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(50, 6, 5, 3), dtype=np.uint8)
    images[..., 2] = 200  # a constant channel

    s = Standardizer(scale=1 / 255, per_channel=True).fit(images)
    Z = s.transform(images)

    assert s.mean.shape == (3,) and s.std.shape == (3,)
    scaled = images / 255
    np.testing.assert_allclose(s.mean, scaled.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(s.std[:2], scaled.std(axis=(0, 1, 2))[:2])
    assert s.std[2] == 1.0
    np.testing.assert_allclose(Z[..., :2].mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(Z[..., :2].std(axis=(0, 1, 2)), 1, rtol=1e-5)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(s.inverse_transform(Z), images, atol=1e-3)


def test_chunked_statistics_match_direct_ones(monkeypatch):
    # Force many tiny chunks to exercise the accumulation.
    from neural_networks.datasets import preprocessing

    monkeypatch.setattr(preprocessing, "_CHUNK_VALUES", 7)
    X = np.random.default_rng(2).normal(size=(37, 3, 2))
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.std, X.std(axis=0))
    np.testing.assert_allclose(s.transform(X), (X - X.mean(0)) / X.std(0), rtol=1e-5, atol=1e-6)


def test_flattened_matches_per_channel_on_images():
    images = np.random.default_rng(3).integers(0, 256, size=(10, 4, 4, 3), dtype=np.uint8)
    s = Standardizer(scale=1 / 255, per_channel=True).fit(images)
    flat = s.flattened((4, 4, 3))
    assert flat.mean.shape == (48,)
    np.testing.assert_allclose(
        flat.transform(images.reshape(10, -1)), s.transform(images).reshape(10, -1), rtol=1e-6
    )


def test_state_round_trips_through_json():
    X = np.random.default_rng(4).normal(size=(20, 3, 2))
    s = Standardizer().fit(X)
    state = json.loads(json.dumps(s.get_state()))  # plain Python values only
    restored = Standardizer.from_state(state)
    np.testing.assert_array_equal(restored.mean, s.mean)
    np.testing.assert_array_equal(restored.std, s.std)
    np.testing.assert_array_equal(restored.transform(X), s.transform(X))


def test_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        Standardizer().transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        Standardizer().fit(np.zeros((0, 3)))
    s = Standardizer().fit(np.ones((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        s.transform(np.zeros((2, 5)))


# ---------------------------------------------------------------- stratified_split

@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    val=st.floats(0, 0.6),
    test=st.floats(0, 0.39),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_split_properties(sizes, val, test, seed):
    y = np.repeat(np.arange(len(sizes)), sizes)
    fractions = [1 - val - test, val, test]
    parts = stratified_split(y, fractions, seed)

    everything = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(y)))  # disjoint, complete
    for part, fraction in zip(parts, fractions):
        assert part.dtype == np.int64
        assert abs(len(part) - fraction * len(y)) < 1 + 1e-9
        counts = np.bincount(y[part], minlength=len(sizes))
        assert np.all(np.abs(counts - fraction * np.array(sizes)) <= 1 + 1e-9)


def test_stratified_split_is_deterministic_and_shuffled():
    y = np.repeat(np.arange(3), 50)
    a = stratified_split(y, [0.7, 0.15, 0.15], 5)
    b = stratified_split(y, [0.7, 0.15, 0.15], np.random.default_rng(5))
    c = stratified_split(y, [0.7, 0.15, 0.15], 6)
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))
    assert len(set(y[a[0][:10]].tolist())) > 1  # not grouped by class


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(np.zeros(4), [0.5, 0.2])
    with pytest.raises(ValueError, match="non-negative"):
        stratified_split(np.zeros(4), [1.5, -0.5])
